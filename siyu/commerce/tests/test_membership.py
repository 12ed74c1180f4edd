"""Membership tiers and cards (join, renew, expire, automatic tiers by spend) and the
birthday / anniversary reminders for owner staff."""

import datetime as dt
from decimal import Decimal as D

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry
from siyu.channels.models import StaffTask
from siyu.commerce.actions import (
    do_create_birthday_reminders,
    do_create_tier,
    do_expire_memberships,
    do_join_tier,
    do_refund_order,
    do_renew,
)
from siyu.commerce.models import CardStatus, MemberCard
from siyu.commerce.queries import active_card
from siyu.contacts.models import ContactEvent
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.testing import make_contact, make_staff

from .conftest import record

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2025, 3, 1, 4, 0, tzinfo=dt.UTC)


@pytest.fixture
def paid(workspace):
    return do_create_tier(workspace, None, name="付费会员", kind="paid", price="199", validity_days=365, points_multiplier="2", rank=10)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "paid", "price": "0", "validity_days": 30}, "a paid tier needs a price and validity_days"),
        ({"kind": "paid", "price": "99"}, "a paid tier needs a price and validity_days"),
        ({"kind": "paid", "price": "99", "validity_days": 30, "min_spend": "100"}, "a paid tier is bought, not reached by spending: leave min_spend empty"),
        ({"kind": "free", "price": "10"}, "a free tier has no price"),
        ({"kind": "vip"}, "kind must be free or paid"),
        ({"points_multiplier": "-1"}, "points_multiplier must be from 0 to 100"),
    ],
)
def test_invalid_tiers_are_refused(workspace, fields, message):
    with pytest.raises(ValidationFailed) as caught:
        do_create_tier(workspace, None, name="x", **fields)
    assert caught.value.message == message


def test_joining_a_paid_tier_lasts_its_validity_and_replaces_the_old_card(workspace, paid, owner):
    silver = do_create_tier(workspace, None, name="银卡", rank=1)
    contact = make_contact(workspace)
    old = do_join_tier(contact, silver, at=T0 - dt.timedelta(days=10))

    card = do_join_tier(contact, paid, owner, price_paid="149", at=T0)
    with pytest.raises(Conflict) as twice:
        do_join_tier(contact, paid, at=T0)

    old.refresh_from_db()
    assert (old.status, old.closed_at) == (CardStatus.REPLACED, T0)
    assert (card.status, card.valid_from, card.valid_until, card.price_paid) == (CardStatus.ACTIVE, T0, T0 + dt.timedelta(days=365), D("149.00"))
    assert twice.value.code == "already_member"
    event = ContactEvent.objects.filter(kind="membership_joined").latest("id")
    assert event.data == {"tier": "付费会员", "kind": "paid", "valid_until": (T0 + dt.timedelta(days=365)).isoformat(), "replaced": "银卡"}
    assert AuditEntry.objects.filter(action="member_card.created").count() == 2


def test_renewing_extends_from_the_end_and_an_expired_card_reopens(workspace, paid):
    contact = make_contact(workspace)
    card = do_join_tier(contact, paid, at=T0)

    do_renew(card, at=T0 + dt.timedelta(days=300))
    card.refresh_from_db()
    extended = card.valid_until
    assert extended is not None
    expired = do_expire_memberships(now=extended + dt.timedelta(seconds=1))
    card.refresh_from_db()
    reopened = do_renew(card, at=T0 + dt.timedelta(days=800))

    assert extended == T0 + dt.timedelta(days=730)
    assert (expired, card.status) == (1, CardStatus.EXPIRED)
    assert reopened.pk != card.pk
    assert (reopened.valid_from, reopened.valid_until, reopened.source) == (
        T0 + dt.timedelta(days=800), T0 + dt.timedelta(days=1165), "renewal"
    )
    assert list(ContactEvent.objects.filter(contact=contact).order_by("id").values_list("kind", flat=True))[-4:] == [
        "membership_renewed", "membership_expired", "membership_joined", "membership_renewed",
    ]


def test_free_tiers_cannot_be_renewed(workspace):
    card = do_join_tier(make_contact(workspace), do_create_tier(workspace, None, name="普通会员"))

    with pytest.raises(ValidationFailed) as caught:
        do_renew(card)

    assert (caught.value.code, caught.value.message) == ("not_renewable", "普通会员 is not a paid tier with a validity")


