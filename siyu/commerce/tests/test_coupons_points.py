"""Coupons (templates, issuing, redemption with clear error codes, expiry) and the
points ledger (earn, spend, idempotency)."""

import datetime as dt
import re
from decimal import Decimal as D

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry, Role
from siyu.commerce.actions import (
    do_create_coupon_template,
    do_earn_points,
    do_expire_coupons,
    do_issue_coupon,
    do_issue_coupons_bulk,
    do_redeem_coupon,
    do_set_coupon_template_active,
    do_spend_points,
    do_void_coupon,
)
from siyu.commerce.models import Coupon, CouponStatus, CouponTemplate, PointsEntry
from siyu.commerce.queries import points_balance
from siyu.contacts.models import ContactEvent
from siyu.core.errors import Conflict, Forbidden, NotFound, SiyuError, ValidationFailed
from siyu.core.testing import make_contact, make_staff, make_workspace

pytestmark = pytest.mark.django_db


def threshold_coupon(workspace, **kw):
    fields = {"name": "满200减30", "kind": "threshold", "value": "30", "threshold_amount": "200", "validity_days": 7, **kw}
    return do_create_coupon_template(workspace, None, **fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "gift"}, "unknown coupon kind 'gift'; use one of fixed, percent, threshold"),
        ({"kind": "percent", "value": "100", "threshold_amount": "0"}, "a percentage coupon takes off less than 100%"),
        ({"threshold_amount": "0"}, "a threshold coupon needs a threshold above zero and at least its value"),
        ({"value": "300"}, "a threshold coupon needs a threshold above zero and at least its value"),
        ({"validity_days": None}, "a coupon needs validity_days or valid_until"),
        ({"percent_cap": "10"}, "only percentage coupons have a cap"),
        ({"value": "0"}, "value must be above zero"),
        ({"total_stock": 0}, "per_contact_limit must be ≥ 0 and total_stock ≥ 1"),
    ],
)
def test_invalid_templates_are_refused(workspace, fields, message):
    with pytest.raises(ValidationFailed) as caught:
        threshold_coupon(workspace, **fields)
    assert caught.value.message == message


def test_issuing_gives_a_code_an_expiry_a_timeline_event_and_an_audit(workspace, owner):
    contact = make_contact(workspace, "小美")
    window_end = timezone.now() + dt.timedelta(days=3)
    template = threshold_coupon(workspace, validity_days=7, valid_until=window_end)
    before = timezone.now()

    coupon = do_issue_coupon(template, contact, owner, source="fission", source_ref="campaign-9")

    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{10}", coupon.code)
    assert (coupon.status, coupon.source, coupon.source_ref, coupon.expires_at) == (CouponStatus.ISSUED, "fission", "campaign-9", window_end)
    assert before <= coupon.issued_at <= timezone.now()
    template.refresh_from_db()
    assert template.issued_count == 1
    event = ContactEvent.objects.get(contact=contact, kind="coupon_issued")
    assert event.data == {"code": coupon.code, "template": "满200减30", "source": "fission", "expires_at": window_end.isoformat()}
    assert AuditEntry.objects.get(action="coupon.issued").actor_id == owner.pk


def test_stock_and_the_per_contact_limit_are_respected(workspace):
    a, b, c = make_contact(workspace), make_contact(workspace), make_contact(workspace)
    template = threshold_coupon(workspace, total_stock=2, per_contact_limit=1)
    do_issue_coupon(template, a)

    with pytest.raises(Conflict) as again:
        do_issue_coupon(template, a)
    result = do_issue_coupons_bulk(template, [a, b, c], source="segment", source_ref="segment-3")

    assert again.value.code == "per_contact_limit"
    assert [coupon.contact_id for coupon in result.issued] == [b.pk]
    assert result.skipped == [
        {"contact": a.pk, "code": "per_contact_limit", "reason": f"{a.name} already holds 1 of this coupon (limit 1)"},
        {"contact": c.pk, "code": "out_of_stock", "reason": "coupon '满200减30' is out of stock"},
    ]
    template.refresh_from_db()
    assert (template.issued_count, Coupon.objects.count()) == (2, 2)
    assert AuditEntry.objects.get(action="coupons.issued").after == {"issued": 1, "skipped": 2, "source": "segment", "source_ref": "segment-3"}


def test_a_stopped_template_issues_nothing(workspace):
    template = threshold_coupon(workspace)
    do_set_coupon_template_active(template, None, is_active=False)

    with pytest.raises(Conflict) as caught:
        do_issue_coupon(template, make_contact(workspace))

    assert (caught.value.code, caught.value.message) == ("template_inactive", "coupon '满200减30' is no longer issued")


def test_redeeming_takes_the_discount_off_the_basket(workspace, owner):
    contact = make_contact(workspace)
    percent = do_create_coupon_template(workspace, None, name="八折券", kind="percent", value="20", percent_cap="50", validity_days=30)
    coupon = do_issue_coupon(percent, contact)

    redeemed = do_redeem_coupon(f" {coupon.code.lower()} ", contact, "188.88", actor=owner)

    assert (redeemed.status, redeemed.discount_amount, redeemed.order_id) == (CouponStatus.REDEEMED, D("37.78"), None)
    assert redeemed.redeemed_at is not None
    event = ContactEvent.objects.get(kind="coupon_redeemed")
    assert event.data == {"code": coupon.code, "discount": "37.78", "basket": "188.88", "order_id": None}
    assert AuditEntry.objects.get(action="coupon.redeemed").after["status"] == "redeemed"


def _expired(coupon):
    # given: a coupon whose validity ended yesterday
    Coupon.objects.filter(pk=coupon.pk).update(expires_at=timezone.now() - dt.timedelta(days=1))
    return coupon


