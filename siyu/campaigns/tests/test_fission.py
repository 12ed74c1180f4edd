import datetime as dt
import threading
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from siyu.campaigns.actions import (
    do_confirm_due_invites,
    do_confirm_invite,
    do_create_campaign,
    do_invitee_left,
    do_join_campaign,
    do_record_invite,
    do_record_order_commission,
    do_set_reward_state,
    do_update_campaign,
)
from siyu.campaigns.errors import DistributionLevelRefused
from siyu.campaigns.models import CommissionEntry, Invite, Participant, RewardEntry
from siyu.communities.actions import do_add_member, do_create_group, do_remove_member
from siyu.contacts.actions import do_merge_contacts, do_record_event
from siyu.core.errors import Conflict
from siyu.core.testing import make_contact, make_staff, make_workspace

pytestmark = pytest.mark.django_db

LATER = dt.timedelta(days=4)


@pytest.fixture
def workspace():
    return make_workspace("fission")


@pytest.fixture
def campaign(workspace):
    now = timezone.now()
    return do_create_campaign(
        workspace, None, key="spring", name="春季裂变", kind="group", status="running",
        starts_at=now - dt.timedelta(days=1), ends_at=now + dt.timedelta(days=30), hold_days=3,
        tiers=[{"threshold": 3, "kind": "coupon", "label": "5元券", "value": "5"},
               {"threshold": 10, "kind": "gift", "label": "帆布袋"}],
        variants=[{"key": "moments", "scene": "moments", "text": "朋友圈文案"}],
        commission_rates=["0.10", "0.05"],
    )


def _sharer(campaign, name="分享者"):
    participant, _ = do_join_campaign(campaign, make_contact(campaign.workspace, name), joined_at=timezone.now() - dt.timedelta(hours=1))
    return participant


def _invite(sharer, name, **kw):
    return do_record_invite(sharer.invite_code, make_contact(sharer.workspace, name), **kw)


def test_three_invitees_who_stay_earn_the_first_tier_once(campaign):
    sharer = _sharer(campaign)
    invites = [_invite(sharer, f"新客{i}") for i in range(4)]
    assert [i.status for i in invites] == ["pending"] * 4

    held = do_confirm_due_invites(campaign)
    done = do_confirm_due_invites(campaign, now=timezone.now() + LATER)

    assert (held, done) == ({}, {"confirmed": 4})
    sharer.refresh_from_db()
    assert sharer.confirmed_count == 4
    assert list(RewardEntry.objects.filter(participant=sharer).values_list("label", "state")) == [("5元券", "issued")]
    invitee = Participant.objects.get(contact=invites[0].invitee)
    assert (invitee.inviter_id, invitee.depth) == (sharer.pk, 1)


def test_an_invitee_who_joins_and_leaves_within_the_hold_gives_no_reward(campaign, workspace):
    campaign.tiers.filter(threshold=3).update(threshold=1)
    sharer = _sharer(campaign)
    invite = _invite(sharer, "过客")
    group = do_create_group(workspace, None, name="裂变群")
    membership, _ = do_add_member(group, invite.invitee, None)
    do_remove_member(membership, None, reason="left")

    outcome = do_confirm_invite(invite, now=timezone.now() + LATER)

    assert outcome == "clawed_back"
    assert Invite.objects.get(pk=invite.pk).reason == "left_group_within_hold"
    assert RewardEntry.objects.filter(participant=sharer).count() == 0


def test_leaving_after_the_hold_does_not_cost_a_late_confirmation(campaign):
    # given: the invitee stayed through the 3-day hold and left on day 5, before the pass ran
    sharer = _sharer(campaign)
    invite = _invite(sharer, "留满三天")
    do_record_event(invite.invitee, "left_group", idempotency_key="left-late", occurred_at=invite.created_at + dt.timedelta(days=5))

    # when
    outcome = do_confirm_invite(invite, now=invite.created_at + dt.timedelta(days=6))

    # then
    assert outcome == "confirmed"
    assert Invite.objects.get(pk=invite.pk).status == "confirmed"


def test_deleting_the_staff_contact_during_the_hold_claws_back_at_once(campaign):
    sharer = _sharer(campaign)
    invite = _invite(sharer, "删好友")
    do_record_event(invite.invitee, "deleted_by_customer", idempotency_key="del-1")

    assert do_invitee_left(invite.invitee) == 1
    assert Invite.objects.get(pk=invite.pk).status == "clawed_back"


