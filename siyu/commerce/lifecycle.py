"""Lifecycle stages (客户生命周期): new → nurtured → first purchase → repeat → VIP →
at risk → churned → recalled, computed from orders, activity, membership and an optional
P(alive) prediction. Pure rules plus the batched reads that feed them; the writes (a
``StageTransition`` and a ``stage_changed`` timeline event) are
:func:`siyu.commerce.actions.do_update_lifecycle` and ``do_recompute_lifecycles``.

The rules, first match wins (thresholds per workspace in ``CommerceSettings``):

Without a buying order (a fully refunded or cancelled order does not count):

* **churned** — no activity for ``churn_days`` (activity: messages, group joins, scans,
  redemptions, membership; the contact's creation counts as its first touch);
* **vip** — an active paid membership (bought outside the recorded orders);
* **new** — joined less than ``new_days`` ago;
* **nurtured** — otherwise: in the pool, reached and still active, not buying yet.

With buying orders:

* **churned** — no order *and* no activity for ``churn_days``;
* **at_risk** — no order for longer than ``max(at_risk_min_days, at_risk_factor × usual
  interval)`` (usual interval: the contact's mean gap between orders, or
  ``default_interval_days`` after a single order), or P(alive) below
  ``p_alive_threshold`` when a prediction is given;
* **recalled** — bought exactly once since the contact last became at risk or churned;
* **vip** — an active paid membership, or ≥ ``vip_min_orders`` orders, or lifetime net
  spend ≥ ``vip_min_spend``;
* **repeat** — two or more orders;
* **first_purchase** — one order.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, Max, Min, OuterRef, Q, Subquery, Sum

from siyu.commerce.models import BUYING_STATUSES, CardStatus, CommerceSettings, MemberCard, Order, StageTransition, TierKind
from siyu.commerce.promotions import cents
from siyu.contacts.models import Contact, ContactEvent, LifecycleStage

#: Timeline kinds that show the customer is still there (not staff actions like tagging).
ACTIVITY_KINDS = (
    "message", "joined_group", "scan", "order", "coupon_redeemed", "membership_joined", "membership_renewed",
)
LAPSED = (LifecycleStage.AT_RISK, LifecycleStage.CHURNED)


@dataclass(frozen=True)
class Thresholds:
    new_days: int = 14
    churn_days: int = 180
    at_risk_min_days: int = 45
    at_risk_factor: Decimal = Decimal("2.00")
    default_interval_days: int = 60
    vip_min_orders: int = 5
    vip_min_spend: Decimal = Decimal("5000.00")
    p_alive_threshold: Decimal = Decimal("0.300")

    @classmethod
    def from_settings(cls, settings: CommerceSettings) -> Thresholds:
        return cls(**{name: getattr(settings, name) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Facts:
    """What the rules look at for one contact."""

    contact_id: int
    stage: str
    created_at: dt.datetime
    orders: int = 0
    spend: Decimal = Decimal("0.00")
    first_order_at: dt.datetime | None = None
    last_order_at: dt.datetime | None = None
    last_activity_at: dt.datetime | None = None
    paid_member: bool = False
    lapsed_at: dt.datetime | None = None  # last time the contact became at risk or churned
    orders_since_lapse: int = 0
    p_alive: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            key: (value.isoformat() if isinstance(value, dt.datetime) else str(value) if isinstance(value, Decimal) else value)
            for key, value in asdict(self).items()
            if key not in ("contact_id", "stage")
        }


def _days(delta: dt.timedelta) -> float:
    return delta.total_seconds() / 86400


def compute_stage(facts: Facts, limits: Thresholds, now: dt.datetime) -> tuple[str, str]:
    """The stage the facts put the contact in, with the reason in words."""
    touches = [t for t in (facts.created_at, facts.last_activity_at, facts.last_order_at) if t is not None]
    quiet = _days(now - max(touches))
    if facts.orders == 0:
        if quiet >= limits.churn_days:
            return LifecycleStage.CHURNED, f"no order and no activity for {int(quiet)} days (churned after {limits.churn_days})"
        if facts.paid_member:
            return LifecycleStage.VIP, "active paid membership"
        age = _days(now - facts.created_at)
        if age < limits.new_days:
            return LifecycleStage.NEW, f"joined {int(age)} days ago, no order yet"
        return LifecycleStage.NURTURED, f"in the pool for {int(age)} days, last active {int(quiet)} days ago, no order yet"
    assert facts.last_order_at is not None and facts.first_order_at is not None
    since_order = _days(now - facts.last_order_at)
    if since_order >= limits.churn_days and quiet >= limits.churn_days:
        return LifecycleStage.CHURNED, f"no order and no activity for {int(quiet)} days (churned after {limits.churn_days})"
    if facts.orders >= 2:
        interval = _days(facts.last_order_at - facts.first_order_at) / (facts.orders - 1)
        usual = f"usual interval {interval:.0f} days"
    else:
        interval = limits.default_interval_days
        usual = f"one order so far, assumed interval {interval} days"
    at_risk_after = max(float(limits.at_risk_min_days), float(limits.at_risk_factor) * interval)
    if since_order >= at_risk_after:
        return LifecycleStage.AT_RISK, f"no order for {int(since_order)} days ({usual}; at risk after {at_risk_after:.0f})"
    if facts.p_alive is not None and Decimal(str(facts.p_alive)) < limits.p_alive_threshold:
        return LifecycleStage.AT_RISK, f"P(alive) {facts.p_alive:.2f} is below {limits.p_alive_threshold}"
    if facts.lapsed_at is not None and facts.orders_since_lapse == 1:
        return LifecycleStage.RECALLED, f"bought again on {facts.last_order_at.date().isoformat()} after lapsing on {facts.lapsed_at.date().isoformat()}"
    if facts.paid_member:
        return LifecycleStage.VIP, "active paid membership"
    if facts.orders >= limits.vip_min_orders:
        return LifecycleStage.VIP, f"{facts.orders} orders (VIP from {limits.vip_min_orders})"
    if facts.spend >= limits.vip_min_spend:
        return LifecycleStage.VIP, f"spent ¥{facts.spend} (VIP from ¥{limits.vip_min_spend})"
    if facts.orders >= 2:
        return LifecycleStage.REPEAT, f"{facts.orders} orders"
    return LifecycleStage.FIRST_PURCHASE, f"first order on {facts.last_order_at.date().isoformat()}"


def gather_facts(
    workspace_id: int, contact_ids: Sequence[int], p_alive: Mapping[int, float] | None = None, *, now: dt.datetime
) -> dict[int, Facts]:
    """Facts for these contacts of the workspace, in a fixed number of queries."""
    contacts = list(
        Contact.objects.in_workspace(workspace_id).filter(pk__in=list(contact_ids), merged_into__isnull=True)
        .values_list("pk", "lifecycle_stage", "created_at")
    )
    ids = [row[0] for row in contacts]
    orders = {
        row["contact_id"]: row
        for row in Order.objects.in_workspace(workspace_id).filter(contact_id__in=ids, status__in=BUYING_STATUSES)
        .values("contact_id").annotate(n=Count("id"), spend=Sum("net_amount"), first=Min("placed_at"), last=Max("placed_at"))
    }
    activity = dict(
        ContactEvent.objects.in_workspace(workspace_id).filter(contact_id__in=ids, kind__in=ACTIVITY_KINDS, occurred_at__lte=now)
        .values("contact_id").annotate(last=Max("occurred_at")).values_list("contact_id", "last")
    )
    paid = set(
        MemberCard.objects.in_workspace(workspace_id)
        .filter(contact_id__in=ids, status=CardStatus.ACTIVE, tier__kind=TierKind.PAID, valid_from__lte=now)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=now))
        .values_list("contact_id", flat=True)
    )
    lapses = dict(
        StageTransition.objects.in_workspace(workspace_id).filter(contact_id__in=ids, to_stage__in=LAPSED)
        .values("contact_id").annotate(last=Max("at")).values_list("contact_id", "last")
    )
    last_lapse = StageTransition.objects.filter(contact_id=OuterRef("contact_id"), to_stage__in=LAPSED).order_by("-at", "-id").values("at")[:1]
    since_lapse = dict(
        Order.objects.in_workspace(workspace_id).filter(contact_id__in=list(lapses), status__in=BUYING_STATUSES)
        .annotate(lapse=Subquery(last_lapse)).filter(placed_at__gt=F("lapse"))
        .values("contact_id").annotate(n=Count("id")).values_list("contact_id", "n")
    )
    facts: dict[int, Facts] = {}
    for cid, stage, created_at in contacts:
        bought = orders.get(cid)
        facts[cid] = Facts(
            contact_id=cid,
            stage=stage,
            created_at=created_at,
            orders=bought["n"] if bought else 0,
            spend=cents(bought["spend"]) if bought else Decimal("0.00"),
            first_order_at=bought["first"] if bought else None,
            last_order_at=bought["last"] if bought else None,
            last_activity_at=activity.get(cid),
            paid_member=cid in paid,
            lapsed_at=lapses.get(cid),
            orders_since_lapse=since_lapse.get(cid, 0),
            p_alive=p_alive.get(cid) if p_alive else None,
        )
    return facts
