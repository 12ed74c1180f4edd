"""The commerce API: each endpoint through HTTP with a bearer token, errors with their
codes, data scope for agents, and workspace isolation (foreign ids answer 404)."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from siyu.accounts.models import Role
from siyu.api.tests.conftest import ApiClient
from siyu.commerce.actions import (
    do_create_coupon_template,
    do_create_product,
    do_create_promotion,
    do_create_tier,
    do_earn_points,
    do_issue_coupon,
    do_join_tier,
)
from siyu.commerce.models import Order, StageTransition
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace

from .conftest import days_ago, record

pytestmark = [pytest.mark.django_db, pytest.mark.urls("siyu.commerce.tests.urls")]


@pytest.fixture
def api(owner):
    return ApiClient(make_token(owner))


def test_products_are_created_listed_and_updated(api, workspace):
    created = api.post("/products", {"name": "乌龙茶", "category": "茶", "skus": [{"code": "TEA-1", "price": "99.5", "cost": "40"}]})
    product_id = created.json()["id"]
    patched = api.patch(f"/products/{product_id}", {"name": "高山乌龙", "skus": [{"code": "TEA-1", "price": "109"}, {"code": "TEA-2", "price": "199"}]})
    listed = api.get("/products", {"q": "乌龙"})
    clash = api.post("/products", {"name": "别的", "skus": [{"code": "TEA-2", "price": "1"}]})

    assert created.status_code == 201
    assert created.json()["skus"] == [{"id": created.json()["skus"][0]["id"], "code": "TEA-1", "name": "", "price": "99.50", "cost": "40.00", "is_active": True}]
    assert patched.status_code == 200
    body = patched.json()
    assert (body["name"], body["category"], [(s["code"], s["price"], s["cost"]) for s in body["skus"]]) == (
        "高山乌龙", "茶", [("TEA-1", "109.00", None), ("TEA-2", "199.00", None)]
    )
    assert (listed.json()["count"], listed.json()["items"][0]["id"]) == (1, product_id)
    assert (clash.status_code, clash.json()["error"]["code"]) == (409, "sku_exists")


def test_orders_are_recorded_idempotently_listed_refunded_and_cancelled(api, workspace):
    contact = make_contact(workspace, "小美")
    payload = {
        "external_id": "T1", "contact_id": contact.pk, "placed_at": "2024-05-01T14:30:00+08:00", "store": "静安店", "discount": "20",
        "lines": [{"sku": "TEA-1", "product": "乌龙茶", "quantity": 2, "unit_price": "149.5"}],
    }

    created = api.post("/orders", payload)
    replay = api.post("/orders", payload)
    order_id = created.json()["id"]
    refunded = api.post(f"/orders/{order_id}/refund", {"amount": "79", "reason": "少发一件", "external_id": "R1"})
    too_much = api.post(f"/orders/{order_id}/refund", {"amount": "200.01"})
    record(workspace, contact, "T2", "50", placed_at=dt.datetime(2024, 6, 1, tzinfo=dt.UTC), store="徐汇店")
    by_store = api.get("/orders", {"store": "静安店"})
    by_status = api.get("/orders", {"status": "partially_refunded"})
    by_time = api.get("/orders", {"since": "2024-05-15T00:00:00+08:00"})
    naive = api.get("/orders", {"since": "2024-05-15T00:00:00"})
    cancelled = api.post(f"/orders/{order_id}/cancel", {"reason": "客户取消"})

    assert (created.status_code, replay.status_code, replay.json()["id"]) == (201, 200, order_id)
    body = created.json()
    assert {k: body[k] for k in ("external_id", "contact_id", "status", "gross_amount", "discount_amount", "net_amount", "store", "placed_at")} == {
        "external_id": "T1", "contact_id": contact.pk, "status": "paid", "gross_amount": "299.00", "discount_amount": "20.00",
        "net_amount": "279.00", "store": "静安店", "placed_at": "2024-05-01T06:30:00Z",
    }
    assert body["lines"] == [{"sku_code": "TEA-1", "name": "乌龙茶", "quantity": 2, "unit_price": "149.50", "line_total": "299.00", "product_id": None}]
    assert (refunded.status_code, refunded.json()["net_amount"], refunded.json()["status"]) == (200, "200.00", "partially_refunded")
    assert [(r["amount"], r["reason"], r["external_id"]) for r in refunded.json()["refunds"]] == [("79.00", "少发一件", "R1")]
    assert (too_much.status_code, too_much.json()["error"]["code"]) == (422, "refund_exceeds_paid")
    assert [o["external_id"] for o in by_store.json()["items"]] == ["T1"]
    assert [o["external_id"] for o in by_status.json()["items"]] == ["T1"]
    assert [o["external_id"] for o in by_time.json()["items"]] == ["T2"]
    assert (naive.status_code, naive.json()["error"]["code"]) == (422, "naive_datetime")
    assert (cancelled.json()["status"], cancelled.json()["net_amount"]) == ("cancelled", "0.00")


def test_coupons_are_issued_and_redeemed_with_error_codes(api, workspace):
    contact, other = make_contact(workspace), make_contact(workspace)
    template = api.post("/coupon-templates", {"name": "满200减30", "kind": "threshold", "value": "30", "threshold_amount": "200",
                                              "validity_days": 7, "total_stock": 2})
    template_id = template.json()["id"]
    issued = api.post(f"/contacts/{contact.pk}/coupons", {"template_id": template_id})
    code = issued.json()["code"]
    below = api.post("/coupons/redeem", {"code": code, "contact_id": contact.pk, "basket_amount": "199.99"})
    not_owner = api.post("/coupons/redeem", {"code": code, "contact_id": other.pk, "basket_amount": "300"})
    unknown = api.post("/coupons/redeem", {"code": "NOSUCH", "contact_id": contact.pk, "basket_amount": "300"})
    redeemed = api.post("/coupons/redeem", {"code": code, "contact_id": contact.pk, "basket_amount": "300"})
    used = api.post("/coupons/redeem", {"code": code, "contact_id": contact.pk, "basket_amount": "300"})
    bulk = api.post(f"/coupon-templates/{template_id}/issue", {"contact_ids": [contact.pk, other.pk, make_contact(workspace).pk]})
    listed = api.get(f"/contacts/{contact.pk}/coupons")

    assert (template.status_code, issued.status_code, issued.json()["template"], issued.json()["status"]) == (201, 201, "满200减30", "issued")
    assert [(r.status_code, r.json()["error"]["code"]) for r in (below, not_owner, unknown, used)] == [
        (422, "below_threshold"), (422, "coupon_not_owner"), (404, "coupon_not_found"), (409, "coupon_used"),
    ]
    assert below.json()["error"]["details"] == {"threshold": "200.00", "short": "0.01"}
    assert (redeemed.status_code, redeemed.json()["status"], redeemed.json()["discount_amount"]) == (200, "redeemed", "30.00")
    assert (len(bulk.json()["issued"]), [s["code"] for s in bulk.json()["skipped"]]) == (1, ["per_contact_limit", "out_of_stock"])
    assert [c["code"] for c in listed.json()["items"]] == [code]


def test_the_calculator_picks_the_best_plan_and_hints_the_next_tier(api, workspace):
    contact = make_contact(workspace)
    api.post("/promotions", {"name": "618满减", "tiers": [["200", "50"], ["500", "150"]]})
    api.post("/promotions", {"name": "停用的", "tiers": [["100", "90"]]})
    stopped = api.get("/promotions").json()["items"][0]
    api.patch(f"/promotions/{stopped['id']}", {"is_active": False})
    template = do_create_coupon_template(workspace, None, name="无门槛10", kind="fixed", value="10", validity_days=7)
    coupon = do_issue_coupon(template, contact)

    plain = api.post("/promotions/calculate", {"basket_total": "163"})
    with_coupon = api.post("/promotions/calculate", {"basket_total": "520", "contact_id": contact.pk})
    invalid = api.post("/promotions", {"name": "坏的", "tiers": [["100", "120"]]})

    assert plain.json() == {
        "plan": {"basket_total": "163.00", "discount": "0.00", "payable": "163.00", "promotion": None, "promotion_id": None,
                 "promotion_discount": "0.00", "tiers_used": [], "coupon": None, "coupon_discount": "0.00", "explanation": []},
        "hint": {"add": "37.00", "to_save": "50.00", "extra": "50.00", "promotion": "618满减", "text": "再买 ¥37 立减 50"},
    }
    plan = with_coupon.json()["plan"]
    assert (plan["discount"], plan["payable"], plan["promotion"], plan["coupon"]) == ("160.00", "360.00", "618满减", coupon.code)
    assert plan["tiers_used"] == [{"threshold": "500.00", "discount": "150.00", "count": 1}]
    assert with_coupon.json()["hint"] is None
    assert (invalid.status_code, invalid.json()["error"]) == (422, {"code": "invalid_promotion", "message": "满100减120: the discount exceeds the threshold"})


def test_membership_points_and_lifecycle_of_a_contact(api, workspace):
    contact = make_contact(workspace)
    tier = api.post("/membership-tiers", {"name": "付费会员", "kind": "paid", "price": "199", "validity_days": 365, "rank": 5})
    joined = api.post(f"/contacts/{contact.pk}/membership", {"tier_id": tier.json()["id"]})
    renewed = api.post(f"/contacts/{contact.pk}/membership/renew", {})
    earned = api.post(f"/contacts/{contact.pk}/points/earn", {"points": 100, "idempotency_key": "gift", "reason": "reward"})
    replayed = api.post(f"/contacts/{contact.pk}/points/earn", {"points": 100, "idempotency_key": "gift", "reason": "reward"})
    spent = api.post(f"/contacts/{contact.pk}/points/spend", {"points": 30, "idempotency_key": "cup"})
    short = api.post(f"/contacts/{contact.pk}/points/spend", {"points": 71, "idempotency_key": "bag"})
    points = api.get(f"/contacts/{contact.pk}/points")
    recomputed = api.post(f"/contacts/{contact.pk}/lifecycle/recompute")
    history = api.get(f"/contacts/{contact.pk}/lifecycle")

    assert (tier.status_code, joined.status_code) == (201, 201)
    current = joined.json()["current"]
    assert (current["tier"], current["status"], current["price_paid"]) == ("付费会员", "active", "199.00")
    start = dt.datetime.fromisoformat(current["valid_from"])
    assert dt.datetime.fromisoformat(renewed.json()["current"]["valid_until"]) == start + dt.timedelta(days=730)
    assert (earned.status_code, replayed.status_code, replayed.json()["entry"]["id"]) == (201, 200, earned.json()["entry"]["id"])
    assert (spent.status_code, spent.json()["balance"]) == (201, 70)
    assert (short.status_code, short.json()["error"]["code"], short.json()["error"]["message"]) == (422, "insufficient_points", "needs 71 points; the balance is 70")
    assert (points.json()["balance"], [e["delta"] for e in points.json()["entries"]]) == (70, [-30, 100])
    assert recomputed.json()["stage"] == "vip"
    assert [(t["from_stage"], t["to_stage"], t["reason"]) for t in history.json()["transitions"]] == [("new", "vip", "active paid membership")]
    assert history.json() == recomputed.json()


def test_settings_and_the_webhook_secret(api, workspace):
    defaults = api.get("/commerce/settings")
    patched = api.patch("/commerce/settings", {"points_per_yuan": "2", "churn_days": 120})
    bad = api.patch("/commerce/settings", {"p_alive_threshold": "1.5"})
    rotated = api.post("/commerce/webhook-secret")
    after = api.get("/commerce/settings")

    assert {k: defaults.json()[k] for k in ("points_per_yuan", "churn_days", "webhook_configured")} == {
        "points_per_yuan": "1.0000", "churn_days": 180, "webhook_configured": False,
    }
    assert (patched.json()["points_per_yuan"], patched.json()["churn_days"]) == ("2.0000", 120)
    assert (bad.status_code, bad.json()["error"]["message"]) == (422, "p_alive_threshold is out of range")
    assert rotated.status_code == 201
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["url"] == f"http://testserver/hooks/orders/{workspace.slug}"
    assert after.json()["webhook_configured"] is True


def test_orders_import_through_the_api(api, workspace):
    make_contact(workspace, external_ref="C001")
    data = b"order_id,placed_at,contact_external_id,amount\nT1,2024-05-01 10:00,C001,10\nT2,2024-05-01 10:00,C404,10\n"

    response = api.client.post("/api/v1/orders/import", {"file": SimpleUploadedFile("o.csv", data), "dry_run": "false"}, headers=api.headers)

    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("imported", "rejected", "dry_run")} == {
        "imported": 1, "rejected": [{"row": 3, "reason": "no contact with external id 'C404'"}], "dry_run": False,
    }
    assert list(Order.objects.values_list("external_id", flat=True)) == ["T1"]


def test_agents_see_and_write_only_their_own_customers_orders(workspace):
    agent = make_staff(workspace, Role.AGENT)
    mine, theirs = make_contact(workspace, owner=agent), make_contact(workspace)
    own_order = record(workspace, mine, "MINE", "10").order
    other_order = record(workspace, theirs, "THEIRS", "10").order
    api = ApiClient(make_token(agent))

    listed = api.get("/orders")
    hidden = api.get(f"/orders/{other_order.pk}")
    foreign_contact = api.post("/orders", {"external_id": "X", "contact_id": theirs.pk, "placed_at": "2024-05-01T10:00:00+08:00", "amount": "1"})
    template = api.post("/coupon-templates", {"name": "x", "kind": "fixed", "value": "1", "validity_days": 1})

    assert [o["id"] for o in listed.json()["items"]] == [own_order.pk]
    assert (hidden.status_code, foreign_contact.status_code, template.status_code) == (404, 404, 403)


def test_another_workspaces_ids_answer_404_everywhere(workspace):
    # given a full set of rows in workspace A, and B's owner with a token
    contact = make_contact(workspace)
    product = do_create_product(workspace, None, name="茶")
    order = record(workspace, contact, "T1", "100", placed_at=days_ago(1)).order
    template = do_create_coupon_template(workspace, None, name="券", kind="fixed", value="5", validity_days=7)
    coupon = do_issue_coupon(template, contact)
    promotion = do_create_promotion(workspace, None, name="满减", tiers=[["100", "10"]])
    tier = do_create_tier(workspace, None, name="会员")
    do_join_tier(contact, tier)
    do_earn_points(contact, None, points=10, idempotency_key="k")
    b = make_workspace("brand-b")
    b_contact = make_contact(b)
    api = ApiClient(make_token(make_staff(b, Role.OWNER)))
    c, o = contact.pk, order.pk

    calls = [
        ("get", f"/products/{product.pk}", None),
        ("patch", f"/products/{product.pk}", {"name": "hacked"}),
        ("get", f"/orders/{o}", None),
        ("post", f"/orders/{o}/refund", {"amount": "1"}),
        ("post", f"/orders/{o}/cancel", {}),
        ("post", "/orders", {"external_id": "T9", "contact_id": c, "placed_at": "2024-05-01T10:00:00+08:00", "amount": "1"}),
        ("patch", f"/coupon-templates/{template.pk}", {"is_active": False}),
        ("post", f"/coupon-templates/{template.pk}/issue", {"contact_ids": [b_contact.pk]}),
        ("post", f"/contacts/{b_contact.pk}/coupons", {"template_id": template.pk}),
        ("get", f"/contacts/{c}/coupons", None),
        ("post", "/coupons/redeem", {"code": coupon.code, "contact_id": b_contact.pk, "basket_amount": "100"}),
        ("patch", f"/promotions/{promotion.pk}", {"is_active": False}),
        ("post", "/promotions/calculate", {"basket_total": "100", "contact_id": c}),
        ("get", f"/contacts/{c}/membership", None),
        ("post", f"/contacts/{b_contact.pk}/membership", {"tier_id": tier.pk}),
        ("post", f"/contacts/{c}/membership/renew", {}),
        ("get", f"/contacts/{c}/points", None),
        ("post", f"/contacts/{c}/points/spend", {"points": 1, "idempotency_key": "x"}),
        ("post", f"/contacts/{c}/points/earn", {"points": 1, "idempotency_key": "x"}),
        ("get", f"/contacts/{c}/lifecycle", None),
        ("post", f"/contacts/{c}/lifecycle/recompute", None),
    ]
    answers = []
    for verb, path, body in calls:
        response = getattr(api, verb)(path, body) if body is not None or verb == "get" else api.post(path)
        answers.append((path, response.status_code))

    assert answers == [(path, 404) for _verb, path, _body in calls]
    # and B's lists show none of A's rows
    assert [api.get(p).json()["count"] for p in ("/products", "/orders", "/coupon-templates", "/promotions")] == [0, 0, 0, 0]
    assert api.get("/membership-tiers").json() == []
    order.refresh_from_db()
    assert (order.net_amount, order.status, StageTransition.objects.count()) == (D("100.00"), "paid", 0)


def test_the_openapi_schema_describes_every_commerce_endpoint():
    from siyu.commerce.tests.urls import commerce_api

    schema = commerce_api.get_openapi_schema()

    assert {"/api/v1/orders", "/api/v1/promotions/calculate", "/api/v1/contacts/{contact_id}/points/spend"} <= set(schema["paths"])
    assert schema["components"]["schemas"]["OrderIn"]["properties"]["external_id"]["maxLength"] == 100


def test_bulk_issue_to_a_contact_the_caller_cannot_see_is_a_404_naming_it_and_issues_nothing(api, workspace):
    from siyu.commerce.models import Coupon

    mine = make_contact(workspace)
    foreign = make_contact(make_workspace("elsewhere"))
    template = api.post("/coupon-templates", {"name": "满100减10", "kind": "threshold", "value": "10", "threshold_amount": "100",
                                              "validity_days": 7}).json()["id"]

    refused = api.post(f"/coupon-templates/{template}/issue", {"contact_ids": [mine.pk, foreign.pk, mine.pk]})

    assert refused.status_code == 404
    error = refused.json()["error"]
    assert (error["code"], error["details"]) == ("contact_not_found", {"missing": [foreign.pk]})
    assert str(foreign.pk) in error["message"]
    assert not Coupon.objects.filter(contact=mine).exists()