def test_only_new_contacts_count_once_and_never_the_sharer(campaign, workspace):
    sharer = _sharer(campaign)
    old = make_contact(workspace, "老客", created_at=timezone.now() - dt.timedelta(days=90))
    dup_primary, dup = make_contact(workspace, "重复甲"), make_contact(workspace, "重复乙")
    do_merge_contacts(dup_primary, dup, None)

    results = [
        do_record_invite(sharer.invite_code, old).status,
        do_record_invite(sharer.invite_code, sharer.contact).status,
        do_record_invite(sharer.invite_code, dup_primary).status,
    ]
    fresh = make_contact(workspace, "新人")
    first = do_record_invite(sharer.invite_code, fresh)
    again = do_record_invite(sharer.invite_code, fresh)

    assert results == ["rejected"] * 3
    assert list(Invite.objects.filter(status="rejected").order_by("id").values_list("reason", flat=True)) == [
        "already_a_contact", "self_invite", "merged_duplicate"
    ]
    assert (first.status, again.pk) == ("pending", first.pk)
    assert Invite.objects.filter(invitee=fresh).count() == 1


def test_a_burst_from_one_visitor_key_is_held_for_review_not_paid(campaign):
    campaign.tiers.filter(threshold=3).update(threshold=1)
    sharer = _sharer(campaign)
    statuses = [_invite(sharer, f"刷{i}", visitor_key="same-phone").status for i in range(4)]

    do_confirm_due_invites(campaign, now=timezone.now() + LATER)

    assert statuses == ["pending", "pending", "review", "review"]
    assert RewardEntry.objects.filter(participant=sharer).count() == 1  # only the two honest invites count


def test_a_chain_of_instant_leavers_flags_the_sharer_and_holds_rewards(campaign, workspace):
    sharer = _sharer(campaign)
    for i in range(3):
        invite = _invite(sharer, f"秒退{i}")
        do_record_event(invite.invitee, "left_group", idempotency_key=f"left-{i}", occurred_at=invite.created_at + dt.timedelta(minutes=5))
        do_invitee_left(invite.invitee)
    for i in range(3):
        _invite(sharer, f"真客{i}")

    do_confirm_due_invites(campaign, now=timezone.now() + LATER)

    sharer.refresh_from_db()
    assert (sharer.flagged, sharer.flag_reason) == (True, "chain_of_instant_leavers (3)")
    assert list(Invite.objects.filter(inviter=sharer).values_list("status", flat=True).order_by("id")) == ["clawed_back"] * 3 + ["review"] * 3
    assert RewardEntry.objects.filter(participant=sharer).count() == 0


@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_confirmations_around_a_threshold_give_exactly_one_reward(workspace):
    now = timezone.now()
    campaign = do_create_campaign(
        workspace, None, key="race", name="并发", kind="personal", status="running", starts_at=now - dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=9), hold_days=0, tiers=[{"threshold": 10, "kind": "points", "label": "100积分", "points": 100}],
    )
    sharer = _sharer(campaign)
    invites = [_invite(sharer, f"客{i}") for i in range(10)]
    barrier = threading.Barrier(10)
    errors: list[BaseException] = []

    def confirm(invite):
        try:
            barrier.wait()
            do_confirm_invite(invite, now=now + dt.timedelta(minutes=1))
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm, args=(i,)) for i in invites]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert errors == []
    assert Participant.objects.get(pk=sharer.pk).confirmed_count == 10
    assert list(RewardEntry.objects.filter(participant=sharer).values_list("label", "points")) == [("100积分", 100)]


def test_a_third_distribution_level_is_refused_with_the_legal_reason(workspace, campaign):
    with pytest.raises(DistributionLevelRefused) as exc:
        do_update_campaign(campaign, None, commission_rates=["0.1", "0.05", "0.02"])
    assert exc.value.code == "distribution_level_refused"
    assert "三级及以上分销可能构成传销" in exc.value.message
    campaign.refresh_from_db()
    assert campaign.commission_rates == ["0.10", "0.05"]


def test_commission_goes_two_levels_up_and_never_three(campaign, workspace):
    root = _sharer(campaign, "一级上线")
    mid = Participant.objects.get(contact=_invite(root, "二级").invitee)
    low = Participant.objects.get(contact=_invite(mid, "三级").invitee)
    buyer = Participant.objects.get(contact=_invite(low, "买家").invitee)
    order = SimpleNamespace(pk=9001, workspace_id=workspace.pk, contact_id=buyer.contact_id, status="paid", net_amount=Decimal("199.00"))

    entries = do_record_order_commission(order)
    do_record_order_commission(order)

    assert [(e.level, e.beneficiary_id, e.amount) for e in entries] == [(1, low.pk, Decimal("19.90")), (2, mid.pk, Decimal("9.95"))]
    assert CommissionEntry.objects.count() == 2


def test_reward_ledger_moves_only_along_its_transitions(campaign, workspace):
    campaign.tiers.filter(threshold=10).update(threshold=1)
    sharer = _sharer(campaign)
    invite = _invite(sharer, "客")
    do_confirm_invite(invite, now=timezone.now() + LATER)
    gift = RewardEntry.objects.get(participant=sharer, kind="gift")
    owner = make_staff(workspace)

    do_set_reward_state(gift, owner, state="shipped", note="SF123")
    with pytest.raises(Conflict):
        do_set_reward_state(gift, owner, state="to_ship")
    assert (gift.state, gift.note) == ("shipped", "SF123")
