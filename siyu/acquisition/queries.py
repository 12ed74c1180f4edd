"""Reads for acquisition: state resolution (closing the loop from a channel add event) and
the channel attribution report (scans → adds → joined group → first order → revenue,
cost per add, ROI, by day)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.db.models import Count, Q
from django.db.models.functions import TruncDate

from siyu.acquisition.models import AcquisitionChannel, ChannelSpend, CostModel, LiveCode, Scan
from siyu.communities.models import Membership
from siyu.contacts.models import Contact
from siyu.core.models import Workspace

LIVE_CODE_PREFIX = "lc:"
INVITE_PREFIX = "fx:"


def live_code_for_state(workspace_id: int | None, state: str) -> LiveCode | None:
    """The live code a channel ``state`` names (``lc:<code>``, or ``fx:<invite>`` of a
    fission participant, which enters through the campaign's code)."""
    state = state or ""
    qs = LiveCode.objects.select_related("channel")
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    if state.startswith(LIVE_CODE_PREFIX):
        return qs.filter(code=state[len(LIVE_CODE_PREFIX):]).first()
    if state.startswith(INVITE_PREFIX):
        from siyu.campaigns.models import Participant

        participant = Participant.objects.filter(invite_code=state[len(INVITE_PREFIX):]).select_related("campaign").first()
        if participant is None or participant.campaign.live_code_id is None:
            return None
        return qs.filter(pk=participant.campaign.live_code_id).first()
    return None


def resolve_state(state: str) -> tuple[str, str] | None:
    """First-touch ``(source_channel, source_campaign)`` for a live-code or invite state,
    or None when the state is not one of ours (the caller falls back to ``channel:campaign``)."""
    live_code = live_code_for_state(None, state)
    if live_code is None:
        return None
    campaign_key = ""
    if apps.is_installed("siyu.campaigns"):
        from siyu.campaigns.models import Campaign

        campaign = Campaign.objects.filter(live_code=live_code).order_by("-starts_at").first()
        campaign_key = campaign.key if campaign else ""
    return live_code.channel.key, campaign_key


@dataclass
class DayRow:
    day: dt.date
    scans: int = 0
    visitors: int = 0
    adds: int = 0
    joined_group: int = 0
    first_order: int = 0
    revenue: Decimal = Decimal("0.00")
    cost: Decimal = Decimal("0.00")
    cost_per_add: Decimal | None = None
    roi: Decimal | None = None


@dataclass
class ChannelReport:
    channel: str
    days: list[DayRow] = field(default_factory=list)
    total: DayRow = field(default_factory=lambda: DayRow(day=dt.date.min))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finish(row: DayRow) -> DayRow:
    if row.adds:
        row.cost_per_add = (row.cost / row.adds).quantize(Decimal("0.01"))
    if row.cost:
        row.roi = ((row.revenue - row.cost) / row.cost).quantize(Decimal("0.0001"))
    return row


def _period_cost(spends: list[ChannelSpend], day: dt.date) -> Decimal:
    total = Decimal("0")
    for spend in spends:
        if spend.starts_on <= day <= spend.ends_on:
            total += spend.amount / ((spend.ends_on - spend.starts_on).days + 1)
    return total


def channel_report(workspace: Workspace, channel: AcquisitionChannel, start: dt.date, end: dt.date) -> ChannelReport:
    """Attribution of one channel by local day from ``start`` to ``end`` (inclusive).
    Adds are contacts whose first touch is the channel, by the day they were added; the
    joined/ordered/revenue columns follow that cohort (to date). Cost: per add × adds,
    or per-period spend spread evenly over its days. ROI = (revenue − cost) / cost."""
    tz = workspace.tz
    lo = dt.datetime.combine(start, dt.time.min, tzinfo=tz)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time.min, tzinfo=tz)
    rows = {start + dt.timedelta(days=i): DayRow(day=start + dt.timedelta(days=i)) for i in range((end - start).days + 1)}
    scans = (
        Scan.objects.in_workspace(workspace).filter(live_code__channel=channel, scanned_at__gte=lo, scanned_at__lt=hi)
        .annotate(d=TruncDate("scanned_at", tzinfo=tz)).values("d")
        .annotate(n=Count("id"), v=Count("visitor_key", distinct=True))
    )
    for item in scans:
        rows[item["d"]].scans, rows[item["d"]].visitors = item["n"], item["v"]
    contacts = list(
        Contact.objects.in_workspace(workspace).filter(source_channel=channel.key, merged_into__isnull=True, created_at__gte=lo,
                                                       created_at__lt=hi).values_list("pk", "created_at")
    )
    day_of = {pk: created.astimezone(tz).date() for pk, created in contacts}
    for day in day_of.values():
        rows[day].adds += 1
    joined = set(Membership.objects.filter(contact_id__in=day_of).values_list("contact_id", flat=True).distinct())
    for pk in joined:
        rows[day_of[pk]].joined_group += 1
    if apps.is_installed("siyu.commerce"):
        from siyu.commerce.models import Order

        revenue: dict[int, Decimal] = defaultdict(Decimal)
        for contact_id, net in Order.objects.in_workspace(workspace).filter(
            contact_id__in=day_of, status__in=("paid", "partially_refunded")
        ).values_list("contact_id", "net_amount"):
            revenue[contact_id] += net
        for pk, amount in revenue.items():
            rows[day_of[pk]].first_order += 1
            rows[day_of[pk]].revenue += amount
    spends = list(channel.spends.filter(starts_on__lte=end, ends_on__gte=start)) if channel.cost_model == CostModel.PER_PERIOD else []
    for row in rows.values():
        if channel.cost_model == CostModel.PER_ADD:
            row.cost = channel.cost_per_add * row.adds
        elif channel.cost_model == CostModel.PER_PERIOD:
            row.cost = _period_cost(spends, row.day).quantize(Decimal("0.01"))
    report = ChannelReport(channel=channel.key, days=[_finish(r) for r in rows.values()])
    total = DayRow(day=start)
    for row in report.days:
        total.scans += row.scans
        total.visitors += row.visitors
        total.adds += row.adds
        total.joined_group += row.joined_group
        total.first_order += row.first_order
        total.revenue += row.revenue
        total.cost += row.cost
    report.total = _finish(total)
    return report


def live_code_stats(live_code: LiveCode) -> dict[str, Any]:
    """Where a code's scans went: per staff slot (today / total / caps) or per group slot
    (seats taken / capacity / members now)."""
    by_outcome = dict(live_code.scans.values_list("outcome").annotate(n=Count("id")).values_list("outcome", "n"))
    slots: list[dict[str, Any]] = []
    for s in live_code.staff_slots.select_related("staff"):
        slots.append({"slot_id": s.pk, "staff_id": s.staff_id, "name": s.staff.display_name, "weight": s.weight, "day": s.day, "day_count": s.day_count,
                      "daily_cap": s.daily_cap, "total_count": s.total_count, "total_cap": s.total_cap, "is_online": s.is_online,
                      "sync_status": s.sync_status, "sync_error": s.sync_error, "config_id": s.config_id})
    for g in live_code.group_slots.select_related("group").annotate(
        members=Count("group__memberships", filter=Q(group__memberships__left_at__isnull=True))
    ):
        slots.append({"slot_id": g.pk, "group_id": g.group_id, "name": g.group.name, "seats_taken": g.seats_taken, "capacity": g.capacity,
                      "members": g.members, "filled_at": g.filled_at})
    return {"code": live_code.code, "state": live_code.state, "scans": live_code.scan_count, "by_outcome": by_outcome, "slots": slots}
