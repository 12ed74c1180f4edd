"""Commerce and analytics console pages: the customer value panel, coupons, promotions
with the basket calculator, orders and refunds, and the analytics overview."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from siyu.accounts.models import Role, Staff
from siyu.commerce.actions import (
    do_create_coupon_template,
    do_create_promotion,
    do_issue_coupon,
    do_record_order,
    do_update_lifecycle,
)
from siyu.commerce.models import CouponTemplate, Order, OrderStatus, Promotion
from siyu.contacts.models import Contact
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.demo.seed import DEMO_OWNER_EMAIL, do_seed_demo_workspace

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def _order(ws, contact, external_id: str, amount: str, *, days_ago: float = 3, store: str = "上海静安店", staff=None) -> Order:
    return do_record_order(
        ws, None, external_id=external_id, contact=contact, placed_at=NOW - dt.timedelta(days=days_ago),
        gross_amount=amount, store=store, staff=staff,
    ).order


@pytest.fixture
def shop():
    """A workspace with an owner, an analyst, two agents with a customer each, and orders."""
    ws = make_workspace(name="Shop")
    owner = make_staff(ws, Role.OWNER, email="owner@example.com")
    analyst = make_staff(ws, Role.ANALYST, email="analyst@example.com")
    amy = make_staff(ws, Role.AGENT, email="amy@example.com", display_name="Amy")
    ben = make_staff(ws, Role.AGENT, email="ben@example.com", display_name="Ben")
    ann = make_contact(ws, name="Ann", owner=amy)
    bob = make_contact(ws, name="Bob", owner=ben)
    first = _order(ws, ann, "SO-1", "299.00", days_ago=40, staff=amy)
    second = _order(ws, ann, "SO-2", "159.00", days_ago=5, staff=amy)
    third = _order(ws, bob, "SO-3", "899.00", days_ago=2, store="衣澜官方小程序", staff=ben)
    return {"ws": ws, "owner": owner, "analyst": analyst, "amy": amy, "ben": ben, "ann": ann, "bob": bob,
            "orders": [first, second, third]}


# ---------------------------------------------------------------- value panel


def test_value_panel_shows_stage_points_coupons_and_says_when_the_model_has_too_little_data(shop, console_client):
    # given
    template = do_create_coupon_template(shop["ws"], None, name="满200减30", kind="threshold", value="30", threshold_amount="200",
                                         validity_days=30)
    coupon = do_issue_coupon(template, shop["ann"])
    do_update_lifecycle(shop["ann"])  # the orders scheduled it after commit, which a test transaction never reaches

    # when
    html = console_client(shop["owner"]).get(f"/console/contacts/{shop['ann'].pk}/").content.decode()

    # then
    panel = html[html.index('id="value"'):html.index('id="profile"')]
    assert "Customer value" in panel
    assert '<span id="value-points">458</span>' in panel  # 299 + 159 at 1 point per yuan
    assert "Not enough data for the repurchase model" in panel
    assert "too little data to fit BG/NBD: 1 customers with repeat purchases, at least 20 are needed" in panel
    assert f"<code>{coupon.code}</code> 满200减30" in panel
    assert "¥458.00" in panel
    assert '<span class="stage stage-repeat">Repeat</span>' in panel
    assert '<td>New</td><td>Repeat</td><td class="reason">2 orders</td>' in panel


def test_demo_contact_page_shows_the_fitted_model_numbers(console_client):
    # given: the demo, whose year of orders is enough for BG/NBD
    do_seed_demo_workspace(contacts=600, seed=42)
    owner = Staff.objects.get(user__email=DEMO_OWNER_EMAIL)
    repeater = Contact.objects.in_workspace(owner.workspace).filter(lifecycle_stage="repeat").order_by("pk").first()
    assert repeater is not None

    # when
    client = console_client(owner)
    contact_html = client.get(f"/console/contacts/{repeater.pk}/").content.decode()
    analytics = client.get("/console/analytics/")
    orders_html = client.get("/console/commerce/orders/").content.decode()

    # then
    panel = contact_html[contact_html.index('id="value"'):contact_html.index('id="profile"')]
    assert "P(alive)" in panel and "Expected purchases (90 days)" in panel and "CLV (12 months)" in panel
    assert "Not enough data" not in panel
    assert re.search(r"<dt>CLV \(12 months\)</dt><dd>¥\d+\.\d\d</dd>", panel)
    assert analytics.status_code == 200
    found = re.search(r'<script id="analytics-data" type="application/json">(.*?)</script>', analytics.content.decode())
    assert found is not None
    data = json.loads(found.group(1))
    stage_counts = dict(zip(data["stages"]["labels"], data["stages"]["values"], strict=True))
    assert sum(stage_counts.values()) == 600
    assert stage_counts["Repeat"] == Contact.objects.in_workspace(owner.workspace).filter(lifecycle_stage="repeat").count()
    assert data["rfm"] and data["lorenz"][0] == [0.0, 0.0] and data["lorenz"][-1] == [1.0, 1.0]
    assert [round(v, 2) for v in data["waterfall"]["values"]] == [
        float(v) for v in analytics.context["sales"].decomposition.contributions.values()
    ]
    assert round(sum(data["waterfall"]["values"]), 2) == round(data["waterfall"]["end"] - data["waterfall"]["start"], 2)
    assert orders_html.count('class="mono">YL') == 50  # one page


# ---------------------------------------------------------------- analytics


def test_analytics_shows_stages_pareto_and_the_sales_formula_for_the_chosen_periods(shop, console_client):
    # when
    today = timezone.now().astimezone(shop["ws"].tz).date()
    a_start, a_end = today - dt.timedelta(days=60), today - dt.timedelta(days=31)
    b_start, b_end = today - dt.timedelta(days=30), today - dt.timedelta(days=1)
    response = console_client(shop["analyst"]).get(
        "/console/analytics/", {"a_start": a_start.isoformat(), "a_end": a_end.isoformat(), "b_start": b_start.isoformat(), "b_end": b_end.isoformat()}
    )

    # then
    assert response.status_code == 200
    sales = response.context["sales"]
    assert (sales.period_a.start, sales.period_b.end) == (a_start, b_end)
    assert (sales.period_a.purchases, sales.period_b.purchases) == (1, 2)
    assert (sales.period_a.revenue, sales.period_b.revenue) == (Decimal("299.00"), Decimal("1058.00"))
    assert sum(sales.decomposition.contributions.values()) == Decimal("759.00")
    html = response.content.decode()
    assert "The top 1 buyers bring 66% of revenue" in html  # Bob's ¥899 of ¥1,357
    assert 'id="chart-stages"' in html and 'id="chart-waterfall"' in html and "echarts.min.js" in html


def test_analytics_falls_back_to_the_last_30_days_on_overlapping_periods(shop, console_client):
    # when
    response = console_client(shop["owner"]).get(
        "/console/analytics/", {"a_start": "2026-01-01", "a_end": "2026-01-31", "b_start": "2026-01-15", "b_end": "2026-02-15"}
    )

    # then
    assert response.status_code == 200
    assert "The two periods must not overlap" in response.content.decode()
    today = timezone.now().astimezone(shop["ws"].tz).date()
    assert response.context["sales"].period_b.end == today - dt.timedelta(days=1)


def test_agents_may_not_open_analytics_coupons_or_promotions(shop, console_client):
    # when
    client = console_client(shop["amy"])

    # then
    assert client.get("/console/analytics/").status_code == 403
    assert client.get("/console/commerce/coupons/").status_code == 403
    assert client.get("/console/commerce/promotions/").status_code == 403
    assert 'href="/console/analytics/"' not in client.get("/console/commerce/orders/").content.decode()


# ---------------------------------------------------------------- coupons and promotions


def test_owner_creates_a_coupon_template(shop, console_client):
    # when
    response = console_client(shop["owner"]).post(
        "/console/commerce/coupons/",
        {"name": "新客券", "kind": "fixed", "value": "20", "validity_days": "14", "per_contact_limit": "1", "total_stock": "500"},
    )

    # then
    assert response.status_code == 302
    template = CouponTemplate.objects.in_workspace(shop["ws"]).get()
    assert (template.name, template.kind, template.value, template.validity_days, template.total_stock) == ("新客券", "fixed", Decimal("20.00"), 14, 500)
    assert "新客券" in console_client(shop["owner"]).get("/console/commerce/coupons/").content.decode()


def test_a_refused_coupon_shows_the_reason(shop, console_client):
    # when: a threshold coupon worth more than its threshold
    response = console_client(shop["owner"]).post(
        "/console/commerce/coupons/",
        {"name": "坏券", "kind": "threshold", "value": "80", "threshold_amount": "50", "validity_days": "14", "per_contact_limit": "1"},
    )

    # then
    assert response.status_code == 422
    assert "a threshold coupon needs a threshold above zero and at least its value" in response.content.decode()
    assert not CouponTemplate.objects.in_workspace(shop["ws"]).exists()


def test_analysts_see_coupons_but_may_not_create_them(shop, console_client):
    # when
    client = console_client(shop["analyst"])
    page = client.get("/console/commerce/coupons/")
    post = client.post("/console/commerce/coupons/", {"name": "x", "kind": "fixed", "value": "5", "validity_days": "3", "per_contact_limit": "1"})

    # then
    assert page.status_code == 200 and "New coupon" not in page.content.decode()
    assert post.status_code == 403
    assert not CouponTemplate.objects.in_workspace(shop["ws"]).exists()


def test_owner_creates_a_tiered_promotion_from_lines(shop, console_client):
    # when
    response = console_client(shop["owner"]).post(
        "/console/commerce/promotions/", {"name": "秋季满减", "mode": "tiered", "tiers": "200-50\n500-150\n", "stacks_with_coupons": "on"}
    )

    # then
    assert response.status_code == 302
    promotion = Promotion.objects.in_workspace(shop["ws"]).get()
    assert promotion.tiers == [["200.00", "50.00"], ["500.00", "150.00"]]
    assert "满200减50 / 满500减150" in console_client(shop["owner"]).get("/console/commerce/promotions/").content.decode()


def test_a_bad_tier_line_is_refused_with_its_line_number(shop, console_client):
    # when
    response = console_client(shop["owner"]).post("/console/commerce/promotions/", {"name": "坏", "mode": "tiered", "tiers": "200-50\n500"})

    # then
    assert response.status_code == 422
    assert "line 2: write a tier as threshold-discount, e.g. 200-50" in response.content.decode()
    assert not Promotion.objects.in_workspace(shop["ws"]).exists()


@pytest.mark.parametrize(
    ("basket", "discount", "payable", "hint"),
    [
        ("163", "0.00", "163.00", "再买 ¥37 立减 50"),
        ("520", "150.00", "370.00", None),
        ("450", "50.00", "400.00", "再买 ¥50 立减 150"),
    ],
)
def test_calculator_gives_the_best_plan_and_the_anchoring_hint(shop, console_client, basket, discount, payable, hint):
    # given
    do_create_promotion(shop["ws"], None, name="秋季满减", tiers=[["200", "50"], ["500", "150"]])

    # when
    response = console_client(shop["owner"]).get("/console/commerce/promotions/", {"basket": basket})

    # then
    plan = response.context["calc"]["plan"]
    assert (str(plan.discount), str(plan.payable)) == (discount, payable)
    html = response.content.decode()
    assert f"<strong>¥{payable}</strong>" in html
    if hint:
        assert f"<strong>{hint}</strong>" in html
    else:
        assert "no bigger discount within reach" in html


def test_calculator_rejects_a_non_amount(shop, console_client):
    response = console_client(shop["owner"]).get("/console/commerce/promotions/", {"basket": "abc"})

    assert response.status_code == 200
    assert response.context["calc"] is None
    assert "Enter an amount such as 163 or 163.50." in response.content.decode()


# ---------------------------------------------------------------- orders


def _listed(html: str) -> list[str]:
    return re.findall(r'class="mono">(SO-\d)</a>', html)


def test_orders_list_filters_by_status_store_and_day(shop, console_client):
    # given
    client = console_client(shop["owner"])
    today = timezone.now().astimezone(shop["ws"].tz).date()

    # then
    assert _listed(client.get("/console/commerce/orders/").content.decode()) == ["SO-3", "SO-2", "SO-1"]
    assert _listed(client.get("/console/commerce/orders/", {"store": "衣澜官方小程序"}).content.decode()) == ["SO-3"]
    since = (today - dt.timedelta(days=10)).isoformat()
    assert _listed(client.get("/console/commerce/orders/", {"from": since}).content.decode()) == ["SO-3", "SO-2"]
    until = (today - dt.timedelta(days=10)).isoformat()
    assert _listed(client.get("/console/commerce/orders/", {"to": until}).content.decode()) == ["SO-1"]
    assert _listed(client.get("/console/commerce/orders/", {"status": "refunded"}).content.decode()) == []
    # the store filter offers each store once, however many orders it has
    page = client.get("/console/commerce/orders/").content.decode()
    assert re.findall(r'<option value="([^"]+)"(?: selected)?>', page.split('name="store"')[1].split("</select>")[0]) == [
        "上海静安店", "衣澜官方小程序"
    ]


def test_agents_see_only_their_customers_orders(shop, console_client):
    # when
    client = console_client(shop["amy"])

    # then
    assert _listed(client.get("/console/commerce/orders/").content.decode()) == ["SO-2", "SO-1"]
    assert client.get(f"/console/commerce/orders/{shop['orders'][0].pk}/").status_code == 200
    assert client.get(f"/console/commerce/orders/{shop['orders'][2].pk}/").status_code == 404


def test_refund_from_the_order_page(shop, console_client):
    # given
    order = shop["orders"][2]
    client = console_client(shop["owner"])
    assert 'name="amount"' in client.get(f"/console/commerce/orders/{order.pk}/").content.decode()

    # when
    response = client.post(f"/console/commerce/orders/{order.pk}/refund/", {"amount": "100", "reason": "尺码不合"})

    # then
    assert response.status_code == 302 and response["Location"] == f"/console/commerce/orders/{order.pk}/"
    order.refresh_from_db()
    assert (order.refunded_amount, order.net_amount, order.status) == (Decimal("100.00"), Decimal("799.00"), OrderStatus.PARTIALLY_REFUNDED)
    assert "尺码不合" in client.get(f"/console/commerce/orders/{order.pk}/").content.decode()


def test_analysts_see_orders_without_a_refund_button_and_may_not_refund(shop, console_client):
    # given
    order = shop["orders"][2]
    client = console_client(shop["analyst"])

    # when
    page = client.get(f"/console/commerce/orders/{order.pk}/")
    post = client.post(f"/console/commerce/orders/{order.pk}/refund/", {"amount": "100"})

    # then
    assert page.status_code == 200 and 'name="amount"' not in page.content.decode()
    assert post.status_code == 403
    order.refresh_from_db()
    assert order.refunded_amount == Decimal("0.00")


def test_another_workspaces_order_looks_missing(shop, console_client):
    # given
    other = make_workspace(name="Other")
    stranger = make_contact(other, name="Zed")
    foreign = _order(other, stranger, "SO-X", "500.00")
    client = console_client(shop["owner"])

    # then
    assert client.get(f"/console/commerce/orders/{foreign.pk}/").status_code == 404
    assert client.post(f"/console/commerce/orders/{foreign.pk}/refund/", {"amount": "10"}).status_code == 404
    assert client.get(f"/console/commerce/orders/{foreign.pk + 1000}/").status_code == 404
    foreign.refresh_from_db()
    assert foreign.refunded_amount == Decimal("0.00")
    assert "SO-X" not in client.get("/console/commerce/orders/").content.decode()
