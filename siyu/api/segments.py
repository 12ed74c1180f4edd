"""Segments (人群包) API: CRUD, live preview, builds and their history, members, static upload."""


import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import File, Form, Router, Schema, Status, UploadedFile
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.permissions import Perm, has_perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.contacts.models import Contact
from siyu.segments import actions
from siyu.segments.models import Segment, SegmentBuild
from siyu.segments.queries import preview, visible_members

router = Router(tags=["segments"])


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    kind: str
    definition: dict[str, Any]
    size: int
    last_built_at: dt.datetime | None
    last_build_ms: int | None
    created_at: dt.datetime
    updated_at: dt.datetime


class SegmentIn(Schema):
    name: str = Field(min_length=1, max_length=100)
    kind: str = "dynamic"
    description: str = Field("", max_length=2000)
    definition: dict[str, Any] | None = None


class SegmentPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    definition: dict[str, Any] | None = None


class DefinitionIn(Schema):
    definition: dict[str, Any]


class ContactBrief(Schema):
    id: int
    name: str
    phone: str = Field(description="masked (138****5678) unless your role may see identifiers")
    city: str
    lifecycle_stage: str
    owner_id: int | None

    @staticmethod
    def resolve_phone(obj: Contact, context: Any) -> str:
        if obj.phone_hash and has_perm(me(context["request"]), Perm.VIEW_PII):
            return obj.phone
        return obj.phone_masked


class PreviewOut(Schema):
    count: int
    definition: dict[str, Any]
    sample: list[ContactBrief]


class BuildOut(Schema):
    id: int
    mode: str
    started_at: dt.datetime
    duration_ms: int
    size: int
    entered: int
    left: int


class SelectionIn(Schema):
    contact_ids: list[int] = Field(max_length=200_000)
    replace: bool = True


class StaticOut(Schema):
    rows: int
    matched: int
    unknown_rows: list[dict[str, Any]]
    entered: int
    left: int
    size: int


def _segment(request: HttpRequest, segment_id: int) -> Segment:
    require(me(request), Perm.VIEW_SEGMENTS)
    return Segment.objects.select_related("workspace").get_in_workspace(ws(request), pk=segment_id)


@router.get("/segments", response={200: list[SegmentOut], **ERRORS})
@paginate(Page)
def list_segments(request: HttpRequest, kind: str | None = None) -> Any:
    require(me(request), Perm.VIEW_SEGMENTS)
    qs = Segment.objects.in_workspace(ws(request))
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("name", "id")


@router.post("/segments", response={201: SegmentOut, **ERRORS})
def create_segment(request: HttpRequest, payload: SegmentIn) -> Any:
    segment = actions.do_create_segment(
        ws(request), me(request), name=payload.name, kind=payload.kind, definition=payload.definition, description=payload.description
    )
    return Status(201, _segment(request, segment.pk))


@router.post("/segments/preview", response={200: PreviewOut, **ERRORS})
def preview_segment(request: HttpRequest, payload: DefinitionIn) -> Any:
    """Count and up to 20 sample contacts (PII masked) for a definition; nothing stored."""
    require(me(request), Perm.VIEW_SEGMENTS)
    result = preview(ws(request), me(request), payload.definition)
    return {"count": result.count, "definition": result.definition, "sample": result.sample}


@router.get("/segments/{int:segment_id}", response={200: SegmentOut, **ERRORS})
def get_segment(request: HttpRequest, segment_id: int) -> Any:
    return _segment(request, segment_id)


@router.patch("/segments/{int:segment_id}", response={200: SegmentOut, **ERRORS})
def update_segment(request: HttpRequest, segment_id: int, payload: SegmentPatch) -> Any:
    actions.do_update_segment(_segment(request, segment_id), me(request), **payload.dict(exclude_unset=True))
    return _segment(request, segment_id)


@router.delete("/segments/{int:segment_id}", response={204: None, **ERRORS})
def delete_segment(request: HttpRequest, segment_id: int) -> Any:
    actions.do_delete_segment(_segment(request, segment_id), me(request))
    return Status(204, None)


@router.post("/segments/{int:segment_id}/build", response={200: BuildOut, **ERRORS})
def build_segment(request: HttpRequest, segment_id: int) -> Any:
    return actions.do_build_segment(_segment(request, segment_id), actor=me(request))


@router.get("/segments/{int:segment_id}/builds", response={200: list[BuildOut], **ERRORS})
@paginate(Page)
def list_builds(request: HttpRequest, segment_id: int) -> Any:
    segment = _segment(request, segment_id)
    return SegmentBuild.objects.in_workspace(ws(request)).filter(segment=segment).order_by("-started_at", "-id")


@router.get("/segments/{int:segment_id}/members", response={200: list[ContactBrief], **ERRORS})
@paginate(Page)
def list_members(request: HttpRequest, segment_id: int) -> Any:
    """Current members you may see (agents: only their own contacts)."""
    segment = _segment(request, segment_id)
    return visible_members(ws(request), me(request), segment).order_by("-id")


@router.put("/segments/{int:segment_id}/members", response={200: StaticOut, **ERRORS})
def set_members(request: HttpRequest, segment_id: int, payload: SelectionIn) -> Any:
    """A static segment's members from a selection of contact ids."""
    changes = actions.do_set_static_members(_segment(request, segment_id), me(request), payload.contact_ids, replace=payload.replace)
    return {"rows": len(payload.contact_ids), "matched": len(set(payload.contact_ids)), "unknown_rows": [],
            "entered": changes.entered, "left": changes.left, "size": changes.size}


@router.post("/segments/{int:segment_id}/upload", response={200: StaticOut, **ERRORS})
def upload_members(request: HttpRequest, segment_id: int, file: File[UploadedFile], replace: Form[bool] = True) -> Any:
    """A static segment's members from a CSV with a contact_id, phone or external_id column."""
    report = actions.do_import_static_csv(_segment(request, segment_id), me(request), file.read(), replace=replace)
    return report.as_dict()
