import collections
import datetime as dt
import random

import pytest

from siyu.accounts.models import AuditEntry
from siyu.communities.models import Alert, GroupHealthDay, GroupMessage, MemberDayActivity
from siyu.demo.generate import TZ
from siyu.demo.messages import SILENT_GROUP, SPAMMERS_PER_GROUP, ad_text, generate_group_messages
from siyu.demo.seed import do_seed_demo_workspace
from siyu.moderation import engine
from siyu.moderation.detectors import detect
from siyu.moderation.models import ModerationCase

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 10, 0, 5, tzinfo=TZ)


@pytest.fixture
def demo():
    return do_seed_demo_workspace(contacts=800, seed=42, today=DAY)


def _plain(writers):
    return [(w.group.pk, r.sender_id, r.text, r.sent_at, r.data) for w in writers for r in w.rows]


def test_every_ad_style_is_caught_by_the_built_in_detectors():
    rng = random.Random(1)
    missed = [text for text in (ad_text(rng) for _ in range(2000)) if not detect(text)]
    assert missed == []


def test_demo_chat_has_no_false_positives_and_every_ad_is_caught(demo):
    # given the planned demo chat (nothing written yet)
    writers = generate_group_messages(demo, seed=42, now=NOW)

    # when every message goes through the moderation engine with the workspace's policy
    flagged, missed, normal = [], [], 0
    for writer in writers:
        ads = set(writer.ads)
        for index, row in enumerate(writer.rows):
            verdict = engine.check_message(demo.pk, row.text, group_id=writer.group.pk, data=row.data).verdict.value
            if index in ads:
                missed += [row.text] if verdict == "allow" else []
            else:
                normal += 1
                flagged += [row.text] if verdict != "allow" else []

    # then no ordinary message is flagged and no ad slips through
    assert normal > 2000
    assert flagged == []
    assert missed == []


def test_generation_is_deterministic_per_seed(demo):
    first = _plain(generate_group_messages(demo, seed=42, now=NOW))
    again = _plain(generate_group_messages(demo, seed=42, now=NOW))
    other = _plain(generate_group_messages(demo, seed=43, now=NOW))
    assert first == again
    assert first != other


def test_seeding_writes_chat_cases_counters_health_and_roles(demo):
    # when the demo is seeded, its group chat is seeded with it (once: the audit row says what)
    seeded = AuditEntry.objects.filter(workspace=demo, action="demo.group_messages_seeded")
    assert seeded.count() == 1
    counts = seeded.get().after

    # then the rows match the counts
    messages = GroupMessage.objects.in_workspace(demo)
    assert counts["group_messages"] == messages.count() > 2000
    assert counts["moderation_cases"] == counts["ads"] == ModerationCase.objects.in_workspace(demo).count()
    # (spammers the bot removes post no more, so fewer ads are stored than are tried)
    assert 0.01 < counts["ads"] / counts["group_messages"] < 0.035
    assert counts["activity_rows"] == MemberDayActivity.objects.in_workspace(demo).count() > 0
    assert counts["health_days"] == GroupHealthDay.objects.in_workspace(demo).count()
    # all within the 30 local days before today, with replies and mentions
    local_days = {m.astimezone(TZ).date() for m in messages.values_list("sent_at", flat=True)}
    assert min(local_days) >= DAY - dt.timedelta(days=30) and max(local_days) < DAY
    assert messages.filter(data__has_key="reply_to").count() > 150
    assert messages.filter(data__has_key="mentions").count() > 150
    # ads come from a few spammer accounts per group at a time: one the bot removed is
    # replaced by another, so a group's advertisers are the first few plus one per removal
    spammers = collections.Counter(g for g, _c in set(ModerationCase.objects.in_workspace(demo).values_list("group_id", "contact_id")))
    removals = collections.Counter(g for g, _c in set(ModerationCase.objects.in_workspace(demo).filter(
        verdict__in=["remove", "blacklist"]).values_list("group_id", "contact_id")))
    assert all(n <= SPAMMERS_PER_GROUP + removals[g] for g, n in spammers.items())
    assert max(spammers.values()) > 1
    # every case is the engine's verdict on its (deleted) message, dated when it was posted
    case = ModerationCase.objects.in_workspace(demo).select_related("message").first()
    assert case is not None and case.message is not None and case.created_at == case.message.sent_at
    assert case.verdict == engine.check_message(demo.pk, case.text, group_id=case.group_id).verdict.value
    # the silent group is silent, the dying groups fade, the lively ones thrive — and alerts say so
    latest = {row.group.name: row.state for row in GroupHealthDay.objects.in_workspace(demo).filter(day=DAY - dt.timedelta(days=1))
              .select_related("group")}
    states = collections.Counter(latest.values())
    assert latest[SILENT_GROUP] == "silent"
    # (at this small size a dying group may already have gone quiet altogether)
    assert {latest["衣澜成都太古里福利2群"], latest["衣澜线上福利3群"]} <= {"fading", "silent"}
    assert states["thriving"] >= 3 and states["steady"] >= 1
    alerted = set(Alert.objects.in_workspace(demo).values_list("group__name", "kind"))
    assert (SILENT_GROUP, "group_silent") in alerted
    assert {name for name, _kind in alerted} >= {"衣澜成都太古里福利2群", "衣澜线上福利3群"}
    # roles were inferred from the chat
    assert counts["role_changes"] > 0


