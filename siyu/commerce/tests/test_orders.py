"""Orders: idempotent recording, replays with changed content, refunds and cancellation
adjusting every amount and the points, coupons used by orders, and the after-commit
lifecycle recomputation."""

from decimal import Decimal as D

import pytest

from siyu.accounts.models import AuditEntry, Role
from siyu.commerce.actions import (
    LineSpec,
    SkuSpec,
    do_cancel_order,
    do_create_coupon_template,
    do_create_product,
    do_create_tier,
    do_issue_coupon,
    do_join_tier,
    do_record_order,
    do_refund_order,
    do_spend_points,
    do_update_commerce_settings,
)
from siyu.commerce.models import Coupon, CouponStatus, Order, OrderStatus, PointsEntry, Refund, StageTransition
from siyu.commerce.queries import points_balance
from siyu.contacts.models import ContactEvent, ContactTag
from siyu.contacts.rules import do_create_tag_rule
from siyu.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace

from .conftest import days_ago, record

pytestmark = pytest.mark.django_db


def test_a_new_order_stores_lines_amounts_timeline_points_and_audit(workspace, owner):
    # given a catalogue and a customer
    do_create_product(workspace, None, name="乌龙茶", category="茶", skus=[SkuSpec(code="TEA-1", price=D("99.50"), cost=D("40"))])
    contact = make_contact(workspace, "小美")
    placed = days_ago(2)

    # when the shop's order is recorded
    order, created, updated = do_record_order(
        workspace, owner, external_id="T1001", contact=contact, placed_at=placed, store="静安店", discount="20",
        lines=[LineSpec(unit_price="99.50", quantity=2, sku_code="TEA-1"), LineSpec(unit_price=D("100"), name="茶杯")],
        source_channel="parcel_card", source_campaign="spring",
    )

    # then the amounts add up and everything that follows from an order is there
    assert (created, updated) == (True, False)
    order.refresh_from_db()
    assert (order.gross_amount, order.discount_amount, order.refunded_amount, order.net_amount) == (D("299.00"), D("20.00"), D("0.00"), D("279.00"))
    assert (order.status, order.currency, order.store, order.placed_at) == (OrderStatus.PAID, "CNY", "静安店", placed)
    assert order.margin_amount is None  # one line has no SKU cost: margin unknown
    assert list(order.lines.values_list("sku_code", "name", "quantity", "unit_price", "line_total")) == [
        ("TEA-1", "乌龙茶", 2, D("99.50"), D("199.00")),
        ("", "茶杯", 1, D("100.00"), D("100.00")),
    ]
    event = ContactEvent.objects.get(contact=contact, kind="order")
    assert event.data == {"order_id": order.pk, "external_id": "T1001", "net_amount": "279.00", "gross_amount": "299.00",
                          "currency": "CNY", "store": "静安店", "points": 279}
    assert event.occurred_at == placed
    assert list(PointsEntry.objects.filter(contact=contact).values_list("delta", "reason", "idempotency_key")) == [
        (279, "order", f"order:{order.pk}:earn")
    ]
    audit = AuditEntry.objects.get(action="order.created")
    assert (audit.actor_id, audit.after["net_amount"], audit.after["external_id"]) == (owner.pk, "279.00", "T1001")


def test_replaying_the_same_order_changes_nothing(workspace):
    contact = make_contact(workspace)
    placed = days_ago(1)
    first = record(workspace, contact, "T1", "120.00", placed_at=placed, store="A")
    counts = (Order.objects.count(), ContactEvent.objects.count(), PointsEntry.objects.count(), AuditEntry.objects.count())

    again = record(workspace, contact, "T1", "120.00", placed_at=placed, store="A")

    assert (again.order.pk, again.created, again.updated) == (first.order.pk, False, False)
    assert (Order.objects.count(), ContactEvent.objects.count(), PointsEntry.objects.count(), AuditEntry.objects.count()) == counts


