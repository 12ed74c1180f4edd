"""Inbound pipeline and outbox on the sandbox channel (real commits, immediate Huey)."""

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from siyu.channels.actions import do_create_channel_account
from siyu.channels.base import Command, CommandKind, InboundEvent, InboundKind, UnsupportedCommand
from siyu.channels.inbox import do_receive, do_receive_malformed
from siyu.channels.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus, SandboxDelivery, StaffTask
from siyu.channels.outbox import _claim, deliver, do_enqueue
from siyu.communities.models import Group, GroupMessage, Membership
from siyu.contacts.models import ChannelIdentity, Contact
from siyu.core.testing import make_workspace
from siyu.moderation.models import ModerationCase

pytestmark = pytest.mark.django_db(transaction=True)


def _event(kind, key, **data):
    return InboundEvent(kind=kind, dedupe_key=key, occurred_at=timezone.now(), data=data)


@pytest.fixture
def account():
    ws = make_workspace()
    return do_create_channel_account(ws, None, kind="sandbox", name="sbx")


def test_replayed_contact_added_creates_one_contact_and_one_welcome(account):
    event = _event(InboundKind.CONTACT_ADDED, "wm1:1700000000:add", external_id="wm1", name="小美", state="parcel_card:spring", welcome_code="WC1")
    for _ in range(3):
        do_receive(account, [event])
    assert InboxEvent.objects.filter(account=account).count() == 1
    assert InboxEvent.objects.get().status == InboxStatus.PROCESSED
    contact = Contact.objects.get()
    assert (contact.name, contact.source_channel, contact.source_campaign) == ("小美", "parcel_card", "spring")
    welcome = OutboxMessage.objects.get(command="send_welcome")
    assert welcome.payload["welcome_code"] == "WC1" and welcome.status == OutboxStatus.SENT
    assert SandboxDelivery.objects.filter(command="send_welcome").count() == 1


def test_concurrent_duplicates_store_one_row(account):
    event = _event(InboundKind.CONTACT_ADDED, "dup-key", external_id="wm2", name="并发")
    errors = []

    def receive():
        try:
            do_receive(account, [event])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=receive) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert InboxEvent.objects.filter(dedupe_key="dup-key").count() == 1
    assert ChannelIdentity.objects.filter(external_id="wm2").count() == 1
    assert Contact.objects.count() == 1


def test_unknown_and_malformed_events_are_kept_not_dropped(account):
    do_receive(account, [_event(InboundKind.UNKNOWN, "u1", event="change_external_chat_foo")])
    do_receive_malformed(account, "<xml>garbage", "no Encrypt element")
    statuses = dict(InboxEvent.objects.values_list("dedupe_key", "status"))
    assert statuses["u1"] == InboxStatus.IGNORED
    assert [s for k, s in statuses.items() if k.startswith("malformed:")] == [InboxStatus.MALFORMED]


def test_event_missing_a_field_fails_visibly_after_retries(account):
    do_receive(account, [_event(InboundKind.MEMBER_JOINED, "broken", member_id="x")])  # no group_id
    row = InboxEvent.objects.get(dedupe_key="broken")
    assert row.status == InboxStatus.FAILED
    assert "lacks field 'group_id'" in row.error


def test_member_join_welcome_and_advert_removed_with_notice(account):
    group = Group.objects.create(workspace_id=account.workspace_id, channel_account=account, external_id="room1", name="福利1群",
                                 welcome_message="欢迎 {name} 加入{group}！", created_at=timezone.now())
    do_receive(account, [_event(InboundKind.MEMBER_JOINED, "j1", group_id="room1", member_id="@bob:x", member_name="Bob")])
    welcome = OutboxMessage.objects.get(idempotency_key__startswith="group-welcome")
    assert welcome.payload["text"] == "欢迎 Bob 加入福利1群！"
    do_receive(account, [_event(InboundKind.MESSAGE, "m1", group_id="room1", sender_id="@bob:x", message_id="$m1", text="今天穿搭真好看")])
    assert not ModerationCase.objects.exists()
    do_receive(account, [_event(InboundKind.MESSAGE, "m2", group_id="room1", sender_id="@bob:x", message_id="$m2",
                                text="需要的加我微信 13812345678")])
    case = ModerationCase.objects.get()
    assert case.verdict == "remove"
    assert {r["detector"] for r in case.reasons} == {"phone", "wechat_id"}
    sent = dict(OutboxMessage.objects.filter(idempotency_key__startswith="mod:").values_list("command", "status"))
    assert sent == {"delete_message": "sent", "remove_member": "sent", "send_message": "sent"}
    notice = SandboxDelivery.objects.get(command="send_message", idempotency_key__endswith=":notice")
    assert notice.payload["text"].startswith("因系统检测到Bob发广告，已移出群聊")
    assert Membership.objects.get(group=group).left_at is not None
    assert GroupMessage.objects.filter(group=group).count() == 2


