"""Group health API: daily health snapshots, the 7×24 heatmap, members with inferred roles
and their explanations, re-pull (重新拉群), and group alerts."""


import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Router, Schema, Status
from ninja.pagination import paginate
from pydantic import Field

from siyu.accounts.permissions import Perm, require
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS, Page
from siyu.communities import actions
from siyu.communities.heatmap import best_hours, group_heatmap
from siyu.communities.models import Alert, Group, GroupHealthDay, GroupRepull, Membership
from siyu.core.errors import NotFound, ValidationFailed

router = Router(tags=["group health"])


def _group(request: HttpRequest, group_id: int) -> Group:
    require(me(request), Perm.VIEW_GROUPS)
    group = Group.objects.in_workspace(ws(request)).select_related("workspace", "owner", "channel_account").filter(pk=group_id).first()
    if group is None:
        raise NotFound("group not found", code="group_not_found")
    return group


class HealthDayOut(Schema):
    day: dt.date
    state: str
    messages: int
    talkers: int
    members: int
    active_ratio: float
    messages_avg7: float
    talkers_avg7: float
    messages_base: float | None
    talkers_base: float | None
    newcomers: int
    newcomer_retention: float | None
    silence_days: int
    ads_caught: int
    reasons: list[str]


class HealthOut(Schema):
    group_id: int
    state: str | None
    latest: HealthDayOut | None
    days: list[HealthDayOut]


@router.get("/groups/{int:group_id}/health", response={200: HealthOut, **ERRORS})
def get_health(request: HttpRequest, group_id: int, days: int = 30) -> Any:
    """The stored daily snapshots (oldest first) of the last ``days`` days; the nightly task
    fills them, ``POST …/health/refresh`` fills missing days now."""
    if not 1 <= days <= 366:
        raise ValidationFailed("days must be between 1 and 366", code="invalid_days")
    group = _group(request, group_id)
    rows = list(GroupHealthDay.objects.filter(group=group).order_by("-day")[:days])[::-1]
    latest = rows[-1] if rows else None
    return {"group_id": group.pk, "state": latest.state if latest else None, "latest": latest, "days": rows}


@router.post("/groups/{int:group_id}/health/refresh", response={200: HealthOut, **ERRORS})
def refresh_health(request: HttpRequest, group_id: int) -> Any:
    group = _group(request, group_id)
    require(me(request), Perm.MANAGE_GROUPS)
    actions.do_refresh_group_health(group)
    return get_health(request, group_id)


class HeatmapOut(Schema):
    group_id: int
    days: int
    time_zone: str
    grid: list[list[int]] = Field(description="7 rows (Monday first) × 24 hours of message counts")
    best_hours: list[int]


@router.get("/groups/{int:group_id}/heatmap", response={200: HeatmapOut, **ERRORS})
def get_heatmap(request: HttpRequest, group_id: int, days: int = 30) -> Any:
    if not 1 <= days <= 366:
        raise ValidationFailed("days must be between 1 and 366", code="invalid_days")
    group = _group(request, group_id)
    grid = group_heatmap(group, days=days)
    return {"group_id": group.pk, "days": days, "time_zone": group.workspace.time_zone, "grid": grid,
            "best_hours": best_hours(group, heatmap=grid)}


class RoleOut(Schema):
    membership_id: int
    contact_id: int
    contact_name: str
    role: str
    role_assigned: bool
    reason: str
    candidate: str
    candidate_reason: str
    candidate_since: dt.date | None
    candidate_streak: int
    evaluated_on: dt.date | None


@router.get("/groups/{int:group_id}/roles", response={200: list[RoleOut], **ERRORS})
@paginate(Page)
def list_roles(request: HttpRequest, group_id: int, role: str | None = None) -> Any:
    """Open members with their role — set by hand (``role_assigned``) or inferred, with the
    explanation — and the candidate role waiting out the anti-flapping period."""
    group = _group(request, group_id)
    qs = Membership.objects.filter(group=group, left_at__isnull=True).select_related("contact").order_by("joined_at", "id")
    if role:
        qs = qs.filter(role=role)
    return [
        {"membership_id": m.pk, "contact_id": m.contact_id, "contact_name": m.contact.name, "role": m.role, "role_assigned": m.role_assigned,
         "reason": "set by hand" if m.role_assigned else m.role_reason, "candidate": m.role_candidate,
         "candidate_reason": m.role_candidate_reason, "candidate_since": m.role_candidate_since,
         "candidate_streak": m.role_candidate_streak, "evaluated_on": m.role_evaluated_on}
        for m in qs
    ]


class RepullIn(Schema):
    new_name: str | None = Field(None, max_length=100)
    farewell_text: str | None = Field(None, max_length=500)
    min_messages: int = 1
    window_days: int = 30
    archive_old: bool = True


class RepullOut(Schema):
    id: int
    old_group_id: int
    new_group_id: int
    new_group_name: str
    status: str
    invited: list[int]
    applied: list[dict[str, Any]]
    created_at: dt.datetime

    @staticmethod
    def resolve_new_group_name(obj: GroupRepull) -> str:
        return obj.new_group.name


@router.post("/groups/{int:group_id}/repull", response={201: RepullOut, 200: RepullOut, **ERRORS})
def repull(request: HttpRequest, group_id: int, payload: RepullIn) -> Any:
    """Re-pull the group: 201 with the new re-pull, 200 with the existing one when it was
    already re-pulled."""
    group = _group(request, group_id)
    existed = GroupRepull.objects.filter(old_group=group).exists()
    result = actions.do_repull_group(ws(request), group, actor=me(request), **payload.dict())
    return Status(200 if existed else 201, result)


class AlertOut(Schema):
    id: int
    group_id: int
    group_name: str
    kind: str
    day: dt.date
    from_state: str
    to_state: str
    message: str
    detail: dict[str, Any]
    staff_task_id: int | None
    created_at: dt.datetime
    resolved_at: dt.datetime | None
    resolved_by_id: int | None
    resolution: str

    @staticmethod
    def resolve_group_name(obj: Alert) -> str:
        return obj.group.name


@router.get("/alerts", response={200: list[AlertOut], **ERRORS})
@paginate(Page)
def list_alerts(request: HttpRequest, state: str = "open", group_id: int | None = None) -> Any:
    """Group alerts, newest first; ``state`` is open (default), resolved or all."""
    require(me(request), Perm.VIEW_GROUPS)
    qs = Alert.objects.in_workspace(ws(request)).select_related("group").order_by("-created_at", "-id")
    if state == "open":
        qs = qs.filter(resolved_at__isnull=True)
    elif state == "resolved":
        qs = qs.filter(resolved_at__isnull=False)
    elif state != "all":
        raise ValidationFailed("state must be open, resolved or all", code="invalid_state")
    if group_id is not None:
        qs = qs.filter(group_id=group_id)
    return qs


class ResolveIn(Schema):
    note: str = Field("", max_length=300)


@router.post("/alerts/{int:alert_id}/resolve", response={200: AlertOut, **ERRORS})
def resolve_alert(request: HttpRequest, alert_id: int, payload: ResolveIn) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    alert = Alert.objects.in_workspace(ws(request)).select_related("group__workspace", "staff_task").filter(pk=alert_id).first()
    if alert is None:
        raise NotFound("alert not found", code="alert_not_found")
    return actions.do_resolve_alert(alert, me(request), note=payload.note)
