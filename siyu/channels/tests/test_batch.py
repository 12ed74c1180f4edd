"""The batch inbox processor stores exactly what the per-event path stores, exactly once."""

import datetime as dt
import re

import pytest
from django.db import transaction
from django.utils import timezone

from siyu.accounts.models import AuditEntry
from siyu.channels.actions import do_create_channel_account
from siyu.channels.base import InboundEvent, InboundKind
from siyu.channels.inbox import do_receive, process, process_batch
from siyu.channels.models import InboxEvent, InboxStatus, OutboxMessage
from siyu.communities.actions import do_create_auto_reply, do_create_group
from siyu.communities.models import AutoReplyFiring, GroupMessage, MemberDayActivity, Membership
from siyu.contacts.models import ContactEvent
from siyu.core.testing import make_workspace
from siyu.moderation.actions import do_save_word_list, do_set_policy
from siyu.moderation.models import ModerationCase, Strike

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    # compiled policies and rules are cached per (workspace, group) id, and ids come
    # again after a test's rollback
    from siyu.communities import autoreply
    from siyu.moderation import engine

    engine.invalidate()
    autoreply.invalidate()

SETUP_AUDIT = ("workspace.created", "channel_account.created", "group.created", "auto_reply.created", "word_list.saved",
               "moderation.policy_set")
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


def _workspace():
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    do_create_group(ws, None, name="福利1群", channel_account=account, external_id="room1")
    do_create_group(ws, None, name="福利2群", channel_account=account, external_id="room2")
    do_create_auto_reply(ws, None, name="价格", pattern="多少钱", reply="价格请看群公告～", cooldown_seconds=600)
    return ws, account


def _script():
    """Joins, chat, a reply, a mention, a link, an advert, auto-reply triggers inside and
    after the cool-down, a message from someone never seen joining, a bot echo."""
    def msg(i, room, sender, text, **extra):
        return (InboundKind.MESSAGE, f"m{i}", T0 + dt.timedelta(minutes=i),
                {"group_id": room, "sender_id": sender, "sender_name": sender.upper(), "message_id": f"$m{i}", "text": text, **extra})

    def join(i, room, member):
        return (InboundKind.MEMBER_JOINED, f"j{i}", T0 + dt.timedelta(minutes=i), {"group_id": room, "member_id": member, "member_name": member.upper()})

    return [
        join(0, "room1", "ann"), join(1, "room1", "bob"), join(2, "room2", "ann"),
        msg(3, "room1", "ann", "大家早上好"),
        msg(4, "room1", "bob", "早！", reply_to="$m3"),
        msg(5, "room1", "bob", "@ANN 这个多少钱", mentions=["ann"]),
        msg(6, "room1", "ann", "看这里 https://shop.example.com/item/1"),  # an outside link: deleted
        msg(7, "room1", "ann", "多少钱呀"),  # inside the cool-down: no second reply
        msg(8, "room2", "ann", "请问多少钱"),  # another group: its own cool-down
        msg(9, "room1", "bob", "需要的加我微信 13812345678"),  # advert: removed
        msg(10, "room1", "cat", "我是新来的"),  # never seen joining: joins by speaking
        msg(30, "room1", "ann", "现在多少钱"),  # after the cool-down: replied again
        msg(31, "room1", "bot", "自动回复", from_bot=True),
    ]


def _store(account, script):
    return [
        InboxEvent.objects.create(workspace_id=account.workspace_id, account=account, dedupe_key=key, kind=kind.value, data=data, occurred_at=at).pk
        for kind, key, at, data in script
    ]