def test_spending_lifts_a_contact_to_an_automatic_tier_and_a_refund_does_not_demote(workspace):
    do_create_tier(workspace, None, name="银卡", rank=1, min_spend="500")
    do_create_tier(workspace, None, name="金卡", rank=2, min_spend="2000", points_multiplier="1.5")
    contact = make_contact(workspace)

    record(workspace, contact, "T1", "300")
    nothing_yet = active_card(contact)
    record(workspace, contact, "T2", "300")
    silver = active_card(contact)
    order = record(workspace, contact, "T3", "1500").order
    gold = active_card(contact)
    do_refund_order(order, None, "1500")
    after_refund = active_card(contact)

    assert nothing_yet is None
    assert silver is not None and (silver.tier.name, silver.source) == ("银卡", "auto")
    assert gold is not None and gold.tier.name == "金卡"
    assert after_refund is not None and after_refund.pk == gold.pk


def test_spending_never_swaps_a_running_paid_card_for_a_free_tier(workspace):
    # given a paid card of low rank and a free tier of higher rank reached by spending
    paid = do_create_tier(workspace, None, name="付费会员", kind="paid", price="99", validity_days=365, rank=1)
    do_create_tier(workspace, None, name="金卡", rank=5, min_spend="500")
    contact = make_contact(workspace)
    card = do_join_tier(contact, paid, price_paid="99")

    # when the contact spends past the free tier's threshold
    record(workspace, contact, "P1", "800")

    # then the paid card is still the active one
    current = active_card(contact)
    assert current is not None and (current.pk, current.tier.name) == (card.pk, "付费会员")


def test_the_expiry_pass_only_closes_ended_cards(workspace, paid):
    ending, running = make_contact(workspace), make_contact(workspace)
    do_join_tier(ending, paid, at=timezone.now() - dt.timedelta(days=366))
    do_join_tier(running, paid, at=timezone.now() - dt.timedelta(days=10))

    assert do_expire_memberships() == 1
    assert do_expire_memberships() == 0
    assert dict(MemberCard.objects.values_list("contact_id", "status")) == {ending.pk: "expired", running.pk: "active"}


def test_birthday_and_anniversary_reminders_go_to_the_owner_once(workspace):
    # given today is 26 February 2025 (not a leap year) and reminders 3 days ahead
    seller = make_staff(workspace, email="li@shop.test")
    today = dt.date(2025, 2, 26)
    soon = make_contact(workspace, "小美", owner=seller, birthday="1990-02-28")
    leap = make_contact(workspace, "阿闰", owner=seller, birthday="1992-02-29")
    today_birthday = make_contact(workspace, "今天", owner=seller, birthday="1985-02-26")
    make_contact(workspace, "太远", owner=seller, birthday="1990-03-02")
    make_contact(workspace, "没人管", birthday="1990-02-27")
    member = make_contact(workspace, "老会员", owner=seller)
    do_join_tier(member, do_create_tier(workspace, None, name="普通会员"), at=dt.datetime(2023, 3, 1, 2, 0, tzinfo=dt.UTC))  # 10:00 in Shanghai

    created = do_create_birthday_reminders(workspace, today=today)
    again = do_create_birthday_reminders(workspace, today=today)

    assert created == {"birthdays": 3, "anniversaries": 1}
    assert again == {"birthdays": 0, "anniversaries": 0}
    tasks = {t.dedupe_key: (t.kind, t.title, t.assignee_id) for t in StaffTask.objects.in_workspace(workspace)}
    assert tasks == {
        f"birthday:{soon.pk}:2025": ("birthday_reminder", "小美 的生日是 2月28日（2 天后）", seller.pk),
        f"birthday:{leap.pk}:2025": ("birthday_reminder", "阿闰 的生日是 2月28日（2 天后）", seller.pk),
        f"birthday:{today_birthday.pk}:2025": ("birthday_reminder", "今天 的生日是 2月26日（今天）", seller.pk),
        f"anniversary:{member.pk}:2025": ("anniversary_reminder", "老会员 入会 2 周年：3月1日（3 天后）", seller.pk),
    }
