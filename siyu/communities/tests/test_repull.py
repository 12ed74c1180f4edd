import datetime as dt

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import OutboxMessage, SandboxDelivery, StaffTask
from siyu.communities.actions import do_add_member, do_create_auto_reply, do_record_group_health, do_repull_group, do_update_group
from siyu.communities.models import Alert, AutoReplyRule, GroupRepull, MemberRole, Membership
from siyu.communities.tests.test_health import fading_group
from siyu.contacts.actions import do_add_identity
from siyu.core.errors import Conflict, Forbidden, NotFound
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.moderation.actions import do_set_policy
from siyu.moderation.models import ModerationPolicy

pytestmark = pytest.mark.django_db


def _scenario(imitate=None):
    ws = make_workspace()
    owner = make_staff(ws)
    config = {"imitate": imitate} if imitate else {}
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx", config=config)
    yesterday = timezone.now().astimezone(ws.tz).date() - dt.timedelta(days=1)
    group, contacts = fading_group(ws, owner, account=account, external_id="room-old", last=yesterday)
    do_update_group(group, None, rules_text="禁止广告", welcome_message="欢迎{name}", vision="老朋友的福利站", capacity=300)
    admin = make_contact(ws, name="大管家")
    do_add_identity(admin, None, account=account, external_id="wm-admin")
    do_add_member(group, admin, None, role=MemberRole.ADMIN)
    return ws, owner, account, group, contacts, admin, yesterday


def test_a_fading_group_raises_an_alert_and_repull_moves_its_active_members_into_a_new_group(django_capture_on_commit_callbacks):
    # given a fading sandbox group: six members talked in the last 30 days, 24 did not, plus a hand-set admin
    ws, owner, account, group, contacts, admin, yesterday = _scenario()

    # when its health is recorded for the last two weeks
    do_record_group_health(group, yesterday - dt.timedelta(days=13), yesterday)

    # then it raised one "fading" alert
    alert = Alert.objects.get(group=group)
    assert (alert.kind, alert.to_state, alert.resolved_at) == ("group_fading", "fading", None)

    # when the owner re-pulls it
    with django_capture_on_commit_callbacks(execute=True):  # the sends go out after commit
        repull = do_repull_group(ws, group, actor=owner, new_name="静安福利群·二期", farewell_text="本群停用，新群见！")

    # then the new group has exactly the active members and the admin, and keeps the old positioning
    new = repull.new_group
    expected = {c.pk for c in contacts[:6]} | {admin.pk}
    assert set(Membership.objects.filter(group=new, left_at__isnull=True).values_list("contact_id", flat=True)) == expected
    assert Membership.objects.get(group=new, contact=admin).role == "admin"
    assert (new.name, new.rules_text, new.welcome_message, new.vision, new.capacity, new.owner_id, new.external_id) == (
        "静安福利群·二期", "禁止广告", "欢迎{name}", "老朋友的福利站", 300, owner.pk, f"room-old-repull-{group.pk}",
    )
    # and the outbox created the group, invited the six talkers and the admin, and said farewell in the old group
    sent = list(OutboxMessage.objects.filter(workspace=ws).order_by("id").values_list("command", "target", "payload", "status"))
    assert sent == [
        ("create_group", "", {"name": "静安福利群·二期", "group_id": new.pk, "topic": "老朋友的福利站"}, "sent"),
        *[("invite_member", new.external_id, {"member": f"wm-{c.pk}", "reason": "repull"}, "sent") for c in contacts[:6]],
        ("invite_member", new.external_id, {"member": "wm-admin", "reason": "repull"}, "sent"),
        ("send_message", "room-old", {"to": "group", "text": "本群停用，新群见！"}, "sent"),
    ]
    assert SandboxDelivery.objects.filter(account=account).count() == 9
    # and the old group is archived, its alert resolved, the re-pull audited
    group.refresh_from_db()
    alert.refresh_from_db()
    assert group.archived_at is not None
    assert alert.resolution == "re-pulled into 静安福利群·二期" and alert.resolved_by_id == owner.pk
    assert repull.status == "done" and repull.invited == [c.pk for c in contacts[:6]] + [admin.pk]
    assert AuditEntry.objects.filter(action="group.repulled", target_id=str(repull.pk)).count() == 1