def _snapshot(ws):
    names = lambda qs: sorted(qs)  # noqa: E731
    return {
        "messages": names(GroupMessage.objects.in_workspace(ws).values_list("group__name", "sender__name", "external_id", "text", "msgtype")),
        "message_data": names((m.external_id, sorted(m.data.items())) for m in GroupMessage.objects.in_workspace(ws)),
        "timeline": names(ContactEvent.objects.in_workspace(ws).values_list("contact__name", "kind", "data__text")),
        "activity": names(MemberDayActivity.objects.in_workspace(ws).values_list(
            "group__name", "contact__name", "day", "messages", "replies_received", "mentions", "links")),
        "cases": names(ModerationCase.objects.in_workspace(ws).values_list("verdict", "text")),
        "outbox": names(OutboxMessage.objects.in_workspace(ws).values_list("command", "payload__text")),
        "firings": names(AutoReplyFiring.objects.in_workspace(ws).values_list("group__name", "fired")),
        "members": names((m.group.name, m.contact.name, m.join_source, m.left_at is None) for m in Membership.objects.in_workspace(ws)),
        "inbox": names(InboxEvent.objects.in_workspace(ws).values_list("dedupe_key", "status", "attempts")),
        "case_detail": names(
            (c.message.external_id, c.contact.name, c.verdict, c.rule, c.note, str(c.reasons), str([sorted(a) for a in c.applied]),
             [a.get("command") for a in c.applied])
            for c in ModerationCase.objects.in_workspace(ws).select_related("message", "contact")
        ),
        "strikes": names(Strike.objects.in_workspace(ws).values_list("contact__name", "group__name", "created_at", "case__verdict")),
        "outbox_detail": names(
            (o.command, o.target, re.sub(r"\d+", "#", o.idempotency_key), str(sorted(o.payload.items())))
            for o in OutboxMessage.objects.in_workspace(ws)
        ),
        "left": names(Membership.objects.in_workspace(ws).filter(left_at__isnull=False).values_list("contact__name", "group__name")),
        "timeline_detail": names(  # a removal happens "now", not at the message's time
            (name, kind, None if kind == "left_group" else at, reason)
            for name, kind, at, reason in ContactEvent.objects.in_workspace(ws).values_list("contact__name", "kind", "occurred_at", "data__reason")
        ),
        "audit": names(AuditEntry.objects.filter(workspace=ws).exclude(action__in=SETUP_AUDIT).values_list("action", "target_type", "summary")),
    }


def test_batch_stores_exactly_what_the_per_event_path_stores():
    one_ws, one_account = _workspace()
    batch_ws, batch_account = _workspace()
    one_ids, batch_ids = _store(one_account, _script()), _store(batch_account, _script())

    for pk in one_ids:
        process(pk)
    counts = process_batch(batch_ids)

    per_event, batched = _snapshot(one_ws), _snapshot(batch_ws)
    assert batched == per_event
    assert counts["processed"] + counts["ignored"] == len(batch_ids)
    assert counts["ignored"] == 1
    assert counts["fallback"] == 4  # 3 joins and the newcomer; the link and the advert are judged inside the batch
    assert sorted(per_event["outbox"]) == sorted([
        ("delete_message", None), ("delete_message", None), ("remove_member", None),
        ("send_message", "价格请看群公告～"), ("send_message", "价格请看群公告～"), ("send_message", "价格请看群公告～"),
        ("send_message", "因系统检测到BOB发广告，已移出群聊。本群由机器人监控广告，请大家遵守群规。"),
    ])
    day = dt.date(2026, 3, 2)
    assert [row for row in per_event["activity"] if row[0] == "福利1群"] == [
        ("福利1群", "ANN", day, 4, 1, 1, 1), ("福利1群", "BOB", day, 3, 0, 0, 0), ("福利1群", "CAT", day, 1, 0, 0, 0),
    ]