def test_channel_that_cannot_remove_gets_a_staff_task(account):
    account.config = {"imitate": "wecom"}
    account.save(update_fields=["config"])
    Group.objects.create(workspace_id=account.workspace_id, channel_account=account, external_id="wrOg", name="客户群", created_at=timezone.now())
    do_receive(account, [_event(InboundKind.MESSAGE, "m3", group_id="wrOg", sender_id="wmX", message_id="msg3", text="加 V 信：abc_123")])
    case = ModerationCase.objects.get()
    tasks = StaffTask.objects.order_by("kind")
    assert [t.kind for t in tasks] == ["moderation_delete_message", "moderation_remove_member"]
    assert tasks[1].detail["reasons"][0]["detector"] == "wechat_id"
    assert {a.get("staff_task") is not None for a in case.applied} == {True}
    assert Membership.objects.get().left_at is None  # nobody was removed: a person must do it

    # the owner removes them in the app; WeCom's member-left report closes the removal task
    do_receive(account, [_event(InboundKind.MEMBER_LEFT, "l3", group_id="wrOg", member_id="wmX")])
    tasks = StaffTask.objects.order_by("kind")
    assert [t.status for t in tasks] == ["open", "done"]  # the message itself is still for a person to delete
    assert Membership.objects.get().left_at is not None


def test_outbox_is_idempotent_and_refuses_unsupported_commands(account):
    cmd = Command(CommandKind.SEND_MESSAGE, "k-1", "room", {"to": "group", "text": "hi"})
    first, created = do_enqueue(account, cmd)
    again, created_again = do_enqueue(account, cmd)
    assert (first.pk, created, created_again) == (again.pk, True, False)
    assert SandboxDelivery.objects.count() == 1
    account.config = {"imitate": "wecom"}
    account.save(update_fields=["config"])
    with pytest.raises(UnsupportedCommand):
        do_enqueue(account, Command(CommandKind.REMOVE_MEMBER, "k-2", "room", {"member": "x"}))


def test_transient_errors_back_off_and_permanent_errors_fail_with_code(account):
    account.config = {"fail_with": {"code": "45009", "transient": True}}
    account.save(update_fields=["config"])
    row, _ = do_enqueue(account, Command(CommandKind.SEND_MESSAGE, "t-1", "room", {"to": "group", "text": "x"}))
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error_code) == (OutboxStatus.PENDING, 1, "45009")
    assert row.next_attempt_at > timezone.now()
    account.config = {"fail_with": {"code": "40003", "transient": False}}
    account.save(update_fields=["config"])
    OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert deliver(row.pk) == OutboxStatus.FAILED
    row.refresh_from_db()
    assert (row.status, row.error_code) == (OutboxStatus.FAILED, "40003")


def test_crash_after_send_before_mark_does_not_send_twice(account):
    account.config = {"fail_with": {"code": "net", "transient": True}}
    account.save(update_fields=["config"])
    row, _ = do_enqueue(account, Command(CommandKind.SEND_MESSAGE, "c-1", "room", {"to": "group", "text": "once"}))
    account.config = {}
    account.save(update_fields=["config"])
    OutboxMessage.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    # a worker claims the row and delivers, then dies before recording the result
    claimed = _claim(row.pk)
    assert claimed is not None
    from siyu.channels.outbox import to_command
    from siyu.channels.registry import adapter_for

    adapter_for(claimed.account).send(to_command(claimed))
    assert deliver(row.pk) == "skipped"  # lease still held: nobody else sends
    OutboxMessage.objects.filter(pk=row.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert deliver(row.pk) == OutboxStatus.SENT  # lease expired: retried, recognised by key
    assert SandboxDelivery.objects.filter(idempotency_key="c-1").count() == 1
