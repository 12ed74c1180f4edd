import collections
import datetime as dt
from decimal import Decimal

import pytest

from siyu.accounts.models import AuditEntry
from siyu.analytics.queries import BgNbdQuery
from siyu.analytics.runners import run_query
from siyu.analytics.sources import WorkspaceSource
from siyu.commerce.models import Order, PointsEntry, StageTransition
from siyu.contacts.models import ContactEvent
from siyu.core.models import Workspace
from siyu.demo.generate import TZ, anchor_for
from siyu.demo.seed import DEMO_SLUG, do_seed_demo_workspace

pytestmark = pytest.mark.django_db

SIZE = 600
DAY = dt.date(2026, 3, 10)
ANCHOR = anchor_for(DAY)


def _demo() -> Workspace:
    return Workspace.objects.get(slug=DEMO_SLUG)


def _orders(ws: Workspace) -> list[tuple[object, ...]]:
    return list(
        Order.objects.in_workspace(ws).order_by("external_id").values_list(
            "external_id", "contact__identities__external_id", "placed_at", "gross_amount", "net_amount", "store", "staff__user__email"
        )
    )


def test_orders_span_a_year_and_a_fifth_of_buyers_repeat():
    # when
    do_seed_demo_workspace(contacts=SIZE, seed=42, today=DAY)

    # then
    ws = _demo()
    orders = list(Order.objects.in_workspace(ws))
    placed = [o.placed_at for o in orders]
    assert min(placed) >= ANCHOR - dt.timedelta(days=365)
    assert min(placed) < ANCHOR - dt.timedelta(days=300)
    assert max(placed) < ANCHOR
    months = {p.astimezone(TZ).strftime("%Y-%m") for p in placed}
    assert len(months) >= 12
    per_buyer = collections.Counter(o.contact_id for o in orders)
    repeaters = [c for c, n in per_buyer.items() if n >= 2]
    assert len(repeaters) >= 0.2 * len(per_buyer)
    assert all(o.net_amount == o.gross_amount - o.discount_amount - o.refunded_amount for o in orders)
    history = [o for o in orders if o.placed_at < ANCHOR - dt.timedelta(days=30)]
    assert all(Decimal("79.20") <= o.net_amount <= Decimal("1299.00") for o in history)
    assert all(o.staff_id == o.contact.owner_id for o in orders)


def test_every_order_has_its_timeline_event_and_points():
    # when
    do_seed_demo_workspace(contacts=SIZE, seed=42, today=DAY)

    # then
    ws = _demo()
    orders = {o.pk: o for o in Order.objects.in_workspace(ws)}
    events = ContactEvent.objects.in_workspace(ws).filter(kind="order")
    assert sorted(e.data["order_id"] for e in events) == sorted(orders)
    for event in events:
        order = orders[event.data["order_id"]]
        assert (event.contact_id, event.occurred_at, event.data["net_amount"]) == (order.contact_id, order.placed_at, str(order.net_amount))
    points = {e.order_id: e for e in PointsEntry.objects.in_workspace(ws)}
    assert set(points) == set(orders)
    for order_id, entry in points.items():
        assert entry.delta == int(orders[order_id].net_amount)  # 1 point per yuan, rounded down
        assert entry.created_at == orders[order_id].placed_at
    assert AuditEntry.objects.in_workspace(ws).filter(action="demo.orders_seeded").count() == 1


def test_lifecycle_pass_ran_once_just_before_the_anchor():
    # when
    do_seed_demo_workspace(contacts=SIZE, seed=42, today=DAY)

    # then
    ws = _demo()
    transitions = list(StageTransition.objects.in_workspace(ws))
    assert transitions and {t.at for t in transitions} == {ANCHOR - dt.timedelta(seconds=1)}
    assert not ContactEvent.objects.in_workspace(ws).filter(occurred_at__gte=ANCHOR).exists()
    assert len({t.contact_id for t in transitions}) == len(transitions)
    for transition in transitions:
        assert transition.contact.lifecycle_stage == transition.to_stage


def test_bgnbd_fits_the_demo_orders():
    # given
    do_seed_demo_workspace(contacts=SIZE, seed=42, today=DAY)

    # when
    result = run_query(BgNbdQuery(observation_end=DAY - dt.timedelta(days=1)), WorkspaceSource(_demo()))

    # then
    assert result.repeat_customers >= 20
    assert result.diagnostics.converged is True
    assert result.p is not None  # Gamma-Gamma fitted too
    assert 0 < result.expected_alive_customers <= result.customers


def test_same_seed_gives_the_same_orders_and_another_seed_differs():
    # given
    do_seed_demo_workspace(contacts=SIZE, seed=7, today=DAY)
    first = _orders(_demo())
    _demo().delete()

    # when
    do_seed_demo_workspace(contacts=SIZE, seed=7, today=DAY)
    again = _orders(_demo())
    _demo().delete()
    do_seed_demo_workspace(contacts=SIZE, seed=8, today=DAY)
    other = _orders(_demo())

    # then
    assert again == first
    assert other != first
