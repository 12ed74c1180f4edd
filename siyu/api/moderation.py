"""Moderation API: the cases (处理记录) the group bot's policy produced, with the rule
that fired and what was done about it."""


import datetime as dt
import re
from typing import Any

from django.http import HttpRequest
from ninja import Query, Router, Schema
from ninja.pagination import paginate

from siyu.accounts.permissions import Perm, has_perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.contacts.queries import visible_contacts
from siyu.moderation.models import ModerationCase

router = Router(tags=["moderation"])

#: a run of 7+ digits, separators allowed between them: phone numbers in case texts
_DIGIT_RUN = re.compile(r"\d(?:[\s\-.]*\d){6,}")


def _mask_digits(text: str) -> str:
    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return f"{digits[:3]}****{digits[-4:]}"

    return _DIGIT_RUN.sub(mask, text)


class CaseOut(Schema):
    id: int
    group_id: int
    contact_id: int | None
    message_id: int | None
    verdict: str
    reasons: list[dict[str, Any]]
    text: str
    applied: list[dict[str, Any]]
    created_at: dt.datetime
    undone_at: dt.datetime | None

    @staticmethod
    def resolve_text(obj: ModerationCase, context: dict[str, Any]) -> str:
        if has_perm(me(context["request"]), Perm.VIEW_PII):
            return obj.text
        return _mask_digits(obj.text)


class CaseFilters(Schema):
    group_id: int | None = None
    contact_id: int | None = None
    verdict: str | None = None


@router.get("/moderation/cases", response={200: list[CaseOut], **ERRORS})
@paginate(Page)
def list_cases(request: HttpRequest, filters: Query[CaseFilters]) -> Any:
    """Newest first. An agent sees only the cases about their own contacts; phone numbers
    in the message text are masked unless the role may see personal data."""
    staff = me(request)
    require(staff, Perm.VIEW_GROUPS)
    qs = ModerationCase.objects.in_workspace(ws(request))
    if not has_perm(staff, Perm.VIEW_ALL_CONTACTS):
        qs = qs.filter(contact__in=visible_contacts(ws(request), staff))
    if filters.group_id is not None:
        qs = qs.filter(group_id=filters.group_id)
    if filters.contact_id is not None:
        qs = qs.filter(contact_id=filters.contact_id)
    if filters.verdict:
        qs = qs.filter(verdict=filters.verdict)
    return qs.order_by("-created_at", "-id")
