import datetime as dt

import pytest
from django.utils import translation

from siyu.accounts.models import AuditEntry
from siyu.channels.actions import do_create_channel_account
from siyu.communities.actions import (
    do_add_activity,
    do_add_member,
    do_create_group,
    do_infer_member_roles,
    do_record_group_message,
)
from siyu.communities.activity import ActivityCounter, MessageFacts
from siyu.communities.models import MemberRole, Membership
from siyu.communities.roles import HOLD_EVALUATIONS, GroupThresholds, MemberStats, classify, percentile
from siyu.core.testing import make_contact, make_workspace
from siyu.moderation.actions import do_moderate_message

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 6, 30)


def _activity(group, contact, day, *, messages=0, replies=0, mentions=0, links=0):
    counter = ActivityCounter()
    for field, n in enumerate((messages, replies, mentions, links)):
        if n:
            counter.add(group.workspace_id, group.pk, contact.pk, day, field, n)
    do_add_activity(counter)


def _role(membership):
    membership.refresh_from_db()
    return membership.role


def test_percentile_is_nearest_rank():
    assert percentile([], 90) == 0
    assert percentile([1, 2, 3, 4], 90) == 4
    assert percentile([0, 0, 12, 41], 75) == 12


def test_classify_explains_each_role_in_the_active_language():
    t = GroupThresholds(messages=10, replies=5, links=3, mentions=3)
    # stored by the worker in the workspace language (zh-hans) …
    assert classify(MemberStats(1, messages=32, replies_received=41), t).reason == "30 天内发言 32 条、收到回复 41 条——位列本群前 10%"
    assert classify(MemberStats(1, messages=0, mentions=2), t).reason == "30 天内未发言；被 @ 2 次"
    assert classify(MemberStats(1, messages=40, cases=2), t).reason == "30 天内被处理 2 次（广告或违规内容）"
    with translation.override("en"):  # … and in English where English is active
        _classify_in_english(t)


def _classify_in_english(t):
    assert classify(MemberStats(1, messages=32, replies_received=41), t).reason == (
        "32 messages and 41 replies received in 30 days — top 10% of this group"
    )
    assert classify(MemberStats(1, messages=0, mentions=2), t).reason == "no messages in 30 days; @-mentioned 2 times"
    assert classify(MemberStats(1, messages=1), t) == classify(MemberStats(1, messages=1), t)
    assert classify(MemberStats(1, messages=1), t).reason == "1 message in 30 days"
    assert classify(MemberStats(1, messages=4, links=3, replies_received=2), t).role == MemberRole.EXPERT
    assert classify(MemberStats(1, messages=40, cases=2), t).reason == "2 moderation cases in 30 days (ads or banned content)"


def test_roles_are_inferred_relative_to_the_group_and_hand_set_roles_win():
    # given a group whose members behave differently over the last 30 days
    ws = make_workspace()
    group = do_create_group(ws, None, name="会员群")
    people = {key: make_contact(ws, name=key) for key in ("core", "expert", "mascot", "onlooker", "lurker", "owner")}
    members = {key: do_add_member(group, c, None)[0] for key, c in people.items() if key != "owner"}
    owner, _ = do_add_member(group, people["owner"], None, role=MemberRole.OWNER)
    _activity(group, people["core"], DAY - dt.timedelta(days=3), messages=40, replies=41)
    _activity(group, people["expert"], DAY - dt.timedelta(days=10), messages=3, replies=12)
    _activity(group, people["mascot"], DAY, messages=2, mentions=8)
    _activity(group, people["onlooker"], DAY - dt.timedelta(days=29), messages=2)
    _activity(group, people["onlooker"], DAY - dt.timedelta(days=30), messages=50, replies=50)  # outside the window
    _activity(group, people["owner"], DAY, messages=99, replies=99)

    # when the roles are evaluated for the first time
    result = do_infer_member_roles(group, day=DAY)

    # then each member gets the role its numbers suggest, at once (a first evaluation), with a reason
    assert result == {"evaluated": 5, "changed": 4, "pending": 0}  # all but the onlooker (the default role)
    got = {key: (m.role, m.role_reason) for key, m in ((k, Membership.objects.get(pk=v.pk)) for k, v in members.items())}
    assert got == {
        "core": ("core", "30 天内发言 40 条、收到回复 41 条——位列本群前 10%"),
        "expert": ("expert", "30 天内发言 3 条、收到回复 12 条、分享链接 0 个——所发内容常有人回应"),
        "mascot": ("mascot", "30 天内被 @ 8 次——位列本群前 10%"),
        "onlooker": ("onlooker", "30 天内发言 2 条"),
        "lurker": ("lurker", "30 天内未发言"),
    }
    assert _role(owner) == MemberRole.OWNER
    assert AuditEntry.objects.filter(action="member.roles_inferred", target_id=str(group.pk)).count() == 1