def _offenders_script():
    """A warned word, a repeat offender escalated to removal, flooding, an exempt
    staff sender, chat around them."""
    def msg(i, room, sender, text, **extra):
        return (InboundKind.MESSAGE, f"o{i}", T0 + dt.timedelta(seconds=20 * i),
                {"group_id": room, "sender_id": sender, "sender_name": sender.upper(), "message_id": f"$o{i}", "text": text, **extra})

    def join(i, room, member):
        return (InboundKind.MEMBER_JOINED, f"oj{i}", T0 + dt.timedelta(seconds=20 * i), {"group_id": room, "member_id": member, "member_name": member.upper()})

    return [
        join(0, "room1", "ann"), join(1, "room1", "bob"), join(2, "room1", "eve"), join(3, "room2", "ann"),
        msg(4, "room1", "ann", "听说竞品宝更便宜"),  # a listed word: warned (policy), first strike
        msg(5, "room1", "bob", "不会吧"),
        msg(6, "room2", "ann", "看这里 https://shop.example.com/1"),  # delete, but a repeat offender: removed
        msg(7, "room1", "bob", "刷一下"), msg(8, "room1", "bob", "刷一下"), msg(9, "room1", "bob", "刷一下"),  # the third is flooding
        msg(10, "room1", "eve", "官网 https://shop.example.com/2", sender_is_staff=True),  # staff: exempt, left alone
        msg(11, "room1", "eve", "多少钱", sender_is_staff=True),  # staff: no auto-reply either
        msg(12, "room1", "ann", "大家好"),  # still in room1: chat as usual
    ]


def _offenders_workspace():
    ws, account = _workspace()
    do_save_word_list(ws, None, name="竞品", words=["竞品宝"], kind="sensitive_word")
    do_set_policy(ws, None, {"actions": {"sensitive_word": "warn"}, "escalation": {"window_days": 30, "remove_after": 1, "blacklist_after": 3}})
    return ws, account


def test_batch_applies_warnings_escalation_and_flooding_as_the_per_event_path_does():
    one_ws, one_account = _offenders_workspace()
    batch_ws, batch_account = _offenders_workspace()
    one_ids, batch_ids = _store(one_account, _offenders_script()), _store(batch_account, _offenders_script())

    for pk in one_ids:
        process(pk)
    counts = process_batch(batch_ids)

    per_event, batched = _snapshot(one_ws), _snapshot(batch_ws)
    assert batched == per_event
    assert counts["fallback"] == 4  # the joins only
    assert sorted((v, t) for v, t in per_event["cases"]) == [("delete", "刷一下"), ("remove", "看这里 https://shop.example.com/1"),
                                                             ("warn", "听说竞品宝更便宜")]
    assert per_event["left"] == [("ANN", "福利2群")]
    assert [row[4] for row in per_event["case_detail"] if row[2] == "remove"] == ["屡次违规：此前已有 1 次记录"]


def test_duplicate_delivery_of_a_batch_stores_and_processes_once():
    ws, account = _workspace()
    events = [InboundEvent(kind, key, at, data) for kind, key, at, data in _script()]

    first = do_receive(account, events)
    again = do_receive(account, events)

    assert [created for _, created in first] == [True] * len(events)
    assert [created for _, created in again] == [False] * len(events)
    assert [row.pk for row, _ in again] == [row.pk for row, _ in first]
    assert InboxEvent.objects.in_workspace(ws).count() == len(events)
    ids = [row.pk for row, _ in first] + [row.pk for row, _ in again]
    assert process_batch(ids)["processed"] == len(events) - 1
    assert process_batch(ids) == {"processed": 0, "ignored": 0, "fallback": 0, "retried": 0, "skipped": len(events)}
    assert GroupMessage.objects.in_workspace(ws).count() == 9  # every message but the bot's echo, once


def test_a_batch_that_dies_before_commit_leaves_every_row_pending_and_runs_once_later():
    ws, account = _workspace()
    ids = _store(account, _script())

    class WorkerKilled(Exception):
        pass

    with pytest.raises(WorkerKilled), transaction.atomic():
        process_batch(ids)
        raise WorkerKilled  # the process dies after the work, before the commit

    assert set(InboxEvent.objects.in_workspace(ws).values_list("status", flat=True)) == {InboxStatus.PENDING}
    assert GroupMessage.objects.in_workspace(ws).count() == 0
    process_batch(ids)
    process_batch(ids)
    assert GroupMessage.objects.in_workspace(ws).count() == 9
    assert ModerationCase.objects.in_workspace(ws).count() == 2
    assert OutboxMessage.objects.in_workspace(ws).filter(idempotency_key__startswith="autoreply:").count() == 3
    assert set(InboxEvent.objects.in_workspace(ws).values_list("status", "attempts")) == {(InboxStatus.PROCESSED, 1), (InboxStatus.IGNORED, 1)}