def test_spammers_the_bot_removed_leave_the_group_and_post_nothing_after(demo):
    from siyu.communities.models import Membership
    from siyu.demo.messages import REMOVED_AFTER

    # the first ad of each spammer that drew a remove (or blacklist) verdict
    removed_at: dict[tuple[int, int], dt.datetime] = {}
    for case in ModerationCase.objects.in_workspace(demo).filter(verdict__in=["remove", "blacklist"]).select_related("message"):
        key = (case.group_id, case.contact_id)
        removed_at[key] = min(removed_at.get(key, case.message.sent_at), case.message.sent_at)
    assert removed_at, "the demo policy removes some advertisers"

    for (group_id, contact_id), at in removed_at.items():
        # their membership closed when the bot removed them, with the reason on their timeline
        membership = Membership.objects.filter(group_id=group_id, contact_id=contact_id).order_by("-joined_at").first()
        assert membership is not None and membership.left_at == at + REMOVED_AFTER
        # and they said nothing more in that group
        assert not GroupMessage.objects.filter(group_id=group_id, sender_id=contact_id, sent_at__gt=at).exists()
    counts = AuditEntry.objects.get(workspace=demo, action="demo.group_messages_seeded").after
    assert counts["removed_spammers"] == len(removed_at)


def test_members_removed_from_a_paid_group_leave_a_refund_task_for_its_owner(demo):
    """In the full-size demo the paid group (衣澜付费会员群) has members the bot removed;
    the small one here has none there, so a group with removals is made a paid one and the
    seeding step that asks for the refunds runs on its cases."""
    from siyu.channels.models import StaffTask
    from siyu.communities.models import Group, Threshold
    from siyu.contacts.models import ChannelIdentity
    from siyu.demo.messages import _ask_for_refunds

    counts = AuditEntry.objects.get(workspace=demo, action="demo.group_messages_seeded").after
    paid = ModerationCase.objects.in_workspace(demo).filter(verdict__in=["remove", "blacklist"], group__threshold=Threshold.PRICE)
    assert counts["refund_tasks"] == paid.count() == StaffTask.objects.in_workspace(demo).filter(kind="moderation_refund").count()

    removals = ModerationCase.objects.in_workspace(demo).filter(verdict__in=["remove", "blacklist"])
    group = Group.objects.get(pk=removals.values_list("group_id", flat=True).first())
    Group.objects.filter(pk=group.pk).update(threshold=Threshold.PRICE, threshold_detail="付费会员卡 ¥99/年")
    group.refresh_from_db()
    cases = list(removals.filter(group=group))
    others = list(removals.exclude(group=group))
    assert others, "removals in other (free) groups ask for nothing"
    groups = {c.group_id: c.group for c in others} | {group.pk: group}

    assert _ask_for_refunds(cases + others, groups) == len(cases) > 0
    tasks = StaffTask.objects.in_workspace(demo).filter(kind="moderation_refund")
    # one open task per removal, as the live path makes it: the owner's, naming the group's price and the removed member
    assert sorted(t.detail["contact_id"] for t in tasks) == sorted(c.contact_id for c in cases)
    for task in tasks:
        case = next(c for c in cases if c.contact_id == task.detail["contact_id"])
        assert task.status == "open" and task.assignee_id == group.owner_id and task.detail["group_id"] == group.pk
        assert group.name in task.title and "付费会员卡 ¥99/年" in task.title
        assert task.dedupe_key == f"task:mod:{case.message_id}:refund"
        # with the case's evidence, the sender named by their id on the channel as the live path names them
        assert task.detail["text"] == case.text[:500] and task.detail["verdict"] == case.verdict and task.detail["reasons"] == case.reasons
        assert task.detail["sender"] == ChannelIdentity.objects.get(contact_id=case.contact_id, account=group.channel_account).external_id
    # asked again (a re-run), nothing doubles
    assert _ask_for_refunds(cases, groups) == len(cases)
    assert tasks.count() == len(cases)


def test_staff_banned_the_removed_spammers_who_poached_to_a_wechat_account(demo):
    """The blacklist page (风控 → 黑名单) shows real entries: each spammer the bot removed
    for an ad with a WeChat id to add (a lead-poaching account), banned at the review an
    hour later, the case as the reason; spammers removed for a phone number alone, and
    everyone else, stay off the list."""
    from siyu.demo.messages import REVIEWED_AFTER
    from siyu.moderation.actions import is_blacklisted
    from siyu.moderation.models import BlacklistEntry

    counts = AuditEntry.objects.get(workspace=demo, action="demo.group_messages_seeded").after
    removals = ModerationCase.objects.in_workspace(demo).filter(verdict__in=["remove", "blacklist"]).select_related("message")
    poachers: dict[int, ModerationCase] = {}
    others: set[int] = set()
    for case in removals.order_by("message__sent_at"):
        if "wechat_id" in {r["detector"] for r in case.reasons}:
            poachers.setdefault(case.contact_id, case)
        else:
            others.add(case.contact_id)
    assert poachers and others - poachers.keys(), "the demo has removals of both kinds"

    entries = BlacklistEntry.objects.in_workspace(demo)
    assert counts["blacklisted"] == entries.count() == len(poachers)
    for entry in entries:
        case = poachers[entry.contact_id]
        assert entry.lifted_at is None and entry.case_id == case.pk
        assert case.message is not None and entry.created_at == case.message.sent_at + REVIEWED_AFTER
        assert entry.reason == "广告引流（留微信号），人工复核后拉黑"
        assert is_blacklisted(entry.contact)  # what a join of theirs is checked against
    assert not entries.filter(contact_id__in=others - poachers.keys()).exists()
    assert entries.count() == BlacklistEntry.objects.count()  # none written to another workspace
