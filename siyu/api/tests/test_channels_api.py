import datetime as dt

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry, Role
from siyu.api.tests.conftest import ApiClient, client_for
from siyu.channels.actions import do_create_channel_account, do_create_staff_task
from siyu.channels.base import Command, CommandKind, InboundEvent, InboundKind
from siyu.channels.inbox import do_receive
from siyu.channels.models import StaffTask
from siyu.channels.outbox import do_enqueue
from siyu.core.testing import make_staff, make_token, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(workspace):
    return do_create_channel_account(workspace, None, kind="sandbox", name="sbx")


def _receive(capture, account, key, raw="", **data):
    with capture(execute=True):
        ((row, _),) = do_receive(account, [InboundEvent(InboundKind.CONTACT_ADDED, key, timezone.now(), data)], raw=raw)
    row.refresh_from_db()
    return row


def _send(capture, account, key, later=False):
    with capture(execute=True):
        row, _ = do_enqueue(account, Command(CommandKind.SEND_MESSAGE, key, "room-1", {"to": "group", "text": "hi"}),
                            not_before=timezone.now() + dt.timedelta(hours=1) if later else None)
    row.refresh_from_db()
    return row


def test_accounts_overview_with_absolute_callback_url(api, workspace, sandbox, django_capture_on_commit_callbacks):
    wecom = do_create_channel_account(workspace, None, kind="wecom", name="corp", external_id="ww1")
    _receive(django_capture_on_commit_callbacks, sandbox, "bad", name="no id")

    body = api.get("/channels/accounts").json()

    by_name = {a["name"]: a for a in body}
    assert by_name["corp"]["callback_url"] == f"http://testserver/channels/wecom/{wecom.pk}/callback"
    assert (by_name["sbx"]["callback_url"], by_name["sbx"]["inbox_failed"], by_name["sbx"]["inbox_pending"]) == ("", 1, 0)
    assert "remove_member" in by_name["sbx"]["capabilities"]


def test_inbox_filters_pagination_and_raw_only_with_pii(api, workspace, sandbox, django_capture_on_commit_callbacks):
    ok = _receive(django_capture_on_commit_callbacks, sandbox, "ok", raw="<Mobile>13812345678</Mobile>", external_id="wm1", name="小美")
    bad = _receive(django_capture_on_commit_callbacks, sandbox, "bad", name="no id")

    everything = api.get("/channels/inbox").json()
    failed = api.get("/channels/inbox", {"status": "failed"}).json()
    page = api.get("/channels/inbox", {"limit": 1, "offset": 1}).json()
    operator = client_for(make_staff(workspace, Role.OPERATOR)).get("/channels/inbox", {"kind": "contact_added"}).json()

    assert [e["id"] for e in everything["items"]] == [bad.pk, ok.pk]
    assert everything["items"][1]["raw"] == "<Mobile>13812345678</Mobile>"
    assert [(e["id"], e["status"], e["error"]) for e in failed["items"]] == [(bad.pk, "failed", "PermanentEventError: contact_added event lacks field 'external_id'")]
    assert (page["count"], [e["id"] for e in page["items"]]) == (2, [ok.pk])
    assert [e["raw"] for e in operator["items"]] == [None, None]


def test_inbox_retry_requeues_a_failed_event(api, workspace, owner, sandbox, django_capture_on_commit_callbacks):
    bad = _receive(django_capture_on_commit_callbacks, sandbox, "bad", name="no id")

    body = api.post(f"/channels/inbox/{bad.pk}/retry").json()

    assert (body["status"], body["attempts"], body["error"]) == ("pending", 0, "")
    assert AuditEntry.objects.in_workspace(workspace).get(action="inbox.retried").actor == owner