def test_a_replay_with_changed_content_updates_the_order_with_audit(workspace):
    contact = make_contact(workspace)
    placed = days_ago(1)
    first = record(workspace, contact, "T1", "120.00", placed_at=placed, store="A")

    # when the shop sends the order again with another line and a discount
    again = do_record_order(workspace, None, external_id="T1", contact=contact, placed_at=placed, store="A", discount="10",
                            lines=[LineSpec(unit_price="120.00", name="商品"), LineSpec(unit_price="30", name="赠品加购")])

    assert (again.order.pk, again.created, again.updated) == (first.order.pk, False, True)
    order = Order.objects.get()
    assert (order.gross_amount, order.discount_amount, order.net_amount) == (D("150.00"), D("10.00"), D("140.00"))
    assert list(order.lines.values_list("name", flat=True)) == ["商品", "赠品加购"]
    update = AuditEntry.objects.get(action="order.updated")
    assert (update.before["net_amount"], update.after["net_amount"]) == ("120.00", "140.00")
    assert update.summary == "changed: gross_amount, discount_amount, lines"
    # points follow the new net amount: 120 earned, then 20 more
    assert list(PointsEntry.objects.order_by("id").values_list("delta", flat=True)) == [120, 20]
    assert ContactEvent.objects.filter(kind="order").count() == 1


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"lines": [LineSpec(unit_price="10")]}, "invalid_order", "line 1 needs a sku or a product name"),
        ({"lines": [LineSpec(unit_price="10", name="x")], "gross_amount": "12"}, "amount_mismatch",
         "amount ¥12.00 differs from the sum of the lines ¥10.00"),
        ({"gross_amount": "10", "discount": "10.01"}, "discount_exceeds_gross", "discount ¥10.01 exceeds the amount ¥10.00"),
        ({}, "invalid_amount", "an order needs lines or an amount"),
        ({"gross_amount": "-1"}, "invalid_amount", "amount cannot be negative"),
        ({"gross_amount": "abc"}, "invalid_amount", "amount must be an amount, got 'abc'"),
        ({"gross_amount": "NaN"}, "invalid_amount", "amount must be an amount, got 'NaN'"),
        ({"gross_amount": "10", "status": "shipped"}, "invalid_order",
         "unknown order status 'shipped'; use one of paid, partially_refunded, refunded, cancelled"),
        ({"gross_amount": "10", "refunded": "11"}, "refund_exceeds_paid", "refunded ¥11.00 exceeds the ¥10.00 paid"),
        ({"gross_amount": "10", "refunded": "4", "status": "refunded"}, "status_mismatch", "status 'refunded' does not match refunded ¥4.00 of ¥10.00"),
        ({"gross_amount": "10", "status": "partially_refunded"}, "status_mismatch", "a partially refunded order needs the refunded amount"),
        ({"gross_amount": "10", "lines": [LineSpec(unit_price="10", quantity=0, name="x")]}, "invalid_order",
         "line 1: quantity must be a whole number from 1"),
        ({"gross_amount": "10", "currency": "RMB1"}, "invalid_order", "currency must be a 3-letter code, got 'RMB1'"),
    ],
)
def test_invalid_orders_are_refused_with_a_code(workspace, fields, code, message):
    contact = make_contact(workspace)

    with pytest.raises(ValidationFailed) as caught:
        do_record_order(workspace, None, external_id="T1", contact=contact, placed_at=days_ago(1), **fields)

    assert (caught.value.code, caught.value.message) == (code, message)
    assert Order.objects.count() == 0


def test_a_naive_time_and_a_foreign_contact_are_refused(workspace):
    import datetime as dt

    stranger = make_contact(make_workspace())
    with pytest.raises(ValidationFailed) as naive:
        do_record_order(workspace, None, external_id="T1", contact=make_contact(workspace), placed_at=dt.datetime(2024, 5, 1, 10), gross_amount="1")
    with pytest.raises(NotFound) as foreign:
        do_record_order(workspace, None, external_id="T1", contact=stranger, placed_at=days_ago(1), gross_amount="1")

    assert (naive.value.code, naive.value.message) == ("naive_datetime", "placed_at needs a time zone offset")
    assert (foreign.value.code, foreign.value.message) == ("contact_not_found", "contact not found")


def test_refunds_adjust_net_status_margin_and_reverse_points_in_proportion(workspace, owner):
    # given a paid order of ¥300 with a known margin, which earned 300 points
    contact = make_contact(workspace)
    order = record(workspace, contact, "T1", "300.00", margin="90").order

    # when ¥100 is refunded, then the remaining ¥200
    do_refund_order(order, owner, "100", "尺码不合适", external_id="R1")
    order.refresh_from_db()
    partial = (order.status, order.refunded_amount, order.net_amount, order.margin_amount, points_balance(contact))
    do_refund_order(order, owner, D("200.00"), "退货")
    order.refresh_from_db()

    # then every amount follows, and the points go with the money
    assert partial == (OrderStatus.PARTIALLY_REFUNDED, D("100.00"), D("200.00"), D("60.00"), 200)
    assert (order.status, order.refunded_amount, order.net_amount, order.margin_amount) == (OrderStatus.REFUNDED, D("300.00"), D("0.00"), D("0.00"))
    assert points_balance(contact) == 0
    assert list(PointsEntry.objects.filter(contact=contact).order_by("id").values_list("delta", "reason")) == [
        (300, "order"), (-100, "refund"), (-200, "refund"),
    ]
    refunds = [e.data for e in ContactEvent.objects.filter(contact=contact, kind="refund").order_by("id")]
    assert [(d["amount"], d["refunded_amount"], d["net_amount"], d["reason"], d["points"]) for d in refunds] == [
        ("100.00", "100.00", "200.00", "尺码不合适", -100), ("200.00", "300.00", "0.00", "退货", -200),
    ]
    assert list(Refund.objects.values_list("amount", "external_id")) == [(D("100.00"), "R1"), (D("200.00"), "")]
    assert AuditEntry.objects.filter(action="order.refunded").count() == 2


