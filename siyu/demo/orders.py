"""Twelve months of orders for the demo workspace, from a repurchase process.

The demo plan (:mod:`siyu.demo.generate`) already puts ``order`` events in the 30-day
window; :func:`seed_orders` turns those into ``Order`` rows and adds the year before the
window from a BG/NBD-like process, so that the repurchase fit, RFM, the Pareto view and
the sales formula have something real to chew on:

- every buyer (a contact the plan puts in a buying stage, added before the window) makes
  a first purchase a few days after being added;
- after it, purchases arrive as a Poisson process with a rate λ ~ Gamma(r, α) per
  customer, and after each purchase the customer drops out for good with a probability
  p ~ Beta(a, b) (the BG/NBD story); the plan's churned and at-risk customers stop
  earlier, as their stage says;
- order values follow Gamma-Gamma: each customer has a mean spend ν, and each order is
  Gamma around it, snapped to the brand's price points (¥99 … ¥1,299) with the usual
  member discounts.

All random numbers come from ``numpy.random.default_rng(seed)`` in contact order, and all
times are relative to the plan's anchor (today 00:00 Asia/Shanghai), so a seed gives the
same orders on the same day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np
from django.db import transaction

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.commerce.actions import do_recompute_lifecycles
from siyu.commerce.events import CommerceEvent, order_event_data
from siyu.commerce.models import Order, OrderStatus, PointsEntry, PointsReason
from siyu.commerce.queries import settings_for
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.models import Workspace
from siyu.demo.generate import BUYER_STAGES, HISTORY_DAYS, TZ, WINDOW_DAYS

__all__ = ["ONLINE_STORE", "PROCESS", "do_seed_demo_orders", "seed_orders"]

ONLINE_STORE = "衣澜官方小程序"
PRICES = (99, 129, 159, 199, 239, 269, 299, 329, 359, 399, 459, 529, 599, 699, 899, 1099, 1299)
CENT = Decimal("0.01")
_BATCH = 1000


@dataclass(frozen=True)
class Process:
    """Population parameters of the simulated repurchase process (per day)."""

    r: float = 1.2  # λ ~ Gamma(r, scale=1/alpha): mean r/alpha ≈ one purchase every ~50 days
    alpha: float = 60.0
    a: float = 0.8  # p ~ Beta(a, b): mean dropout ≈ 0.18 after each purchase
    b: float = 3.6
    spend_q: float = 5.0  # ν ~ Gamma(q, scale=mean/q): customers' mean order value
    spend_mean: float = 460.0
    spend_p: float = 6.0  # order value ~ Gamma(p, scale=ν/p)
    online_share: float = 0.55


PROCESS = Process()


@dataclass(frozen=True)
class _Sale:
    contact_id: int
    placed_at: dt.datetime
    gross: Decimal
    discount: Decimal
    external_id: str
    store: str
    channel: str
    staff_id: int | None
    event_id: int | None = None  # the plan's window event this order stands behind


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def _price(value: float) -> Decimal:
    """The price point nearest to a drawn order value."""
    return Decimal(min(PRICES, key=lambda p: abs(p - value)))


def _discount(rng: np.random.Generator, gross: Decimal) -> Decimal:
    rate = rng.choice((0.0, 0.1, 0.2), p=(0.7, 0.2, 0.1))
    return (gross * Decimal(str(rate))).quantize(CENT)


def _simulate(
    workspace: Workspace, rng: np.random.Generator, anchor: dt.datetime, process: Process
) -> tuple[list[_Sale], list[tuple[int, dict[str, Any]]]]:
    window_start = anchor - dt.timedelta(days=WINDOW_DAYS)
    history_start = anchor - dt.timedelta(days=HISTORY_DAYS)
    stores = dict(Staff.objects.in_workspace(workspace).values_list("pk", "store"))
    contacts = list(
        Contact.objects.in_workspace(workspace).order_by("pk").values_list("pk", "created_at", "lifecycle_stage", "owner_id")
    )
    owner_of = {pk: owner for pk, _, _, owner in contacts}
    window = list(
        ContactEvent.objects.in_workspace(workspace).filter(kind="order").order_by("occurred_at", "pk")
        .values_list("pk", "contact_id", "occurred_at", "data")
    )
    # Whoever buys in the window is alive: their history must not have them drop out,
    # or the data would contradict the model the fit assumes.
    alive = {row[1] for row in window}
    sales: list[_Sale] = []
    serial = 50000
    for pk, created_at, stage, owner_id in contacts:
        # Draw the customer's parameters whatever happens next, so one contact's fate
        # does not shift the random stream of the others.
        rate = rng.gamma(process.r, 1.0 / process.alpha) * (1.8 if stage == "vip" else 1.0)
        dropout = rng.beta(process.a, process.b)
        mean_spend = rng.gamma(process.spend_q, process.spend_mean / process.spend_q) * (1.5 if stage == "vip" else 1.0)
        first_delay = rng.exponential(6.0)
        if stage not in BUYER_STAGES or created_at >= window_start:
            continue
        # The plan's lapsed customers stopped buying long enough ago to be lapsed.
        stop = {
            "churned": anchor - dt.timedelta(days=float(rng.uniform(185, 300))),
            "at_risk": anchor - dt.timedelta(days=float(rng.uniform(95, 170))),
        }.get(stage, window_start)
        start = max(created_at, history_start) + dt.timedelta(days=first_delay)
        if start >= stop:
            start = max(created_at, history_start) + (stop - max(created_at, history_start)) * float(rng.random())
        if start >= stop:
            continue
        when = start
        while when < stop:
            serial += 1
            value = rng.gamma(process.spend_p, mean_spend / process.spend_p)
            gross = _price(float(value))
            online = rng.random() < process.online_share
            # Shops are open 10:00–22:00 local; the mini program sells around the clock but
            # mostly in the evening.
            local = when.astimezone(TZ)
            hour = float(rng.uniform(10, 22)) if not online else float(rng.choice((rng.uniform(12, 14), rng.uniform(19, 23.9))))
            placed = dt.datetime.combine(local.date(), dt.time.min, tzinfo=TZ) + dt.timedelta(hours=hour)
            placed = min(max(placed, created_at), stop - dt.timedelta(minutes=1))
            sales.append(
                _Sale(
                    contact_id=pk, placed_at=placed.astimezone(dt.UTC), gross=gross, discount=_discount(rng, gross),
                    external_id=f"YL{placed.astimezone(TZ):%Y%m%d}{serial:05d}",
                    store=ONLINE_STORE if online else stores.get(owner_id, "") or ONLINE_STORE,
                    channel="mini_program" if online else "store", staff_id=owner_id,
                )
            )
            if rng.random() < dropout and pk not in alive:
                break
            when = when + dt.timedelta(days=float(rng.exponential(1.0 / rate)) + 1.0)
    # The plan's window orders become real orders; their events stay as the plan wrote them.
    for event_id, contact_id, occurred_at, data in window:
        amount = Decimal(str(data.get("amount", "0")))
        sales.append(
            _Sale(
                contact_id=contact_id, placed_at=occurred_at, gross=amount, discount=Decimal("0.00"),
                external_id=str(data.get("order_no") or f"YLW{event_id:08d}"), store=str(data.get("store", "")),
                channel=str(data.get("channel", "")), staff_id=owner_of.get(contact_id), event_id=event_id,
            )
        )
    return sales, [(e[0], e[3]) for e in window]


def do_seed_demo_orders(workspace: Workspace, *, seed: int, anchor: dt.datetime, process: Process = PROCESS) -> dict[str, int]:
    """Write the demo's orders (12 months, see the module docstring), their ``order``
    timeline events and points ledger entries, then run the lifecycle pass once.

    Like :func:`siyu.demo.seed.do_seed_demo_workspace`, the rows are generated data written
    with ``bulk_create`` and audited once, as ``demo.orders_seeded`` with the counts:
    ``do_record_order`` per row would take minutes and bury the audit log. Points follow
    the workspace's ``points_per_yuan`` (multiplier 1: the demo has no member cards yet).
    The lifecycle pass (``do_recompute_lifecycles`` as of just before ``anchor``) then records a
    ``StageTransition`` for each contact whose orders put it in another stage."""
    rng = np.random.default_rng(seed)
    sales, window_events = _simulate(workspace, rng, anchor, process)
    rate = settings_for(workspace).points_per_yuan
    with transaction.atomic():
        orders = [
            Order(
                workspace_id=workspace.pk, contact_id=s.contact_id, external_id=s.external_id, placed_at=s.placed_at,
                status=OrderStatus.PAID, currency=workspace.currency or "CNY", gross_amount=s.gross, discount_amount=s.discount,
                refunded_amount=Decimal("0.00"), net_amount=s.gross - s.discount, store=s.store, staff_id=s.staff_id,
                source_channel=s.channel,
            )
            for s in sales
        ]
        Order.objects.bulk_create(orders, batch_size=_BATCH)
        points = [int((o.net_amount * rate).to_integral_value(rounding=ROUND_DOWN)) for o in orders]
        earned = [
            (
                PointsEntry(
                    workspace_id=workspace.pk, contact_id=s.contact_id, delta=n, reason=PointsReason.ORDER, order_id=o.pk,
                    note=f"order {o.external_id}", idempotency_key=f"order:{o.pk}:earn",
                    data={"rate": str(rate), "multiplier": "1", "net_amount": str(o.net_amount), "uncollected": 0},
                ),
                o.placed_at,
            )
            for s, o, n in zip(sales, orders, points, strict=True)
            if n > 0
        ]
        entries = [entry for entry, _ in earned]
        PointsEntry.objects.bulk_create(entries, batch_size=_BATCH)
        # auto_now_add stamps the seeding time; the ledger should read like the orders.
        for entry, placed_at in earned:
            entry.created_at = placed_at
        PointsEntry.objects.bulk_update(entries, ["created_at"], batch_size=_BATCH)

        by_event = {s.event_id: (o, n) for s, o, n in zip(sales, orders, points, strict=True) if s.event_id is not None}
        updated: list[ContactEvent] = []
        for event_id, data in window_events:
            order, n = by_event[event_id]
            updated.append(ContactEvent(pk=event_id, data={**data, **order_event_data(order), "points": n}))
        ContactEvent.objects.bulk_update(updated, ["data"], batch_size=_BATCH)
        history = [
            ContactEvent(
                workspace_id=workspace.pk, contact_id=s.contact_id, kind=CommerceEvent.ORDER, occurred_at=o.placed_at,
                data={**order_event_data(o), "amount": str(o.net_amount), "channel": o.source_channel, "points": n},
                idempotency_key=f"demo:{seed}:order:{o.external_id}",
            )
            for s, o, n in zip(sales, orders, points, strict=True)
            if s.event_id is None
        ]
        ContactEvent.objects.bulk_create(history, batch_size=_BATCH)
        buyers = {o.contact_id for o in orders}
        counts = {
            "orders": len(orders),
            "buyers": len(buyers),
            "points_entries": len(entries),
            "order_events": len(history),
            "window_orders": len(updated),
        }
        record_audit(
            workspace, None, "demo.orders_seeded", target=workspace,
            summary=f"demo orders: {len(orders)} orders of {len(buyers)} buyers over {HISTORY_DAYS} days (seed {seed})",
            after={**counts, "seed": seed, "anchor": anchor.isoformat()},
        )
        # A second before the anchor: the demo dates nothing at or after today's midnight.
        stages = do_recompute_lifecycles(workspace.pk, now=anchor - dt.timedelta(seconds=1))
    return {**counts, "stage_changes": stages.get("changed", 0)}


def seed_orders(workspace: Workspace, seed: int, *, anchor: dt.datetime | None = None) -> dict[str, int]:
    """Seed the demo workspace's 12 months of orders (see :func:`do_seed_demo_orders`);
    ``anchor`` defaults to today 00:00 Asia/Shanghai, as the demo plan's."""
    from siyu.demo.generate import anchor_for

    if anchor is None:
        from django.utils import timezone

        anchor = anchor_for(timezone.now().astimezone(TZ).date())
    return do_seed_demo_orders(workspace, seed=seed, anchor=anchor)