def test_a_failing_event_inside_a_batch_fails_alone():
    ws, account = _workspace()
    script = _script()[:5]
    script.insert(2, (InboundKind.MEMBER_JOINED, "broken", T0, {"member_id": "x"}))  # no group_id
    ids = _store(account, script)

    counts = process_batch(ids)

    statuses = dict(InboxEvent.objects.in_workspace(ws).values_list("dedupe_key", "status"))
    assert statuses.pop("broken") == InboxStatus.FAILED
    assert set(statuses.values()) == {InboxStatus.PROCESSED}
    assert counts["retried"] == 1
    assert GroupMessage.objects.in_workspace(ws).count() == 2
    assert timezone.now() > T0


def test_flooding_across_two_batches_is_counted_from_the_stored_messages():
    one_ws, one_account = _offenders_workspace()
    batch_ws, batch_account = _offenders_workspace()
    one_ids, batch_ids = _store(one_account, _offenders_script()), _store(batch_account, _offenders_script())

    for pk in one_ids:
        process(pk)
    process_batch(batch_ids[:10])  # "刷一下" twice in the first batch …
    counts = process_batch(batch_ids[10:])  # … the third in the next: flooding

    assert _snapshot(batch_ws) == _snapshot(one_ws)
    assert (counts["fallback"], counts["retried"]) == (0, 0)  # decided inside the batch, not after a batch failure
    assert ("delete", "刷一下") in _snapshot(batch_ws)["cases"]


def test_a_task_with_few_rows_takes_the_oldest_pending_backlog_along_but_not_rows_being_retried():
    """WeCom calls back once per event, so the worker gets one task per event: the first
    task drains the backlog in one batch, the later ones find their rows done."""
    ws, account = _workspace()
    ids = _store(account, _script())
    retrying = ids[4]  # a handler failed on it once: it keeps to its own retry schedule
    InboxEvent.objects.filter(pk=retrying).update(attempts=1)

    counts = process_batch([ids[-1]], fill=500)

    statuses = dict(InboxEvent.objects.in_workspace(ws).values_list("pk", "status"))
    assert statuses.pop(retrying) == InboxStatus.PENDING
    assert set(statuses.values()) == {InboxStatus.PROCESSED, InboxStatus.IGNORED}
    assert counts["processed"] + counts["ignored"] == len(ids) - 1
    assert process_batch([ids[0]], fill=500)["skipped"] == 1  # a later task: its row is done, and no backlog joins it
    assert process_batch([retrying], fill=500)["processed"] == 1  # the retry's own task
    assert process_batch([ids[1]]) == {"processed": 0, "ignored": 0, "fallback": 0, "retried": 0, "skipped": 1}


def test_fill_stops_at_the_batch_size_oldest_first():
    ws, account = _workspace()
    ids = _store(account, _script())

    process_batch([ids[-1]], fill=4)

    done = set(InboxEvent.objects.in_workspace(ws).exclude(status=InboxStatus.PENDING).values_list("pk", flat=True))
    assert done == {ids[0], ids[1], ids[2], ids[-1]}


def test_deliveries_stored_in_one_transaction_are_handed_to_the_worker_together(monkeypatch, django_capture_on_commit_callbacks):
    """A Matrix sync stores its events one by one inside one transaction: one task."""
    from siyu.channels import inbox

    _ws, account = _workspace()
    scheduled = []
    monkeypatch.setattr(inbox, "schedule_batches", lambda ids: scheduled.append(list(ids)))
    events = [InboundEvent(kind, key, at, data) for kind, key, at, data in _script()]

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        stored = [row.pk for event in events for row, _ in do_receive(account, [event])]

    assert scheduled == [sorted(set(stored))]


