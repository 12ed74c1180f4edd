"""Workspace data: purchases from orders (the commerce contract), the sales formula over
orders and the timeline, and the analytics API (query endpoint, contact value)."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from ninja import NinjaAPI
from ninja.testing import TestClient

from siyu.accounts.models import Role
from siyu.analytics.queries import Period, SalesFormulaQuery
from siyu.analytics.runners import run_query
from siyu.analytics.sources import SalesFilters, WorkspaceSource
from siyu.analytics.transactions import day_number
from siyu.analytics.value import workspace_fit, workspace_probability_alive
from siyu.api import analytics as analytics_api
from siyu.api.auth import TokenAuth
from siyu.commerce.actions import do_record_order
from siyu.communities.actions import do_add_member, do_create_group
from siyu.contacts.actions import do_merge_contacts, do_record_event
from siyu.core.errors import SiyuError
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace

pytestmark = pytest.mark.django_db

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
_orders = itertools.count(1)


def at(day: str, hour: int = 12) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=SHANGHAI)


def buy(workspace: Any, contact: Any, when: dt.datetime, amount: str, **kw: Any) -> Any:
    return do_record_order(
        workspace, None, external_id=f"T{next(_orders)}", contact=contact, placed_at=when, gross_amount=Decimal(amount), **kw
    ).order


def touch(contact: Any, kind: str, when: dt.datetime) -> None:
    do_record_event(contact, kind, idempotency_key=f"{kind}:{contact.pk}:{when.isoformat()}", occurred_at=when, evaluate_rules=False)


# --------------------------------------------------------------------------- purchases


def test_purchases_follow_the_order_contract():
    # given
    ws, other = make_workspace(), make_workspace()
    a, b, c = make_contact(ws, "甲"), make_contact(ws, "乙"), make_contact(ws, "丙")
    buy(ws, a, dt.datetime(2025, 1, 1, 17, 0, tzinfo=dt.UTC), "100.00")  # 01:00 on Jan 2 in Shanghai
    buy(ws, a, at("2025-01-03"), "70.00", refunded=Decimal("70.00"))  # refunded: not a purchase
    buy(ws, a, at("2025-01-04"), "60.00", status="cancelled")  # cancelled: not a purchase
    buy(ws, b, at("2025-01-05"), "50.00")
    buy(ws, c, at("2025-01-06"), "80.00", refunded=Decimal("30.00"))  # partially refunded: ¥50 net
    buy(ws, None, at("2025-01-07"), "99.00")  # anonymous: nobody to follow
    buy(other, make_contact(other), at("2025-01-08"), "1.00")
    do_merge_contacts(a, b, None)  # b's purchase is now a's
    # when
    log = WorkspaceSource(ws).transactions()
    # then
    rows = sorted(
        (int(log.customer_keys[code]), int(day), int(cents)) for code, day, cents in zip(log.customer, log.day, log.cents, strict=True)  # type: ignore[arg-type]
    )
    assert rows == sorted([
        (a.pk, day_number(dt.date(2025, 1, 2)), 10_000),
        (a.pk, day_number(dt.date(2025, 1, 5)), 5_000),
        (c.pk, day_number(dt.date(2025, 1, 6)), 5_000),
    ])


# --------------------------------------------------------------------------- sales formula


@pytest.fixture
def shop():
    ws = make_workspace()
    seller = make_staff(ws, Role.OPERATOR)
    group = do_create_group(ws, None, name="老客福利群")
    feb = at("2025-02-01")
    c = {i: make_contact(ws, f"客户{i}", created_at=feb, source_channel="parcel" if i <= 2 else "poster") for i in (1, 2, 3, 4, 6)}
    from siyu.contacts.actions import do_update_contact

    do_update_contact(c[1], None, owner=seller)
    do_add_member(group, c[1], None, joined_at=at("2025-03-10"))
    c[5] = make_contact(ws, "客户5", created_at=at("2025-04-10"))  # reached in April by being added
    for i in (1, 2, 3):
        touch(c[i], "message", at("2025-03-05"))
    touch(c[1], "message", at("2025-04-02"))
    touch(c[2], "scan", at("2025-04-03"))
    touch(c[3], "message", at("2025-04-04"))
    touch(c[4], "message", at("2025-04-05"))
    touch(c[6], "joined_group", at("2025-04-06"))  # not a kind that counts as reach
    # March
    buy(ws, c[1], at("2025-03-06"), "100.00", margin=Decimal("30.00"), staff=seller, source_channel="parcel", group=group)
    buy(ws, c[1], at("2025-03-20"), "50.00")
    buy(ws, c[2], at("2025-03-21"), "200.00", source_channel="parcel")
    buy(ws, c[3], at("2025-03-22"), "500.00", status="refunded")
    buy(ws, None, at("2025-03-23"), "80.00")
    # April
    buy(ws, c[1], at("2025-04-02"), "120.00")
    buy(ws, c[3], at("2025-04-04"), "300.00")
    buy(ws, c[4], at("2025-04-05"), "100.00", refunded=Decimal("40.00"))
    buy(ws, c[6], at("2025-04-30", hour=23), "90.00")  # bought without being reached
    buy(ws, c[6], at("2025-05-01", hour=0), "999.00")  # May 1st in Shanghai: outside April
    # another workspace's busy month changes nothing
    stranger_ws = make_workspace()
    stranger = make_contact(stranger_ws, created_at=at("2025-03-02"))
    buy(stranger_ws, stranger, at("2025-03-03"), "10000.00")
    return {"ws": ws, "seller": seller, "group": group, "contacts": c}


MARCH = Period(start=dt.date(2025, 3, 1), end=dt.date(2025, 3, 31))
APRIL = Period(start=dt.date(2025, 4, 1), end=dt.date(2025, 4, 30))


def test_sales_formula_of_two_periods_and_their_decomposition(shop):
    # when
    result = run_query(SalesFormulaQuery(period_a=MARCH, period_b=APRIL), WorkspaceSource(shop["ws"]))
    # then: March: reached 1,2,3; buyers 1,2 (3's order was refunded)
    march = result.period_a.model_dump()
    assert {k: march[k] for k in ("reached_contacts", "traffic", "buyers", "purchases", "revenue", "unattributed_revenue")} == {
        "reached_contacts": 3, "traffic": 3, "buyers": 2, "purchases": 3, "revenue": Decimal("350.00"), "unattributed_revenue": Decimal("80.00"),
    }
    assert (march["conversion_rate"], march["purchases_per_buyer"], march["aov"]) == (pytest.approx(2 / 3), 1.5, Decimal("116.67"))
    assert (march["margin"], march["margin_rate"], march["margin_coverage"]) == (Decimal("30.00"), 0.3, pytest.approx(1 / 3))
    assert march["identity_holds"] is True
    # April: reached 1,2,3,4,5; buyer 6 was not reached but counts in traffic
    april = result.period_b
    assert april is not None
    assert (april.reached_contacts, april.traffic, april.buyers, april.purchases, april.revenue) == (5, 6, 4, 4, Decimal("570.00"))
    assert april.margin is None and april.margin_rate is None and april.identity_holds
    # the contributions add up to the change exactly
    assert result.decomposition is not None
    assert result.decomposition.revenue_change == Decimal("220.00")
    assert sum(result.decomposition.contributions.values()) == Decimal("220.00")
    assert set(result.decomposition.contributions) == {"traffic", "conversion_rate", "purchases_per_buyer", "aov"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"channel": "parcel"}, (2, 2, 2, Decimal("300.00"))),
        ({"staff": True}, (1, 1, 1, Decimal("100.00"))),
        ({"group": True}, (1, 1, 1, Decimal("100.00"))),
    ],
)
def test_sales_formula_filters(shop, filters, expected):
    source = WorkspaceSource(shop["ws"])
    formula = source.sales(
        MARCH.start, MARCH.end,
        SalesFilters(
            channel=filters.get("channel"),
            staff_id=shop["seller"].pk if filters.get("staff") else None,
            group_id=shop["group"].pk if filters.get("group") else None,
        ),
    )
    assert (formula.traffic, formula.buyers, formula.purchases, formula.revenue) == expected


def test_sales_formula_of_another_workspaces_group_is_not_found(shop):
    other_group = do_create_group(make_workspace(), None, name="别人的群")
    with pytest.raises(SiyuError) as missing:
        WorkspaceSource(shop["ws"]).sales(MARCH.start, MARCH.end, SalesFilters(group_id=other_group.pk))
    assert missing.value.status == 404


# --------------------------------------------------------------------------- API


def _client() -> TestClient:
    # The lead mounts the router on /api/v1; here it runs on its own with the same auth
    # and the same domain-error body.
    api = NinjaAPI(auth=TokenAuth(), urls_namespace="analytics-tests")

    @api.exception_handler(SiyuError)
    def _error(request: Any, exc: SiyuError) -> Any:
        return api.create_response(request, {"error": exc.as_dict()}, status=exc.status)

    api.add_router("/", analytics_api.router)
    return TestClient(api)


CLIENT = None


def client() -> TestClient:
    global CLIENT
    if CLIENT is None:
        CLIENT = _client()
    return CLIENT


def call(method: str, path: str, token: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if method == "GET":
        return client().get(path, headers=headers)
    return client().post(path, json=body, headers=headers)


@pytest.fixture
def repeat_shop():
    """30 customers over the last 200 days: 24 bought again, 6 once; one has no order."""
    ws = make_workspace()
    now = timezone.now()
    customers = []
    for i in range(30):
        contact = make_contact(ws, f"会员{i}", created_at=now - dt.timedelta(days=210))
        first = now - dt.timedelta(days=200 - i * 3)
        buy(ws, contact, first, f"{100 + i}.00")
        if i < 24:
            buy(ws, contact, first + dt.timedelta(days=10 + i), f"{80 + 2 * i}.00")
        if i < 12:
            buy(ws, contact, first + dt.timedelta(days=40 + i), f"{150 + i}.00")
        customers.append(contact)
    newcomer = make_contact(ws, "新客")
    owner = make_staff(ws, Role.OWNER)
    return {"ws": ws, "customers": customers, "newcomer": newcomer, "token": make_token(owner)}


def test_query_endpoint_answers_each_kind(repeat_shop):
    token = repeat_shop["token"]
    bgnbd = call("POST", "/analytics/query", token, {"kind": "bgnbd", "top_customers": 5})
    assert bgnbd.status_code == 200, bgnbd.json()
    body = bgnbd.json()
    assert (body["kind"], body["customers"], body["repeat_customers"], len(body["top_customers"])) == ("bgnbd", 30, 24, 5)
    assert body["p"] is not None and Decimal(body["clv_total"]) > 0
    rfm = call("POST", "/analytics/query", token, {"kind": "rfm", "window_days": 365}).json()
    assert (rfm["kind"], rfm["customers"], sum(s["customers"] for s in rfm["segments"])) == ("rfm", 30, 30)
    pareto = call("POST", "/analytics/query", token, {"kind": "pareto", "points": 4}).json()
    assert (pareto["kind"], pareto["customers"], pareto["top_customers"], len(pareto["lorenz"])) == ("pareto", 30, 6, 5)
    today = timezone.now().date()
    sales = call("POST", "/analytics/query", token, {"kind": "sales_formula", "period_a": {"start": str(today - dt.timedelta(days=365)), "end": str(today)}})
    assert sales.status_code == 200 and sales.json()["period_a"]["buyers"] == 30


def test_query_endpoint_refusals(repeat_shop):
    token = repeat_shop["token"]
    overlapping = call("POST", "/analytics/query", token, {
        "kind": "sales_formula", "period_a": {"start": "2025-01-01", "end": "2025-01-31"}, "period_b": {"start": "2025-01-15", "end": "2025-02-15"},
    })
    assert overlapping.status_code == 422
    too_little = call("POST", "/analytics/query", token, {"kind": "bgnbd", "min_repeat_customers": 25})
    assert too_little.status_code == 422
    assert too_little.json()["error"] == {
        "code": "too_little_data",
        "message": "too little data to fit BG/NBD: 24 customers with repeat purchases, at least 25 are needed",
        "details": {"repeat_customers": 24, "required": 25},
    }
    agent = make_staff(repeat_shop["ws"], Role.AGENT)
    forbidden = call("POST", "/analytics/query", make_token(agent), {"kind": "rfm"})
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "permission_denied"


def test_query_endpoint_sees_only_the_callers_workspace(repeat_shop):
    other = make_workspace()
    token = make_token(make_staff(other, Role.ANALYST))
    rfm = call("POST", "/analytics/query", token, {"kind": "rfm"}).json()
    assert (rfm["customers"], rfm["revenue"]) == (0, "0.00")
    refused = call("POST", "/analytics/query", token, {"kind": "bgnbd"})
    assert refused.json()["error"]["code"] == "too_little_data"


def test_contact_value(repeat_shop):
    token = repeat_shop["token"]
    loyal = repeat_shop["customers"][0]
    # when
    response = call("GET", f"/contacts/{loyal.pk}/value", token)
    # then
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["contact_id"], body["purchases"], body["model_available"], body["model_note"]) == (loyal.pk, 3, True, None)
    assert 0 < body["probability_alive"] <= 1 and body["expected_purchases_90d"] > 0
    assert Decimal(body["expected_aov"]) > 0 and Decimal(body["clv_12m"]) > 0
    assert body["rfm"]["frequency"] == 3 and body["rfm"]["monetary"] == "330.00"
    assert set(body["parameters"]) == {"r", "alpha", "a", "b", "p", "q", "v"}
    # the workspace fit is cached until the purchases change
    source = WorkspaceSource(repeat_shop["ws"])
    assert workspace_fit(source, source.today()).cached is True
    buy(repeat_shop["ws"], loyal, timezone.now() - dt.timedelta(hours=1), "10.00")
    assert workspace_fit(WorkspaceSource(repeat_shop["ws"]), source.today()).cached is False


def test_contact_value_without_purchases_and_of_strangers(repeat_shop):
    token = repeat_shop["token"]
    newcomer = call("GET", f"/contacts/{repeat_shop['newcomer'].pk}/value", token).json()
    assert (newcomer["purchases"], newcomer["model_available"], newcomer["rfm"]) == (0, False, None)
    assert newcomer["model_note"] == "no purchase yet: the repurchase model starts at the first purchase"
    stranger = make_contact(make_workspace())
    assert call("GET", f"/contacts/{stranger.pk}/value", token).status_code == 404


def test_contact_value_when_the_workspace_has_too_little_data():
    ws = make_workspace()
    contact = make_contact(ws)
    buy(ws, contact, timezone.now() - dt.timedelta(days=3), "10.00")
    body = call("GET", f"/contacts/{contact.pk}/value", make_token(make_staff(ws, Role.ANALYST))).json()
    # a lone buyer is in the middle of every quintile: (R, F) = (3, 3)
    assert (body["model_available"], body["purchases"], body["rfm"]["segment"]) == (False, 1, "need_attention")
    assert body["model_note"] == "too little data to fit BG/NBD: 0 customers with repeat purchases, at least 20 are needed"


def test_probability_alive_of_every_buyer(repeat_shop):
    alive = workspace_probability_alive(repeat_shop["ws"])
    assert set(alive) == {c.pk for c in repeat_shop["customers"]}
    assert all(0 < p <= 1 for p in alive.values())
    one_time_buyer = repeat_shop["customers"][-1]
    assert alive[one_time_buyer.pk] == 1.0  # BG/NBD: nobody drops out before a repeat purchase
    assert workspace_probability_alive(make_workspace()) == {}
