"""Community engine API: moderation check, word lists, policies, appeals, group health
and member activity. Thin: every write goes through an action."""

import base64
import binascii
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema
from pydantic import Field

from siyu.accounts.permissions import Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS
from siyu.communities.models import Group
from siyu.core.errors import ValidationFailed
from siyu.moderation import actions
from siyu.moderation.models import ModerationCase, WordList

router = Router(tags=["community"])


class CheckIn(Schema):
    text: str = Field("", max_length=10000)
    group_id: int | None = None
    msgtype: str = "text"
    image_base64: str | None = Field(None, description="a PNG/JPEG, checked for QR codes that are not the workspace's own")


class Reason(Schema):
    detector: str
    evidence: str


class CheckOut(Schema):
    verdict: str
    reasons: list[Reason]


@router.post("/moderation/check", response={200: CheckOut, **ERRORS})
def check(request: HttpRequest, payload: CheckIn) -> Any:
    """The verdict for a text (and image) under the workspace's (or group's) policy; writes nothing."""
    require(me(request), Perm.VIEW_GROUPS)
    workspace = ws(request)
    if payload.group_id is not None:
        Group.objects.get_in_workspace(workspace, pk=payload.group_id)
    image = None
    if payload.image_base64:
        try:
            image = base64.b64decode(payload.image_base64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationFailed("image_base64 is not valid base64", code="invalid_image") from exc
    return actions.check_message(
        payload.text, workspace_id=workspace.pk, group_id=payload.group_id, image=image, msgtype=payload.msgtype
    ).as_dict()


class WordListIn(Schema):
    name: str
    words: list[str]
    kind: str = "sensitive_word"
    group_id: int | None = None
    is_active: bool = True


class WordListOut(Schema):
    id: int
    name: str
    kind: str
    group_id: int | None
    words: list[str]
    is_active: bool


@router.get("/moderation/word-lists", response={200: list[WordListOut], **ERRORS})
def list_word_lists(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return WordList.objects.in_workspace(ws(request))


@router.post("/moderation/word-lists", response={200: WordListOut, **ERRORS})
def save_word_list(request: HttpRequest, payload: WordListIn) -> Any:
    """Create or replace a word list by name."""
    workspace = ws(request)
    group = Group.objects.get_in_workspace(workspace, pk=payload.group_id) if payload.group_id is not None else None
    return actions.do_save_word_list(workspace, me(request), name=payload.name, words=payload.words, kind=payload.kind,
                                     group=group, is_active=payload.is_active)


class PolicyIn(Schema):
    config: dict[str, Any]
    group_id: int | None = None


@router.put("/moderation/policy", response={200: dict[str, Any], **ERRORS})
def set_policy(request: HttpRequest, payload: PolicyIn) -> Any:
    """Store the workspace default policy or a group's own."""
    workspace = ws(request)
    group = Group.objects.get_in_workspace(workspace, pk=payload.group_id) if payload.group_id is not None else None
    row = actions.do_set_policy(workspace, me(request), payload.config, group=group)
    return {"id": row.pk, "group_id": row.group_id, "config": row.config}


class UndoIn(Schema):
    note: str = ""


@router.post("/moderation/cases/{case_id}/undo", response={200: dict[str, Any], **ERRORS})
def undo_case(request: HttpRequest, case_id: int, payload: UndoIn) -> Any:
    """Grant an appeal: clear the strike, lift the blacklist, restore the membership."""
    case = ModerationCase.objects.get_in_workspace(ws(request), pk=case_id)
    case = actions.do_undo_case(case, me(request), note=payload.note)
    return {"id": case.pk, "undone_at": case.undone_at, "note": case.note, "applied": case.applied}