def _not_yet(workspace, contact):
    template = threshold_coupon(workspace, name="下周券", valid_from=timezone.now() + dt.timedelta(days=7),
                                valid_until=timezone.now() + dt.timedelta(days=14))
    return do_issue_coupon(template, contact)


@pytest.mark.parametrize(
    ("case", "error", "code", "message"),
    [
        ("unknown", NotFound, "coupon_not_found", "coupon 'NOSUCHCODE' not found"),
        ("foreign", NotFound, "coupon_not_found", "coupon '{code}' not found"),
        ("not_owner", ValidationFailed, "coupon_not_owner", "coupon {code} belongs to another customer"),
        ("used", Conflict, "coupon_used", "coupon {code} was already used"),
        ("expired", ValidationFailed, "coupon_expired", "coupon {code} expired"),
        ("void", ValidationFailed, "coupon_void", "coupon {code} was voided"),
        ("not_yet", ValidationFailed, "coupon_not_yet_valid", "coupon {code} is valid from {valid_from}"),
        ("below", ValidationFailed, "below_threshold", "coupon {code} needs a basket of at least ¥200.00; this one is ¥199.99 (¥0.01 short)"),
    ],
)
def test_redemption_refusals_have_clear_codes(workspace, case, error, code, message):
    contact = make_contact(workspace)
    coupon = do_issue_coupon(threshold_coupon(workspace), contact)
    redeemer, basket, text = contact, "250", coupon.code
    if case == "unknown":
        text = "NOSUCHCODE"
    elif case == "foreign":
        elsewhere = make_workspace()
        text = do_issue_coupon(threshold_coupon(elsewhere), make_contact(elsewhere)).code
    elif case == "not_owner":
        redeemer = make_contact(workspace)
    elif case == "used":
        do_redeem_coupon(coupon.code, contact, "250")
    elif case == "expired":
        _expired(coupon)
    elif case == "void":
        do_void_coupon(coupon, None, "发错了")
    elif case == "not_yet":
        coupon = _not_yet(workspace, contact)
        text = coupon.code
    elif case == "below":
        basket = "199.99"

    with pytest.raises(error) as caught:
        do_redeem_coupon(text, redeemer, basket)

    expected = message.format(code=text, valid_from=coupon.valid_from.isoformat() if coupon.valid_from else "")
    assert (caught.value.code, caught.value.message) == (code, expected)


def test_the_expiry_pass_marks_expired_coupons(workspace):
    contact = make_contact(workspace)
    soon = do_issue_coupon(threshold_coupon(workspace, validity_days=1), contact)
    later = do_issue_coupon(threshold_coupon(workspace, name="月券", validity_days=30), contact)

    expired = do_expire_coupons(now=timezone.now() + dt.timedelta(days=2))

    assert expired == 1
    assert dict(Coupon.objects.values_list("pk", "status")) == {soon.pk: "expired", later.pk: "issued"}
    assert AuditEntry.objects.get(action="coupons.expired").after == {"count": 1}


def test_points_are_a_ledger_spent_only_when_the_balance_allows(workspace, owner):
    contact = make_contact(workspace)
    earned, created = do_earn_points(contact, owner, points=120, idempotency_key="welcome", reason="reward", note="入会礼")
    replay, replayed = do_earn_points(contact, owner, points=120, idempotency_key="welcome", reason="reward")
    spent, _ = do_spend_points(contact, owner, points=100, idempotency_key="gift-1", note="兑换杯子")

    with pytest.raises(ValidationFailed) as short:
        do_spend_points(contact, owner, points=21, idempotency_key="gift-2")
    with pytest.raises(Conflict) as reused:
        do_spend_points(contact, owner, points=5, idempotency_key="gift-1")

    assert (created, replay.pk, replayed) == (True, earned.pk, False)
    assert (short.value.code, short.value.message, short.value.details) == ("insufficient_points", "needs 21 points; the balance is 20", {"balance": 20})
    assert reused.value.code == "idempotency_key_reused"
    assert points_balance(contact) == 20
    assert list(PointsEntry.objects.order_by("id").values_list("delta", "reason", "note")) == [(120, "reward", "入会礼"), (-100, "spend", "兑换杯子")]
    assert [e.data["balance"] for e in ContactEvent.objects.filter(kind="points").order_by("id")] == [120, 20]
    assert spent.actor_id == owner.pk
    assert [a.action for a in AuditEntry.objects.filter(action__startswith="points.").order_by("id")] == ["points.earned", "points.spent"]


@pytest.mark.parametrize("points", [0, -5, True, 1.5])
def test_points_must_be_a_positive_whole_number(workspace, points):
    with pytest.raises(ValidationFailed) as caught:
        do_spend_points(make_contact(workspace), None, points=points, idempotency_key="k")
    assert caught.value.code == "invalid_points"


def test_agents_spend_for_their_own_contacts_but_cannot_grant_points_or_templates(workspace):
    agent = make_staff(workspace, Role.AGENT)
    mine, theirs = make_contact(workspace, owner=agent), make_contact(workspace)
    do_earn_points(mine, None, points=10, idempotency_key="seed")

    do_spend_points(mine, agent, points=10, idempotency_key="spend")
    refusals: list[SiyuError] = []
    for attempt in (
        lambda: do_spend_points(theirs, agent, points=1, idempotency_key="x"),
        lambda: do_earn_points(mine, agent, points=1, idempotency_key="y"),
        lambda: do_create_coupon_template(workspace, agent, name="x", kind="fixed", value="1", validity_days=1),
    ):
        with pytest.raises(SiyuError) as caught:
            attempt()
        refusals.append(caught.value)

    assert [type(e) for e in refusals] == [NotFound, Forbidden, Forbidden]
    assert points_balance(mine) == 0
    assert CouponTemplate.objects.count() == 0