def test_outbox_list_retry_and_cancel(api, workspace, sandbox, django_capture_on_commit_callbacks):
    failing = do_create_channel_account(workspace, None, kind="sandbox", name="broken", config={"fail_with": {"code": "45009"}})
    failed = _send(django_capture_on_commit_callbacks, failing, "k-failed")
    later = _send(django_capture_on_commit_callbacks, sandbox, "k-later", later=True)

    listed = api.get("/channels/outbox", {"account_id": failing.pk}).json()
    cancelled = api.post(f"/channels/outbox/{later.pk}/cancel").json()
    retried = api.post(f"/channels/outbox/{failed.pk}/retry").json()

    assert [(m["id"], m["status"], m["error_code"]) for m in listed["items"]] == [(failed.pk, "failed", "45009")]
    assert cancelled["status"] == "cancelled"
    assert (retried["status"], retried["attempts"]) == ("pending", 0)
    assert api.get("/channels/outbox", {"status": "cancelled"}).json()["count"] == 1
    assert set(AuditEntry.objects.in_workspace(workspace).filter(action__startswith="outbox.").values_list("action", flat=True)) == {
        "outbox.cancelled", "outbox.retried",
    }


def test_tasks_open_first_and_close(api, workspace, owner):
    old, _ = do_create_staff_task(workspace.pk, kind="transfer_failed", title="old")
    new, _ = do_create_staff_task(workspace.pk, kind="moderation_remove_member", title="new", detail={"rule": "phone"})
    api.post(f"/tasks/{new.pk}/close", {"status": "dismissed"})

    listed = api.get("/tasks").json()
    by_kind = api.get("/tasks", {"kind": "transfer_failed"}).json()
    closed = api.post(f"/tasks/{old.pk}/close", {"status": "done"}).json()
    invalid = api.post(f"/tasks/{old.pk}/close", {"status": "deleted"})

    assert [(t["id"], t["status"]) for t in listed["items"]] == [(old.pk, "open"), (new.pk, "dismissed")]
    assert listed["items"][1]["detail"] == {"rule": "phone"}
    assert [t["id"] for t in by_kind["items"]] == [old.pk]
    assert closed["status"] == "done" and closed["done_at"] is not None
    assert invalid.status_code == 422
    assert AuditEntry.objects.in_workspace(workspace).filter(action="staff_task.closed", actor=owner).count() == 2


def test_an_agent_sees_only_their_tasks_and_no_channels(workspace, sandbox):
    agent = make_staff(workspace, Role.AGENT)
    mine, _ = do_create_staff_task(workspace.pk, kind="k", title="mine", assignee=agent)
    others, _ = do_create_staff_task(workspace.pk, kind="k", title="others")
    client = client_for(agent)

    assert [t["title"] for t in client.get("/tasks").json()["items"]] == ["mine"]
    assert client.post(f"/tasks/{mine.pk}/close", {"status": "done"}).json()["status"] == "done"
    assert client.post(f"/tasks/{others.pk}/close", {"status": "done"}).status_code == 404
    for path in ("/channels/accounts", "/channels/inbox", "/channels/outbox"):
        assert client.get(path).status_code == 403


def test_another_workspaces_rows_are_404_and_invisible(api, django_capture_on_commit_callbacks):
    other = make_workspace()
    account = do_create_channel_account(other, None, kind="sandbox", name="theirs")
    event = _receive(django_capture_on_commit_callbacks, account, "bad", name="no id")
    send = _send(django_capture_on_commit_callbacks, account, "k", later=True)
    task, _ = do_create_staff_task(other.pk, kind="k", title="theirs")

    assert api.get("/channels/accounts").json() == []
    assert api.get("/channels/inbox").json() == {"count": 0, "items": []}
    assert api.get("/channels/outbox", {"account_id": account.pk}).json() == {"count": 0, "items": []}
    assert api.get("/tasks").json() == {"count": 0, "items": []}
    assert api.post(f"/channels/inbox/{event.pk}/retry").status_code == 404
    assert api.post(f"/channels/outbox/{send.pk}/cancel").status_code == 404
    assert api.post(f"/channels/outbox/{send.pk}/retry").status_code == 404
    assert api.post(f"/tasks/{task.pk}/close", {"status": "done"}).status_code == 404
    assert StaffTask.objects.get(pk=task.pk).status == "open"
    assert ApiClient(make_token(make_staff(other))).get("/channels/inbox").json()["count"] == 1
    assert ApiClient(None).get("/tasks").status_code == 401