def test_a_refund_never_exceeds_what_is_left_and_replays_are_no_ops(workspace):
    contact = make_contact(workspace)
    order = record(workspace, contact, "T1", "100.00").order
    do_refund_order(order, None, "60", external_id="R1")

    replay = do_refund_order(order, None, "60", external_id="R1")
    with pytest.raises(ValidationFailed) as too_much:
        do_refund_order(order, None, "40.01")
    with pytest.raises(ValidationFailed) as zero:
        do_refund_order(order, None, "0")
    with pytest.raises(Conflict) as other_content:
        do_refund_order(order, None, "10", external_id="R1")

    assert replay.pk == Refund.objects.get().pk
    assert (too_much.value.code, too_much.value.message) == (
        "refund_exceeds_paid", "cannot refund ¥40.01: only ¥40.00 of the ¥100.00 paid is left to refund"
    )
    assert (zero.value.code, other_content.value.message) == ("invalid_amount", "refund 'R1' was already recorded with other content")
    order.refresh_from_db()
    assert (order.refunded_amount, order.net_amount) == (D("60.00"), D("40.00"))


def test_a_reversal_never_takes_the_points_balance_below_zero(workspace):
    # given 300 points earned, of which 250 are already spent
    contact = make_contact(workspace)
    order = record(workspace, contact, "T1", "300.00").order
    do_spend_points(contact, None, points=250, idempotency_key="redeem-1")

    # when the whole order is refunded
    do_refund_order(order, None, "300")

    # then only the 50 left are taken back; the rest is noted as uncollected
    reversal = PointsEntry.objects.get(reason="refund")
    assert (reversal.delta, reversal.data["uncollected"]) == (-50, 250)
    assert points_balance(contact) == 0


def test_cancelling_counts_as_a_full_refund_and_gives_the_coupon_back(workspace, owner):
    contact = make_contact(workspace)
    template = do_create_coupon_template(workspace, None, name="满100减10", kind="threshold", value="10", threshold_amount="100", validity_days=30)
    coupon = do_issue_coupon(template, contact)
    order = record(workspace, contact, "T1", "150.00", discount="10", coupon_code=coupon.code.lower()).order
    coupon.refresh_from_db()
    redeemed = (coupon.status, coupon.order_id, coupon.discount_amount)

    do_cancel_order(order, owner, "客户取消")
    do_cancel_order(order, owner, "again")

    order.refresh_from_db()
    coupon.refresh_from_db()
    assert redeemed == (CouponStatus.REDEEMED, order.pk, D("10.00"))
    assert (order.status, order.refunded_amount, order.net_amount) == (OrderStatus.CANCELLED, D("140.00"), D("0.00"))
    assert (coupon.status, coupon.order_id) == (CouponStatus.ISSUED, None)
    assert points_balance(contact) == 0
    assert AuditEntry.objects.filter(action="order.cancelled").count() == 1
    assert ContactEvent.objects.get(kind="order_cancelled").data["reason"] == "客户取消"
    with pytest.raises(Conflict) as caught:
        do_refund_order(order, owner, "1")
    assert (caught.value.code, caught.value.message) == ("order_cancelled", "order T1 is cancelled")


def test_refunds_and_cancellation_reported_by_the_shop_are_applied(workspace):
    contact = make_contact(workspace)
    placed = days_ago(3)

    created = record(workspace, contact, "T1", "100.00", placed_at=placed, refunded="30")
    same = record(workspace, contact, "T1", "100.00", placed_at=placed, refunded="30", status="partially_refunded")
    more = record(workspace, contact, "T1", "100.00", placed_at=placed, refunded="100")
    with pytest.raises(ValidationFailed) as undo:
        record(workspace, contact, "T1", "100.00", placed_at=placed, refunded="50")
    cancelled = record(workspace, contact, "T1", "100.00", placed_at=placed, status="cancelled")
    with pytest.raises(Conflict) as repaid:
        record(workspace, contact, "T1", "100.00", placed_at=placed, status="paid")

    assert [(r.created, r.updated) for r in (created, same, more, cancelled)] == [(True, False), (False, False), (False, True), (False, True)]
    assert undo.value.message == "refunded ¥50.00 is less than the ¥100.00 already refunded; refunds cannot be undone"
    assert (repaid.value.code, repaid.value.message) == ("order_cancelled", "order T1 was cancelled and cannot be paid again")
    order = Order.objects.get()
    assert (order.status, order.net_amount) == (OrderStatus.CANCELLED, D("0.00"))
    assert list(Refund.objects.order_by("id").values_list("amount", flat=True)) == [D("30.00"), D("70.00")]


