"""Group settings (群设置) and keyword auto-replies (关键词自动回复) API.

``GET /groups/{id}/settings`` answers the effective settings with where each value came
from (``group``, ``template:<type>``, ``default``, ``built_in``) and the group's own layer;
``PUT`` changes the group's own values (``null`` = inherit again).
"""

from typing import Any

from django.http import HttpRequest
from ninja import Body, Router, Schema, Status
from pydantic import Field

from siyu.accounts.permissions import Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS
from siyu.communities import actions
from siyu.communities.group_settings import effective, layer_values
from siyu.communities.models import AutoReplyRule, Group, GroupSettings

router = Router(tags=["group settings"])


class SettingsOut(Schema):
    group_id: int | None = None
    group_type: str | None = None
    own: dict[str, Any]
    effective: dict[str, Any] | None = None


class AutoReplyOut(Schema):
    id: int
    group_id: int | None
    name: str
    match: str
    pattern: str
    reply: str
    cooldown_seconds: int
    priority: int
    is_active: bool


class AutoReplyIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    match: str = "contains"
    pattern: str = Field(min_length=1, max_length=500)
    reply: str = Field(min_length=1, max_length=2000)
    cooldown_seconds: int = 300
    priority: int = 100
    is_active: bool = True
    group_id: int | None = None


class AutoReplyPatch(Schema):
    name: str | None = None
    match: str | None = None
    pattern: str | None = None
    reply: str | None = None
    cooldown_seconds: int | None = None
    priority: int | None = None
    is_active: bool | None = None


def _group(request: HttpRequest, group_id: int) -> Group:
    require(me(request), Perm.VIEW_GROUPS)
    return Group.objects.get_in_workspace(ws(request), pk=group_id)


def _group_settings(group: Group) -> dict[str, Any]:
    own = GroupSettings.objects.filter(group=group).first()
    return {"group_id": group.pk, "own": dict(own.values) if own else {}, "effective": effective(group).as_dict()}


@router.get("/groups/{int:group_id}/settings", response={200: SettingsOut, **ERRORS})
def get_settings(request: HttpRequest, group_id: int) -> Any:
    return _group_settings(_group(request, group_id))


@router.put("/groups/{int:group_id}/settings", response={200: SettingsOut, **ERRORS})
def put_settings(request: HttpRequest, group_id: int, payload: dict[str, Any] = Body(...)) -> Any:
    group = _group(request, group_id)
    actions.do_set_group_settings(group, me(request), payload)
    group.refresh_from_db()
    return _group_settings(group)


@router.get("/group-settings/defaults", response={200: SettingsOut, **ERRORS})
def get_defaults(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return {"own": layer_values(ws(request))}


@router.put("/group-settings/defaults", response={200: SettingsOut, **ERRORS})
def put_defaults(request: HttpRequest, payload: dict[str, Any] = Body(...)) -> Any:
    actions.do_set_settings_layer(ws(request), me(request), payload)
    return {"own": layer_values(ws(request))}


@router.get("/group-settings/templates/{group_type}", response={200: SettingsOut, **ERRORS})
def get_template(request: HttpRequest, group_type: str) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return {"group_type": group_type, "own": layer_values(ws(request), group_type=group_type)}


@router.put("/group-settings/templates/{group_type}", response={200: SettingsOut, **ERRORS})
def put_template(request: HttpRequest, group_type: str, payload: dict[str, Any] = Body(...)) -> Any:
    actions.do_set_settings_layer(ws(request), me(request), payload, group_type=group_type)
    return {"group_type": group_type, "own": layer_values(ws(request), group_type=group_type)}


@router.get("/auto-replies", response={200: list[AutoReplyOut], **ERRORS})
def list_auto_replies(request: HttpRequest, group_id: int | None = None) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    qs = AutoReplyRule.objects.in_workspace(ws(request))
    return qs.filter(group_id=group_id) if group_id is not None else qs


@router.post("/auto-replies", response={201: AutoReplyOut, **ERRORS})
def create_auto_reply(request: HttpRequest, payload: AutoReplyIn) -> Any:
    data = payload.dict()
    group_id = data.pop("group_id")
    group = Group.objects.get_in_workspace(ws(request), pk=group_id) if group_id is not None else None
    rule = actions.do_create_auto_reply(ws(request), me(request), group=group, **data)
    return Status(201, rule)


@router.get("/auto-replies/{int:rule_id}", response={200: AutoReplyOut, **ERRORS})
def get_auto_reply(request: HttpRequest, rule_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return AutoReplyRule.objects.get_in_workspace(ws(request), pk=rule_id)


@router.patch("/auto-replies/{int:rule_id}", response={200: AutoReplyOut, **ERRORS})
def update_auto_reply(request: HttpRequest, rule_id: int, payload: AutoReplyPatch) -> Any:
    rule = AutoReplyRule.objects.get_in_workspace(ws(request), pk=rule_id)
    return actions.do_update_auto_reply(rule, me(request), **payload.dict(exclude_unset=True))


@router.delete("/auto-replies/{int:rule_id}", response={204: None, **ERRORS})
def delete_auto_reply(request: HttpRequest, rule_id: int) -> Any:
    actions.do_delete_auto_reply(AutoReplyRule.objects.get_in_workspace(ws(request), pk=rule_id), me(request))
    return Status(204, None)