def test_a_member_with_an_ad_in_the_window_is_a_rebel():
    # given a link ad caught by moderation today (the default policy deletes links: the member stays in)
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    group = do_create_group(ws, None, name="福利群", channel_account=account, external_id="room-1")
    spammer = make_contact(ws, name="广告哥")
    membership, _ = do_add_member(group, spammer, None)
    message, _ = do_record_group_message(group, spammer, external_id="ad-1", text="超低价代购 http://dg.example.shop/x 点进来",
                                         data={"sender_external_id": "u-spam"})
    case = do_moderate_message(message, account)
    assert case is not None and case.verdict == "delete"

    # when roles are evaluated for today (local)
    do_infer_member_roles(group, day=dt.datetime.now(ws.tz).date())

    # then the member is a rebel, and the reason names the case
    membership.refresh_from_db()
    assert (membership.left_at, membership.role, membership.role_reason) == (
        None, "rebel", "30 天内被处理 1 次（广告或违规内容）"
    )


def test_a_new_inferred_role_replaces_the_current_one_only_after_it_holds_for_the_hold_period():
    # given a lurker (first evaluation on day 1: no messages)
    ws = make_workspace()
    group = do_create_group(ws, None, name="会员群")
    contact = make_contact(ws)
    membership, _ = do_add_member(group, contact, None)
    start = dt.date(2026, 6, 1)
    do_infer_member_roles(group, day=start)
    assert _role(membership) == MemberRole.LURKER

    # when the member speaks on day 2 and the daily evaluation runs on days 2…(1 + HOLD_EVALUATIONS)
    _activity(group, contact, start + dt.timedelta(days=1), messages=2)
    roles = []
    for offset in range(1, HOLD_EVALUATIONS + 1):
        day = start + dt.timedelta(days=offset)
        do_infer_member_roles(group, day=day)
        do_infer_member_roles(group, day=day)  # a repeated run of the same day counts once
        membership.refresh_from_db()
        roles.append((membership.role, membership.role_candidate, membership.role_candidate_streak))

    # then the role stays "lurker" for HOLD_EVALUATIONS - 1 evaluations and flips on the HOLD-th
    assert HOLD_EVALUATIONS == 7
    assert roles == [("lurker", "onlooker", n) for n in range(1, HOLD_EVALUATIONS)] + [("onlooker", "", 0)]
    assert (membership.role_reason, membership.role_candidate_since) == ("30 天内发言 2 条", None)


def test_an_interrupted_candidate_starts_counting_again():
    # given a lurker whose candidate "onlooker" held for 3 evaluations
    ws = make_workspace()
    group = do_create_group(ws, None, name="会员群")
    contact = make_contact(ws)
    membership, _ = do_add_member(group, contact, None)
    start = dt.date(2026, 6, 1)
    do_infer_member_roles(group, day=start)
    _activity(group, contact, start + dt.timedelta(days=1), messages=1)
    for offset in (1, 2, 3):
        do_infer_member_roles(group, day=start + dt.timedelta(days=offset))
    membership.refresh_from_db()
    assert (membership.role, membership.role_candidate, membership.role_candidate_streak) == ("lurker", "onlooker", 3)

    # when the message leaves the 30-day window (the proposal is "lurker" again on day 32)
    do_infer_member_roles(group, day=start + dt.timedelta(days=31))

    # then the candidate is dropped
    membership.refresh_from_db()
    assert (membership.role, membership.role_candidate, membership.role_candidate_streak) == ("lurker", "", 0)


def test_left_members_are_not_evaluated():
    ws = make_workspace()
    group = do_create_group(ws, None, name="会员群")
    membership, _ = do_add_member(group, make_contact(ws), None)
    Membership.objects.filter(pk=membership.pk).update(left_at=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    assert do_infer_member_roles(group, day=DAY) == {"evaluated": 0, "changed": 0, "pending": 0}


def test_message_facts_shape_is_what_demo_and_roles_rely_on():
    # the activity counters' definition (pipeline) is what roles read: a guard that it still has the fields used here
    assert MessageFacts(has_link=False, reply_to="", mentions=()).mentions == ()