def test_repull_copies_settings_and_is_idempotent():
    ws, owner, _account, group, *_ = _scenario()
    do_create_auto_reply(ws, None, name="发货", pattern="发货", reply="48小时内发货", group=group)
    do_set_policy(ws, None, {"actions": {"url": "warn"}}, group=group)
    do_update_group(group, None, horizon="short_term", ends_on="2030-06-18", dismiss_at_end=True, end_farewell="活动结束，再见")
    first = do_repull_group(ws, group, actor=owner)
    new = first.new_group
    # the new group ends as the old one would have: same end date, dismissed at the end with the same farewell
    assert (new.horizon, str(new.ends_on), new.dismiss_at_end, new.end_farewell) == ("short_term", "2030-06-18", True, "活动结束，再见")
    assert list(AutoReplyRule.objects.filter(group=new).values_list("name", "pattern", "reply")) == [("发货", "发货", "48小时内发货")]
    assert ModerationPolicy.objects.get(group=new).config["actions"]["url"] == "warn"
    group.refresh_from_db()
    second = do_repull_group(ws, group, actor=owner)
    assert second.pk == first.pk
    assert GroupRepull.objects.count() == 1
    assert OutboxMessage.objects.filter(workspace=ws).count() == 9
    assert first.new_group.name == "静安福利群（新）"


def test_where_the_channel_cannot_create_groups_a_person_is_asked_to():
    # given the same group on a channel that imitates WeCom (no group creation, no group messages)
    ws, owner, _account, group, contacts, _admin, _ = _scenario(imitate="wecom")

    # when it is re-pulled, keeping the old group
    repull = do_repull_group(ws, group, actor=owner, archive_old=False)

    # then nothing went to the outbox: staff tasks carry the work, and no one is in the new group yet
    assert OutboxMessage.objects.filter(workspace=ws).count() == 0
    tasks = {t.kind: t for t in StaffTask.objects.filter(workspace=ws, kind__startswith="repull_")}
    assert sorted(tasks) == ["repull_create_group", "repull_send_message"]
    assert [p["member"] for p in tasks["repull_create_group"].detail["invite"]] == [f"wm-{c.pk}" for c in contacts[:6]] + ["wm-admin"]
    assert tasks["repull_create_group"].assignee_id == owner.pk
    assert repull.status == "waiting_for_staff"
    assert Membership.objects.filter(group=repull.new_group).count() == 0
    group.refresh_from_db()
    assert group.archived_at is None


def test_repull_checks_permission_workspace_and_state():
    ws, owner, _account, group, *_ = _scenario()
    agent = make_staff(ws, role="agent")
    other = make_workspace()
    with pytest.raises(Forbidden):
        do_repull_group(ws, group, actor=agent)
    with pytest.raises(NotFound):
        do_repull_group(other, group, actor=None)
    from siyu.communities.actions import do_archive_group

    do_archive_group(group, owner)
    with pytest.raises(Conflict):
        do_repull_group(ws, group, actor=owner)
    assert make_contact(ws) is not None


def test_on_matrix_the_invites_ride_on_the_create_group_command():
    # given the group on a Matrix account: the room id of the new group is the server's to choose
    ws = make_workspace()
    owner = make_staff(ws)
    account = do_create_channel_account(ws, None, kind="matrix", name="bot", config={"user_id": "@bot:example.org"})
    yesterday = timezone.now().astimezone(ws.tz).date() - dt.timedelta(days=1)
    group, contacts = fading_group(ws, owner, members=8, account=account, external_id="!old:example.org", last=yesterday)

    # when it is re-pulled (the sends are not delivered here)
    repull = do_repull_group(ws, group, actor=owner, new_name="新群")

    # then one CREATE_GROUP carries the invites, and a farewell goes to the old room
    rows = list(OutboxMessage.objects.filter(workspace=ws).order_by("id").values_list("command", "target", "payload"))
    assert rows == [
        ("create_group", "", {"name": "新群", "group_id": repull.new_group_id, "topic": "", "invite": [f"wm-{c.pk}" for c in contacts[:6]]}),
        ("send_message", "!old:example.org", {"to": "group", "text": "本群即将停止使用。最近活跃的朋友已被邀请进新群「新群」，感谢大家一路的陪伴，我们新群见！"}),
    ]
    assert repull.new_group.external_id == ""
    assert sorted(Membership.objects.filter(group=repull.new_group).values_list("contact_id", flat=True)) == sorted(c.pk for c in contacts[:6])
