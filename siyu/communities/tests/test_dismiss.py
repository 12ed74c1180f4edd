"""Dismissing a group (解散群): on the channel where it can (farewell, everyone out, the bot
leaves — one outbox command), as a task for the owner where it cannot (WeCom), archived
in siyu either way; from the action, the API, the console and the CLI."""

import datetime as dt
import json

import pytest
from django.test import Client
from django.utils import timezone
from typer.testing import CliRunner

from siyu.accounts.models import AuditEntry, Role
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import OutboxMessage, OutboxStatus, SandboxDelivery, StaffTask
from siyu.communities.actions import do_add_member, do_create_group, do_dismiss_group
from siyu.communities.cli import groups_app
from siyu.communities.models import Alert, Membership
from siyu.core.errors import Forbidden, ValidationFailed
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace

pytestmark = pytest.mark.django_db


def _group(imitate: str | None = None, *, channel: bool = True):
    ws = make_workspace()
    owner = make_staff(ws)
    account = None
    if channel:
        account = do_create_channel_account(ws, None, kind="sandbox", name="sbx", config={"imitate": imitate} if imitate else {})
    group = do_create_group(ws, None, name="双11快闪群", owner=owner, channel_account=account, external_id="room-flash" if channel else "")
    members = [make_contact(ws, name=f"顾客{i}") for i in range(3)]
    for contact in members:
        do_add_member(group, contact, None)
    Alert.objects.create(workspace=ws, group=group, kind="group_fading", day=dt.date(2026, 11, 20), from_state="healthy", to_state="fading",
                         created_at=timezone.now())
    return ws, owner, account, group


def test_a_group_on_a_channel_that_can_is_dismissed_there_and_archived_here(django_capture_on_commit_callbacks):
    # given a sandbox group (the sandbox can do everything) with three members and an open alert
    ws, owner, account, group = _group()

    # when the owner dismisses it with a farewell
    with django_capture_on_commit_callbacks(execute=True):  # the command goes out after commit
        queued = do_dismiss_group(group, owner, farewell_text="活动结束，感谢陪伴！", reason="活动结束")

    # then one dismiss command carried the farewell to the channel, and it was delivered
    row = OutboxMessage.objects.get(workspace=ws)
    assert queued == [{"outbox": row.pk}]
    assert (row.command, row.target, row.payload, row.status) == (
        "dismiss_group", "room-flash", {"farewell": "活动结束，感谢陪伴！", "reason": "活动结束"}, OutboxStatus.SENT,
    )
    assert SandboxDelivery.objects.get(account=account).command == "dismiss_group"
    # and the group is archived and dismissed, its memberships closed, its alert resolved
    group.refresh_from_db()
    assert group.archived_at is not None and group.dismissed_at is not None
    assert not Membership.objects.filter(group=group, left_at__isnull=True).exists()
    assert Alert.objects.get(group=group).resolution == "group dismissed"
    entry = AuditEntry.objects.get(action="group.dismissed")
    assert (entry.actor_id, entry.target_id, entry.after["applied"]) == (owner.pk, str(group.pk), queued)

    # when it is dismissed again, nothing more is queued or recorded
    assert do_dismiss_group(group, owner, farewell_text="再见") == []
    assert (OutboxMessage.objects.count(), AuditEntry.objects.filter(action="group.dismissed").count()) == (1, 1)


def test_on_wecom_the_owner_gets_a_task_to_dismiss_it_in_the_app():
    # given a group on a channel imitating WeCom (a self-built app cannot dismiss customer groups)
    ws, owner, _account, group = _group("wecom")

    # when it is dismissed with a farewell
    queued = do_dismiss_group(group, owner, farewell_text="本群今晚解散")

    # then no command is queued: the owner has a task, with the farewell to post first
    task = StaffTask.objects.get(workspace=ws)
    assert queued == [{"staff_task": task.pk}]
    assert not OutboxMessage.objects.exists()
    assert (task.kind, task.assignee_id, task.title) == ("dismiss_group", owner.pk, "解散群「双11快闪群」（先发告别公告）")
    assert task.detail == {"group": group.pk, "group_external_id": "room-flash", "farewell": "本群今晚解散"}
    group.refresh_from_db()
    assert group.dismissed_at is not None


def test_a_group_on_no_channel_is_only_archived():
    _ws, owner, _account, group = _group(channel=False)
    assert do_dismiss_group(group, owner) == []
    group.refresh_from_db()
    assert group.archived_at is not None and group.dismissed_at is not None
    assert not OutboxMessage.objects.exists() and not StaffTask.objects.exists()


def test_dismissing_needs_the_group_permission_and_a_short_farewell():
    ws, owner, _account, group = _group()
    with pytest.raises(Forbidden):
        do_dismiss_group(group, make_staff(ws, Role.AGENT))
    with pytest.raises(ValidationFailed) as raised:
        do_dismiss_group(group, owner, farewell_text="长" * 501)
    assert raised.value.code == "invalid_dismissal"
    group.refresh_from_db()
    assert (group.archived_at, group.dismissed_at) == (None, None)
    assert not OutboxMessage.objects.exists()