def test_vip_and_hand_assigned_admins_are_exempt_in_the_batch_as_in_the_per_event_path():
    from siyu.communities.actions import do_set_member_role
    from siyu.communities.models import MemberRole
    from siyu.contacts.actions import do_get_or_create_tag, do_tag_contacts
    from siyu.contacts.models import Contact

    def msg(i, sender, text):
        return (InboundKind.MESSAGE, f"x{i}", T0 + dt.timedelta(minutes=i),
                {"group_id": "room1", "sender_id": sender, "sender_name": sender.upper(), "message_id": f"$x{i}", "text": text})

    def join(i, member):
        return (InboundKind.MEMBER_JOINED, f"xj{i}", T0 + dt.timedelta(minutes=i), {"group_id": "room1", "member_id": member, "member_name": member.upper()})

    people = ["vip", "adm", "inferred", "bob"]
    messages = [msg(10 + i, who, f"看这里 https://shop.example.com/{who}") for i, who in enumerate(people)]
    snapshots = []
    for path in ("per_event", "batch"):
        ws, account = _workspace()
        for pk in _store(account, [join(i, who) for i, who in enumerate(people)]):
            process(pk)
        do_tag_contacts(ws, None, [Contact.objects.get(workspace=ws, name="VIP")], [do_get_or_create_tag(ws, None, group_name="等级", name="VIP")])
        members = {m.contact.name: m for m in Membership.objects.in_workspace(ws).select_related("contact")}
        do_set_member_role(members["ADM"], None, role=MemberRole.ADMIN)
        Membership.objects.filter(pk=members["INFERRED"].pk).update(role=MemberRole.ADMIN)  # inferred, not assigned: no exemption
        ids = _store(account, messages)
        if path == "per_event":
            for pk in ids:
                process(pk)
        else:
            assert process_batch(ids)["fallback"] == 0
        snapshot = _snapshot(ws)
        # the tagging above happens "now", in each run
        snapshot["timeline_detail"] = [(n, k, None if k == "tagged" else at, r) for n, k, at, r in snapshot["timeline_detail"]]
        snapshots.append(snapshot)

    per_event, batched = snapshots
    for key in per_event:
        assert batched[key] == per_event[key], (key, sorted(set(batched[key]) ^ set(per_event[key])))
    assert sorted(text for _verdict, text in per_event["cases"]) == ["看这里 https://shop.example.com/bob", "看这里 https://shop.example.com/inferred"]


def test_without_insert_returning_the_batch_stores_the_same_timeline(monkeypatch):
    """SQLite before 3.35 cannot return the ids of a multi-row insert: the batch looks
    the stored keys up instead, with the same result."""
    from django.db import connection

    one_ws, one_account = _workspace()
    batch_ws, batch_account = _workspace()
    one_ids, batch_ids = _store(one_account, _script()), _store(batch_account, _script())
    for pk in one_ids:
        process(pk)
    monkeypatch.setattr(type(connection.features), "can_return_rows_from_bulk_insert", False)

    process_batch(batch_ids)

    assert _snapshot(batch_ws) == _snapshot(one_ws)


def _edit_after_the_read(monkeypatch, edit):
    """Run ``edit`` between the batch's read of its rows (and the work done on their
    texts) and its transaction — what another process can commit in that gap."""
    from siyu.channels.handlers import MessageBatch

    real = MessageBatch.prepare

    def prepare(rows):
        prepared = real(rows)
        edit()
        return prepared

    monkeypatch.setattr(MessageBatch, "prepare", staticmethod(prepare))


