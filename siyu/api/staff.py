"""Workspace, staff, API tokens and the audit log."""


import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts import actions
from siyu.accounts.models import ApiToken, AuditEntry, Staff
from siyu.accounts.permissions import ROLE_PERMISSIONS, Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page

router = Router(tags=["workspace & staff"])


class WorkspaceOut(Schema):
    id: int
    slug: str
    name: str
    time_zone: str
    currency: str
    language: str


class StaffOut(Schema):
    id: int
    email: str
    display_name: str
    role: str
    store: str
    is_active: bool
    created_at: dt.datetime


class MeOut(Schema):
    staff: StaffOut
    workspace: WorkspaceOut
    permissions: list[str]


@router.get("/me", response={200: MeOut, **ERRORS})
def whoami(request: HttpRequest) -> Any:
    staff = me(request)
    return {"staff": staff, "workspace": ws(request), "permissions": sorted(p.value for p in ROLE_PERMISSIONS[staff.role])}


@router.get("/workspace", response={200: WorkspaceOut, **ERRORS})
def get_workspace(request: HttpRequest) -> Any:
    return ws(request)


@router.get("/staff", response={200: list[StaffOut], **ERRORS})
@paginate(Page)
def list_staff(request: HttpRequest) -> Any:
    return Staff.objects.in_workspace(ws(request)).select_related("user").order_by("id")


class StaffIn(Schema):
    email: str = Field(min_length=3, max_length=254)
    display_name: str = Field("", max_length=100)
    role: str = "agent"
    password: str | None = Field(None, min_length=8, max_length=128)
    store: str = Field("", max_length=100)


class StaffPatch(Schema):
    role: str | None = None
    is_active: bool | None = None
    display_name: str | None = Field(None, max_length=100)
    store: str | None = Field(None, max_length=100)


@router.post("/staff", response={201: StaffOut, **ERRORS})
def create_staff(request: HttpRequest, payload: StaffIn) -> Any:
    return Status(201, actions.do_create_staff(ws(request), me(request), **payload.dict()))


@router.patch("/staff/{int:staff_id}", response={200: StaffOut, **ERRORS})
def update_staff(request: HttpRequest, staff_id: int, payload: StaffPatch) -> Any:
    require(me(request), Perm.MANAGE_STAFF)
    staff = Staff.objects.select_related("user").get_in_workspace(ws(request), pk=staff_id)
    return actions.do_update_staff(staff, me(request), **payload.dict(exclude_unset=True))


class TokenOut(Schema):
    id: int
    staff_id: int
    name: str
    prefix: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class NewTokenOut(TokenOut):
    token: str = Field(description="the secret; shown only once")


class TokenIn(Schema):
    name: str = Field("api", min_length=1, max_length=100)


@router.get("/tokens", response={200: list[TokenOut], **ERRORS})
def list_tokens(request: HttpRequest) -> Any:
    """Your own tokens (all of the workspace's with staff.manage)."""
    qs = ApiToken.objects.in_workspace(ws(request))
    if not _can_manage(request):
        qs = qs.filter(staff=me(request))
    return list(qs.order_by("id"))


def _can_manage(request: HttpRequest) -> bool:
    from siyu.accounts.permissions import has_perm

    return has_perm(me(request), Perm.MANAGE_STAFF)


@router.post("/staff/{int:staff_id}/tokens", response={201: NewTokenOut, **ERRORS})
def create_token(request: HttpRequest, staff_id: int, payload: TokenIn) -> Any:
    staff = Staff.objects.select_related("user").get_in_workspace(ws(request), pk=staff_id)
    token, raw = actions.do_create_api_token(staff, me(request), name=payload.name)
    return Status(201, {**TokenOut.from_orm(token).dict(), "token": raw})


@router.delete("/tokens/{int:token_id}", response={200: TokenOut, **ERRORS})
def revoke_token(request: HttpRequest, token_id: int) -> Any:
    token = ApiToken.objects.get_in_workspace(ws(request), pk=token_id)
    if token.staff_id != me(request).pk and not _can_manage(request):
        from siyu.core.errors import NotFound

        raise NotFound("api token not found")
    return actions.do_revoke_api_token(token, me(request))


class AuditOut(Schema):
    id: int
    actor_id: int | None
    action: str
    target_type: str
    target_id: str
    summary: str
    before: Any
    after: Any
    via: str
    created_at: dt.datetime


@router.get("/audit", response={200: list[AuditOut], **ERRORS})
@paginate(Page)
def list_audit(request: HttpRequest, action: str | None = None, actor: int | None = None, target_type: str | None = None) -> Any:
    require(me(request), Perm.VIEW_AUDIT)
    qs = AuditEntry.objects.in_workspace(ws(request))
    if action:
        qs = qs.filter(action__startswith=action)
    if actor is not None:
        qs = qs.filter(actor_id=actor)
    if target_type:
        qs = qs.filter(target_type=target_type)
    return qs.order_by("-created_at", "-id")