def test_the_api_dismisses_its_own_workspace_groups_only():
    ws, owner, _account, group = _group()
    other_ws, _other_owner, _other_account, other_group = _group()
    api, auth = Client(), {"Authorization": f"Bearer {make_token(owner)}"}

    # another workspace's group is not found, and nothing happens to it
    response = api.post(f"/api/v1/groups/{other_group.pk}/dismiss", {}, content_type="application/json", headers=auth)
    assert response.status_code == 404
    other_group.refresh_from_db()
    assert other_group.dismissed_at is None

    # a farewell that is too long is refused
    response = api.post(f"/api/v1/groups/{group.pk}/dismiss", {"farewell": "长" * 501}, content_type="application/json", headers=auth)
    assert response.status_code in (400, 422)

    # its own group is dismissed; the answer shows the group and what was queued
    response = api.post(f"/api/v1/groups/{group.pk}/dismiss", {"farewell": "再见", "reason": "活动结束"}, content_type="application/json",
                        headers=auth)
    assert response.status_code == 200
    body = response.json()
    assert body["group"]["id"] == group.pk and body["group"]["dismissed_at"] and body["group"]["archived_at"]
    assert body["queued"] == [{"outbox": OutboxMessage.objects.get(workspace=ws).pk}]
    assert api.post(f"/api/v1/groups/{group.pk}/dismiss", {}, content_type="application/json", headers=auth).json()["queued"] == []

    # an agent may not dismiss
    agent = {"Authorization": f"Bearer {make_token(make_staff(other_ws, Role.AGENT))}"}
    assert api.post(f"/api/v1/groups/{other_group.pk}/dismiss", {}, content_type="application/json", headers=agent).status_code == 403


def test_the_console_dismisses_from_the_group_page(client):
    ws, owner, _account, group = _group("wecom")
    client.force_login(owner.user)
    page = client.get(f"/console/groups/{group.pk}/")
    assert page.status_code == 200 and b'id="group-dismiss"' in page.content

    response = client.post(f"/console/groups/{group.pk}/dismiss/", {"farewell_text": "再见"}, follow=True)

    assert response.redirect_chain[-1][0].endswith(f"/console/groups/{group.pk}/")
    assert "已给群主派任务" in response.content.decode()  # the console speaks Chinese by default
    group.refresh_from_db()
    assert group.dismissed_at is not None
    assert StaffTask.objects.get(workspace=ws).detail["farewell"] == "再见"


def test_the_cli_dismisses_and_prints_json():
    ws, _owner, _account, group = _group()
    result = CliRunner().invoke(groups_app, ["dismiss", str(group.pk), "--workspace", ws.slug, "--farewell", "再见", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["group_id"], out["queued"]) == (group.pk, [{"outbox": OutboxMessage.objects.get(workspace=ws).pk}])
    assert out["dismissed_at"]
    missing = CliRunner().invoke(groups_app, ["dismiss", "999999", "--workspace", ws.slug, "--json"])
    assert missing.exit_code != 0


def test_the_platform_reporting_the_group_dismissed_closes_the_owners_task():
    from siyu.channels.base import InboundEvent, InboundKind
    from siyu.channels.inbox import do_receive, process
    from siyu.channels.models import StaffTaskStatus

    # given a WeCom-like group dismissed in siyu: the owner has the task
    ws, owner, account, group = _group("wecom")
    do_dismiss_group(group, owner)
    task = StaffTask.objects.get(workspace=ws)
    assert task.status == StaffTaskStatus.OPEN

    # when the platform reports the group dismissed (the owner did it in the app)
    [(row, created)] = do_receive(account, [InboundEvent(InboundKind.GROUP_DISMISSED, "dismiss-1", timezone.now(), {"group_id": "room-flash"})])
    assert created and process(row.pk) == "processed"

    # then the task is done and the group stays dismissed
    task.refresh_from_db()
    assert task.status == StaffTaskStatus.DONE


def test_a_group_the_platform_dismisses_by_itself_is_marked_dismissed():
    from siyu.channels.base import InboundEvent, InboundKind
    from siyu.channels.inbox import do_receive, process

    ws, _owner, account, group = _group("wecom")
    [(row, _created)] = do_receive(account, [InboundEvent(InboundKind.GROUP_DISMISSED, "dismiss-2", timezone.now(), {"group_id": "room-flash"})])
    process(row.pk)
    group.refresh_from_db()
    assert group.archived_at is not None and group.dismissed_at is not None
    assert not Membership.objects.filter(group=group, left_at__isnull=True).exists()
    assert not StaffTask.objects.filter(workspace=ws).exists()