def test_points_use_the_workspace_rate_and_the_tier_multiplier(workspace):
    # given 2 points per yuan and a paid tier that earns ×1.5
    do_update_commerce_settings(workspace, None, points_per_yuan="2")
    gold = do_create_tier(workspace, None, name="黑金卡", kind="paid", price="199", validity_days=365, points_multiplier="1.5", rank=10)
    contact = make_contact(workspace)
    do_join_tier(contact, gold, at=days_ago(10))

    order = record(workspace, contact, "T1", "99.99").order

    # then floor(99.99 × 2 × 1.5) = 299 points, and a refund reverses at the same rate
    assert points_balance(contact) == 299
    do_refund_order(order, None, "33.33")
    assert points_balance(contact) == 199  # floor(66.66 × 3)


def test_a_coupon_used_by_one_order_cannot_be_used_by_another(workspace):
    contact = make_contact(workspace)
    template = do_create_coupon_template(workspace, None, name="无门槛5元", kind="fixed", value="5", validity_days=7)
    coupon = do_issue_coupon(template, contact)
    record(workspace, contact, "T1", "50", discount="5", coupon_code=coupon.code)

    with pytest.raises(Conflict) as caught:
        record(workspace, contact, "T2", "50", discount="5", coupon_code=coupon.code)
    with pytest.raises(ValidationFailed) as unknown:
        record(workspace, contact, "T3", "50", coupon_code="NOPE")

    assert (caught.value.code, caught.value.message) == ("coupon_used", f"coupon {coupon.code} was already used")
    assert (unknown.value.code, unknown.value.message) == ("coupon_not_found", "coupon 'NOPE' not found")
    assert Coupon.objects.get().order.external_id == "T1"
    assert list(Order.objects.values_list("external_id", flat=True)) == ["T1"]


def test_sku_costs_give_the_margin(workspace):
    do_create_product(workspace, None, name="面霜", skus=[SkuSpec(code="C1", price=D("200"), cost=D("70"))])
    contact = make_contact(workspace)

    order = do_record_order(workspace, None, external_id="T1", contact=contact, placed_at=days_ago(1), discount="20",
                            lines=[LineSpec(unit_price="200", quantity=2, sku_code="C1")]).order

    assert (order.booked_margin, order.margin_amount) == (D("240.00"), D("240.00"))  # 380 paid − 2 × 70


@pytest.mark.django_db(transaction=True)
def test_recording_an_order_recomputes_the_lifecycle_and_tag_rules_after_commit():
    # given a tag rule on repeat purchases (real commits: the worker runs after each)
    workspace = make_workspace()
    tag = make_tag(workspace, "复购", group="购买")
    do_create_tag_rule(workspace, None, name="复购", tag=tag, conditions=[{"event": "order", "min_count": 2, "within_days": 90}])
    contact = make_contact(workspace)

    record(workspace, contact, "T1", "80", placed_at=days_ago(20))
    contact.refresh_from_db()
    after_first = contact.lifecycle_stage
    record(workspace, contact, "T2", "80", placed_at=days_ago(2))
    contact.refresh_from_db()

    assert (after_first, contact.lifecycle_stage) == ("first_purchase", "repeat")
    assert list(StageTransition.objects.filter(contact=contact).order_by("id").values_list("from_stage", "to_stage")) == [
        ("new", "first_purchase"), ("first_purchase", "repeat"),
    ]
    assert ContactTag.objects.filter(contact=contact, tag=tag).exists()


def test_roles_and_data_scope_decide_who_records_and_refunds(workspace):
    agent = make_staff(workspace, Role.AGENT)
    colleague = make_staff(workspace, Role.AGENT)
    analyst = make_staff(workspace, Role.ANALYST)
    mine, theirs = make_contact(workspace, owner=agent), make_contact(workspace, owner=colleague)

    created = do_record_order(workspace, agent, external_id="T1", contact=mine, placed_at=days_ago(1), gross_amount="10")
    with pytest.raises(NotFound):
        do_record_order(workspace, agent, external_id="T2", contact=theirs, placed_at=days_ago(1), gross_amount="10")
    with pytest.raises(Forbidden):
        do_record_order(workspace, analyst, external_id="T3", contact=mine, placed_at=days_ago(1), gross_amount="10")
    order = record(workspace, theirs, "T4", "10").order
    with pytest.raises(NotFound):
        do_refund_order(order, agent, "1")

    assert created.created is True
    assert list(Order.objects.order_by("id").values_list("external_id", flat=True)) == ["T1", "T4"]
