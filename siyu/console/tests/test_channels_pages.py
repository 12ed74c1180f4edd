"""Channel accounts, inbox, outbox and staff tasks in the console.

Rows are made by the real pipeline: ``do_receive`` / ``do_enqueue`` run their on-commit
work (Huey is immediate in tests) inside ``django_capture_on_commit_callbacks``. A retry
posted from the console is not captured, so its re-processing stays scheduled and the
test sees the row exactly as the action left it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry, Role
from siyu.channels.actions import do_create_channel_account, do_create_staff_task
from siyu.channels.base import Command, CommandKind, InboundEvent, InboundKind
from siyu.channels.inbox import do_receive
from siyu.channels.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus, StaffTask, StaffTaskStatus
from siyu.channels.outbox import do_enqueue
from siyu.core.testing import make_staff, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws():
    return make_workspace(name="Shop")


@pytest.fixture
def owner(ws):
    return make_staff(ws, Role.OWNER, email="owner@example.com")


@pytest.fixture
def sandbox(ws):
    return do_create_channel_account(ws, None, kind="sandbox", name="sbx", external_id="sbx-bot")


def _event(kind: InboundKind, key: str, **data: object) -> InboundEvent:
    return InboundEvent(kind=kind, dedupe_key=key, occurred_at=timezone.now(), data=data)


def _receive(capture, account, *events: InboundEvent, raw: str = "") -> list[InboxEvent]:
    with capture(execute=True):
        stored = do_receive(account, list(events), raw=raw)
    rows = [row for row, _ in stored]
    for row in rows:
        row.refresh_from_db()
    return rows


def _send(capture, account, key: str, *, later: bool = False, kind: CommandKind = CommandKind.SEND_MESSAGE) -> OutboxMessage:
    not_before = timezone.now() + dt.timedelta(hours=1) if later else None
    payload = {"to": "group", "text": "hi"} if kind == CommandKind.SEND_MESSAGE else {"member": "@bob:x"}
    with capture(execute=True):
        row, _ = do_enqueue(account, Command(kind, key, "room-1", payload), not_before=not_before)
    row.refresh_from_db()
    return row


# ---------------------------------------------------------------- accounts


def test_accounts_page_shows_status_counts_callback_url_and_capabilities(ws, owner, sandbox, console_client, django_capture_on_commit_callbacks):
    wecom = do_create_channel_account(ws, None, kind="wecom", name="企业微信", external_id="ww123")
    _receive(django_capture_on_commit_callbacks, sandbox, _event(InboundKind.CONTACT_ADDED, "ok-1", external_id="wm1", name="小美"))
    _receive(django_capture_on_commit_callbacks, sandbox, _event(InboundKind.CONTACT_ADDED, "bad-1", name="no id"))
    failing = do_create_channel_account(ws, None, kind="sandbox", name="broken", config={"fail_with": {"code": "45009"}})
    _send(django_capture_on_commit_callbacks, failing, "k-fail")
    _send(django_capture_on_commit_callbacks, failing, "k-later", later=True)

    html = console_client(owner).get("/console/channels/").content.decode()

    assert f"<code class=\"callback\">http://testserver/channels/wecom/{wecom.pk}/callback</code>" in html
    assert "<code>ww123</code>" in html
    assert '<span class="chip">remove_member</span>' in html
    sandbox_row = html.split(f'id="account-{sandbox.pk}"')[1].split("</tr>")[0]
    assert f'?account={sandbox.pk}&amp;status=pending">0</a> / <a href="/console/channels/inbox/?account={sandbox.pk}&amp;status=failed" class="danger">1</a>' in sandbox_row
    broken_row = html.split(f'id="account-{failing.pk}"')[1].split("</tr>")[0]
    assert f'?account={failing.pk}&amp;status=pending">1</a> / <a href="/console/channels/outbox/?account={failing.pk}&amp;status=failed" class="danger">1</a>' in broken_row
    assert 'class="active"' in html.split('href="/console/channels/"')[1][:20]


@pytest.mark.parametrize("role", [Role.AGENT, Role.ANALYST])
def test_channel_pages_need_the_operate_permission(ws, sandbox, console_client, role):
    client = console_client(make_staff(ws, role))

    for path in ("/console/channels/", "/console/channels/inbox/", "/console/channels/outbox/"):
        response = client.get(path)
        assert response.status_code == 403
        assert "channels.operate" in response.content.decode()
    assert 'href="/console/channels/"' not in client.get("/console/tasks/").content.decode()


# ---------------------------------------------------------------- inbox


def test_inbox_lists_newest_first_and_filters_narrow(ws, owner, sandbox, console_client, django_capture_on_commit_callbacks):
    other = do_create_channel_account(ws, None, kind="sandbox", name="second")
    ok, = _receive(django_capture_on_commit_callbacks, sandbox, _event(InboundKind.CONTACT_ADDED, "wm1:add", external_id="wm1", name="小美"))
    bad, = _receive(django_capture_on_commit_callbacks, sandbox, _event(InboundKind.CONTACT_ADDED, "nokey:add", name="?"))
    odd, = _receive(django_capture_on_commit_callbacks, other, _event(InboundKind.UNKNOWN, "strange-1"))
    client = console_client(owner)

    everything = client.get("/console/channels/inbox/").content.decode()
    failed = client.get("/console/channels/inbox/?status=failed").content.decode()
    ignored_kind = client.get("/console/channels/inbox/?kind=unknown").content.decode()
    second = client.get(f"/console/channels/inbox/?account={other.pk}").content.decode()

    assert (ok.status, bad.status, odd.status) == (InboxStatus.PROCESSED, InboxStatus.FAILED, InboxStatus.IGNORED)
    assert everything.index(f'id="event-{odd.pk}"') < everything.index(f'id="event-{bad.pk}"') < everything.index(f'id="event-{ok.pk}"')
    assert "3 events" in everything
    assert "contact_added event lacks field &#x27;external_id&#x27;" in failed
    assert f'id="event-{bad.pk}"' in failed and f'id="event-{ok.pk}"' not in failed
    assert f'action="/console/channels/inbox/{bad.pk}/retry/"' in failed
    assert f'id="event-{odd.pk}"' in ignored_kind and f'id="event-{bad.pk}"' not in ignored_kind
    assert f'id="event-{odd.pk}"' in second and "1 event" in second


def test_retry_requeues_a_failed_event_and_writes_the_audit_entry(ws, owner, sandbox, console_client, django_capture_on_commit_callbacks):
    bad, = _receive(django_capture_on_commit_callbacks, sandbox, _event(InboundKind.CONTACT_ADDED, "nokey:add", name="?"))

    response = console_client(owner).post(f"/console/channels/inbox/{bad.pk}/retry/", {"next": "/console/channels/inbox/?status=failed"})

    bad.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == "/console/channels/inbox/?status=failed"
    assert (bad.status, bad.attempts, bad.error) == (InboxStatus.PENDING, 0, "")
    entry = AuditEntry.objects.in_workspace(ws).get(action="inbox.retried")
    assert (entry.actor, entry.target_id, entry.via) == (owner, str(bad.pk), "console")


def test_inbox_detail_shows_data_and_the_raw_payload_only_with_the_pii_permission(ws, owner, sandbox, console_client, django_capture_on_commit_callbacks):
    row, = _receive(django_capture_on_commit_callbacks, sandbox, _event(InboundKind.CONTACT_ADDED, "wm9:add", external_id="wm9", name="小美"),
                    raw="<xml><Mobile>13812345678</Mobile></xml>")
    operator = make_staff(ws, Role.OPERATOR)

    as_owner = console_client(owner).get(f"/console/channels/inbox/{row.pk}/").content.decode()
    as_operator = console_client(operator).get(f"/console/channels/inbox/{row.pk}/").content.decode()

    assert "&quot;external_id&quot;: &quot;wm9&quot;" in as_owner
    assert "&lt;Mobile&gt;13812345678&lt;/Mobile&gt;" in as_owner
    assert "&quot;external_id&quot;: &quot;wm9&quot;" in as_operator
    assert "13812345678" not in as_operator
    assert "Hidden: the raw payload may hold personal data" in as_operator


def test_inbox_rows_of_another_workspace_are_404(owner, console_client, django_capture_on_commit_callbacks):
    foreign_account = do_create_channel_account(make_workspace(), None, kind="sandbox", name="theirs")
    foreign, = _receive(django_capture_on_commit_callbacks, foreign_account, _event(InboundKind.CONTACT_ADDED, "x:add", name="?"))
    client = console_client(owner)

    assert client.get(f"/console/channels/inbox/{foreign.pk}/").status_code == 404
    assert client.post(f"/console/channels/inbox/{foreign.pk}/retry/").status_code == 404
    assert "theirs" not in client.get(f"/console/channels/inbox/?account={foreign_account.pk}").content.decode()
    foreign.refresh_from_db()
    assert foreign.status == InboxStatus.FAILED


# ---------------------------------------------------------------- outbox


def test_outbox_lists_sends_with_filters_and_error_codes(ws, owner, sandbox, console_client, django_capture_on_commit_callbacks):
    failing = do_create_channel_account(ws, None, kind="sandbox", name="broken", config={"fail_with": {"code": "errcode_45009"}})
    sent = _send(django_capture_on_commit_callbacks, sandbox, "k-sent")
    failed = _send(django_capture_on_commit_callbacks, failing, "k-failed")
    later = _send(django_capture_on_commit_callbacks, sandbox, "k-later", later=True)
    removal = _send(django_capture_on_commit_callbacks, sandbox, "k-remove", kind=CommandKind.REMOVE_MEMBER)
    client = console_client(owner)

    everything = client.get("/console/channels/outbox/").content.decode()
    only_failed = client.get("/console/channels/outbox/?status=failed").content.decode()
    only_broken = client.get(f"/console/channels/outbox/?account={failing.pk}").content.decode()
    by_command = client.get("/console/channels/outbox/?command=remove_member").content.decode()

    assert (sent.status, failed.status, later.status) == (OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.PENDING)
    assert everything.index(f'id="send-{removal.pk}"') < everything.index(f'id="send-{later.pk}"') < everything.index(f'id="send-{failed.pk}"') < everything.index(f'id="send-{sent.pk}"')
    assert f"<code>{sent.external_id}</code>" in everything
    assert "<code>errcode_45009</code> configured failure" in only_failed
    assert f'id="send-{sent.pk}"' not in only_failed
    assert f'action="/console/channels/outbox/{failed.pk}/retry/"' in only_failed
    assert f'action="/console/channels/outbox/{later.pk}/cancel/"' in everything
    assert f'id="send-{failed.pk}"' in only_broken and "1 send" in only_broken
    assert f'id="send-{removal.pk}"' in by_command and "1 send" in by_command


def test_cancel_a_pending_send_then_retry_it(ws, owner, sandbox, console_client, django_capture_on_commit_callbacks):
    later = _send(django_capture_on_commit_callbacks, sandbox, "k-later", later=True)
    client = console_client(owner)

    cancelled = client.post(f"/console/channels/outbox/{later.pk}/cancel/", follow=True)
    later.refresh_from_db()
    assert later.status == OutboxStatus.CANCELLED
    assert f"Send #{later.pk} cancelled." in cancelled.content.decode()

    client.post(f"/console/channels/outbox/{later.pk}/retry/")
    later.refresh_from_db()
    assert (later.status, later.attempts) == (OutboxStatus.PENDING, 0)
    assert list(AuditEntry.objects.in_workspace(ws).filter(actor=owner, action__startswith="outbox.").order_by("id").values_list("action", flat=True)) == [
        "outbox.cancelled", "outbox.retried",
    ]


def test_a_sent_message_is_neither_retried_nor_cancelled(ws, owner, sandbox, console_client, django_capture_on_commit_callbacks):
    sent = _send(django_capture_on_commit_callbacks, sandbox, "k-sent")
    client = console_client(owner)

    retried = client.post(f"/console/channels/outbox/{sent.pk}/retry/", follow=True).content.decode()
    cancelled = client.post(f"/console/channels/outbox/{sent.pk}/cancel/", follow=True).content.decode()

    sent.refresh_from_db()
    assert sent.status == OutboxStatus.SENT
    assert "Only failed or cancelled sends can be retried." in retried
    assert f"Send #{sent.pk} could not be cancelled: it is Sent." in cancelled
    assert not AuditEntry.objects.in_workspace(ws).filter(action__startswith="outbox.").exists()


def test_outbox_rows_of_another_workspace_are_404_and_agents_are_refused(ws, owner, console_client, django_capture_on_commit_callbacks):
    foreign = _send(django_capture_on_commit_callbacks, do_create_channel_account(make_workspace(), None, kind="sandbox", name="x"), "k", later=True)
    agent = make_staff(ws, Role.AGENT)

    assert console_client(owner).post(f"/console/channels/outbox/{foreign.pk}/cancel/").status_code == 404
    assert console_client(owner).post(f"/console/channels/outbox/{foreign.pk}/retry/").status_code == 404
    assert console_client(agent).post(f"/console/channels/outbox/{foreign.pk}/cancel/").status_code == 403
    foreign.refresh_from_db()
    assert foreign.status == OutboxStatus.PENDING


# ---------------------------------------------------------------- staff tasks


def test_tasks_open_first_with_evidence_and_filters(ws, owner, sandbox, console_client):
    done, _ = do_create_staff_task(ws.pk, kind="transfer_failed", title="重新分配客户", account=sandbox)
    do_create_staff_task(ws.pk, kind="moderation_remove_member", title="将Bob移出「福利1群」", detail={"text": "加我vx", "rule": "wechat_id"})
    from siyu.channels.actions import do_close_staff_task

    do_close_staff_task(done, None)
    client = console_client(owner)

    everything = client.get("/console/tasks/").content.decode()
    only_done = client.get("/console/tasks/?status=done").content.decode()
    by_kind = client.get("/console/tasks/?kind=transfer_failed").content.decode()

    assert everything.index("将Bob移出「福利1群」") < everything.index("重新分配客户")
    assert "1 open" in everything
    assert "&quot;rule&quot;: &quot;wechat_id&quot;" in everything
    assert "重新分配客户" in only_done and "将Bob移出" not in only_done
    assert "重新分配客户" in by_kind and "将Bob移出" not in by_kind


def test_done_and_dismiss_close_the_task_with_an_audit_entry(ws, owner, console_client):
    first, _ = do_create_staff_task(ws.pk, kind="moderation_remove_member", title="移出A")
    second, _ = do_create_staff_task(ws.pk, kind="moderation_remove_member", title="移出B")
    client = console_client(owner)

    response = client.post(f"/console/tasks/{first.pk}/close/", {"status": "done"}, follow=True)
    client.post(f"/console/tasks/{second.pk}/close/", {"status": "dismissed"})

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (StaffTaskStatus.DONE, StaffTaskStatus.DISMISSED)
    assert first.done_at is not None
    assert "Task “移出A” marked Done." in response.content.decode()
    assert list(AuditEntry.objects.in_workspace(ws).filter(action="staff_task.closed").order_by("id").values_list("after", flat=True)) == [
        {"status": "done"}, {"status": "dismissed"},
    ]


def test_an_invalid_close_status_is_refused(ws, owner, console_client):
    task, _ = do_create_staff_task(ws.pk, kind="k", title="t")

    response = console_client(owner).post(f"/console/tasks/{task.pk}/close/", {"status": "deleted"}, follow=True)

    task.refresh_from_db()
    assert task.status == StaffTaskStatus.OPEN
    assert "status must be done or dismissed" in response.content.decode()


def test_an_agent_sees_and_closes_only_their_own_tasks(ws, console_client):
    agent = make_staff(ws, Role.AGENT)
    mine, _ = do_create_staff_task(ws.pk, kind="k", title="我的任务", assignee=agent)
    theirs, _ = do_create_staff_task(ws.pk, kind="k", title="别人的任务")
    client = console_client(agent)

    html = client.get("/console/tasks/").content.decode()
    closed = client.post(f"/console/tasks/{mine.pk}/close/", {"status": "done"})
    refused = client.post(f"/console/tasks/{theirs.pk}/close/", {"status": "done"})

    assert "我的任务" in html and "别人的任务" not in html
    assert f"/console/tasks/{mine.pk}/close/" in html
    assert closed.status_code == 302
    assert StaffTask.objects.get(pk=mine.pk).status == StaffTaskStatus.DONE
    assert refused.status_code == 404  # another person's task looks like a missing one
    assert StaffTask.objects.get(pk=theirs.pk).status == StaffTaskStatus.OPEN


def test_a_task_of_another_workspace_is_a_404(owner, console_client):
    foreign, _ = do_create_staff_task(make_workspace().pk, kind="k", title="theirs")

    response = console_client(owner).post(f"/console/tasks/{foreign.pk}/close/", {"status": "done"})

    assert response.status_code == 404
    assert StaffTask.objects.get(pk=foreign.pk).status == StaffTaskStatus.OPEN