def test_a_word_list_or_auto_reply_edited_after_the_batch_read_its_rows_is_applied(monkeypatch):
    ws, account = _workspace()
    ids = _store(account, [
        (InboundKind.MEMBER_JOINED, "j1", T0, {"group_id": "room1", "member_id": "ann", "member_name": "ANN"}),
        (InboundKind.MESSAGE, "m1", T0 + dt.timedelta(minutes=1),
         {"group_id": "room1", "sender_id": "ann", "sender_name": "ANN", "message_id": "$m1", "text": "快来买竞品宝"}),
        (InboundKind.MESSAGE, "m2", T0 + dt.timedelta(minutes=2),
         {"group_id": "room1", "sender_id": "ann", "sender_name": "ANN", "message_id": "$m2", "text": "几号发货呀"}),
    ])

    def edit():
        from siyu.communities import autoreply
        from siyu.moderation import engine

        do_save_word_list(ws, None, name="竞品", words=["竞品宝"], kind="competitor")
        do_create_auto_reply(ws, None, name="发货", pattern="发货", reply="48小时内发货", cooldown_seconds=60)
        engine.invalidate()  # what their commit does (the test's transaction does not commit)
        autoreply.invalidate()

    _edit_after_the_read(monkeypatch, edit)
    process_batch(ids)

    assert list(ModerationCase.objects.in_workspace(ws).values_list("message__external_id", flat=True)) == ["$m1"]
    assert list(OutboxMessage.objects.in_workspace(ws).filter(idempotency_key__startswith="autoreply:").values_list(
        "payload__text", flat=True)) == ["48小时内发货"]


def test_rows_another_worker_processed_after_the_batch_read_them_are_skipped(monkeypatch):
    ws, account = _workspace()
    ids = _store(account, _script())
    taken = ids[3:6]  # three messages another worker processes in the gap

    _edit_after_the_read(monkeypatch, lambda: [process(pk) for pk in taken])
    counts = process_batch(ids)

    assert counts["skipped"] == len(taken)
    assert counts["processed"] + counts["ignored"] == len(ids) - len(taken)
    assert GroupMessage.objects.in_workspace(ws).count() == 9  # each message once
    assert set(InboxEvent.objects.in_workspace(ws).values_list("attempts", flat=True)) == {1}


def test_waiting_batches_go_oldest_first_one_at_a_time():
    import threading

    from siyu.channels.inbox import OldestFirst

    gate = OldestFirst()
    ran: list[int] = []
    inside = 0
    most_inside = 0
    arrived = threading.Semaphore(0)

    def batch(first_id: int) -> None:
        nonlocal inside, most_inside
        arrived.release()
        with gate.turn(first_id):
            inside += 1
            most_inside = max(most_inside, inside)
            ran.append(first_id)
            inside -= 1

    with gate.turn(1):  # a batch is running; three more arrive out of order meanwhile
        threads = []
        for first_id in (300, 100, 200):
            thread = threading.Thread(target=batch, args=(first_id,))
            thread.start()
            threads.append(thread)
            arrived.acquire()
        while len(gate._waiting) < 3:
            threading.Event().wait(0.01)
    for thread in threads:
        thread.join(10)
    assert ran == [100, 200, 300]
    assert most_inside == 1
    assert not gate._waiting


def test_a_batch_still_preparing_keeps_later_batches_waiting():
    """The line is taken when a batch starts, the turn when it has read and prepared its
    rows: a later batch that is ready first still waits for the earlier one."""
    import threading

    from siyu.channels.inbox import OldestFirst

    gate = OldestFirst()
    ran: list[int] = []
    later_waiting = threading.Event()

    with gate.place(100) as earlier:  # started; still preparing
        def later() -> None:
            with gate.place(200) as place:
                later_waiting.set()
                with place.turn():
                    ran.append(200)

        thread = threading.Thread(target=later)
        thread.start()
        later_waiting.wait(10)
        thread.join(0.2)
        assert thread.is_alive() and ran == []  # ready, but behind the batch in line
        with earlier.turn():
            ran.append(100)
    thread.join(10)
    assert ran == [100, 200]
    assert not gate._waiting


def test_a_batch_that_fails_before_its_turn_gives_up_its_place():
    from siyu.channels.inbox import OldestFirst

    gate = OldestFirst()
    with pytest.raises(RuntimeError), gate.place(100):
        raise RuntimeError("reading the rows failed")
    with gate.turn(200):  # not held back by the batch that left
        pass
    assert not gate._waiting
