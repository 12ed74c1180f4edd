"""Removing a member as staff (移出群聊): on the channel where it can (one remove_member
command), as a task for the owner where it cannot (WeCom) — closed when the platform
reports the member gone —, the membership closed in siyu either way; from the action,
the API, the console and the CLI."""

import json

import pytest
from django.test import Client
from django.utils import timezone
from typer.testing import CliRunner

from siyu.accounts.models import AuditEntry, Role
from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import OutboxMessage, OutboxStatus, SandboxDelivery, StaffTask, StaffTaskStatus
from siyu.communities.actions import do_add_member, do_create_group, do_remove_member_on_channel
from siyu.communities.cli import groups_app
from siyu.communities.models import Membership
from siyu.contacts.actions import do_ensure_contact_for_identity
from siyu.contacts.models import ContactEvent
from siyu.core.errors import Forbidden, ValidationFailed
from siyu.core.testing import make_contact, make_staff, make_token, make_workspace

pytestmark = pytest.mark.django_db


def _member(imitate: str | None = None, *, channel: bool = True):
    """A group with one member known on the group's channel as ``@spam:example.org``."""
    ws = make_workspace()
    owner = make_staff(ws)
    account = None
    if channel:
        account = do_create_channel_account(ws, None, kind="sandbox", name="sbx", config={"imitate": imitate} if imitate else {})
        contact, _ = do_ensure_contact_for_identity(account, "@spam:example.org", name="广告哥")
    else:
        contact = make_contact(ws, name="广告哥")
    group = do_create_group(ws, None, name="静安福利群", owner=owner, channel_account=account, external_id="room-jingan" if channel else "")
    membership, _ = do_add_member(group, contact, None)
    return ws, owner, account, group, membership


def test_on_a_channel_that_can_the_member_is_removed_there_and_leaves_here(django_capture_on_commit_callbacks):
    ws, owner, account, group, membership = _member()

    with django_capture_on_commit_callbacks(execute=True):  # the command goes out after commit
        queued = do_remove_member_on_channel(membership, owner, reason="  多次发广告 ")

    row = OutboxMessage.objects.get(workspace=ws)
    assert queued == [{"outbox": row.pk}]
    assert (row.command, row.target, row.payload, row.status) == (
        "remove_member", "room-jingan", {"member": "@spam:example.org", "reason": "多次发广告"}, OutboxStatus.SENT)
    assert SandboxDelivery.objects.get(account=account).command == "remove_member"
    membership.refresh_from_db()
    assert membership.left_at is not None
    left = ContactEvent.objects.get(contact=membership.contact, kind="left_group")
    assert (left.data["group_id"], left.data["reason"]) == (group.pk, "多次发广告")
    assert AuditEntry.objects.get(action="member.left").actor_id == owner.pk

    # a second removal of the same stay sends nothing more
    assert do_remove_member_on_channel(membership, owner) == []
    assert OutboxMessage.objects.count() == 1


def test_on_wecom_the_owner_gets_a_task_closed_when_the_platform_reports_the_member_gone():
    from siyu.channels.base import InboundEvent, InboundKind
    from siyu.channels.inbox import do_receive, process

    ws, owner, account, group, membership = _member("wecom")

    queued = do_remove_member_on_channel(membership, owner, reason="发广告")

    task = StaffTask.objects.get(workspace=ws)
    assert queued == [{"staff_task": task.pk}] and not OutboxMessage.objects.exists()
    assert (task.kind, task.assignee_id, task.title, task.status) == ("remove_member", owner.pk, "将「广告哥」移出群「静安福利群」", StaffTaskStatus.OPEN)
    assert task.detail == {"group": group.pk, "group_external_id": "room-jingan", "member": "@spam:example.org", "reason": "发广告"}
    assert AuditEntry.objects.get(action="member.removal_requested").after == {"staff_task": task.pk}
    # they are still in the room until the owner removes them: the stay stays open
    membership.refresh_from_db()
    assert membership.left_at is None
    # asking again finds the same task
    assert do_remove_member_on_channel(membership, owner) == [{"staff_task": task.pk}]

    # when the owner has removed them in the app and the platform says so
    [(row, created)] = do_receive(account, [InboundEvent(InboundKind.MEMBER_LEFT, "left-1", timezone.now(),
                                                         {"group_id": "room-jingan", "member_id": "@spam:example.org"})])
    assert created and process(row.pk) == "processed"

    task.refresh_from_db()
    membership.refresh_from_db()
    assert task.status == StaffTaskStatus.DONE
    assert membership.left_at is not None and Membership.objects.filter(group=group).count() == 1


def test_nothing_goes_to_a_channel_for_a_group_on_none_or_a_member_it_does_not_know():
    _ws, owner, _account, _group, membership = _member(channel=False)
    assert do_remove_member_on_channel(membership, owner) == []
    membership.refresh_from_db()
    assert membership.left_at is not None

    ws, owner, _account, group, _membership = _member()
    stranger, _ = do_add_member(group, make_contact(ws, name="手工录入"), None)  # added by hand: no identity on the channel
    assert do_remove_member_on_channel(stranger, owner) == []
    stranger.refresh_from_db()
    assert stranger.left_at is not None
    assert not OutboxMessage.objects.exists() and not StaffTask.objects.exists()


def test_removing_needs_the_group_permission_and_a_short_reason():
    ws, owner, _account, _group, membership = _member()
    with pytest.raises(Forbidden):
        do_remove_member_on_channel(membership, make_staff(ws, Role.AGENT))
    with pytest.raises(ValidationFailed) as raised:
        do_remove_member_on_channel(membership, owner, reason="长" * 201)
    assert raised.value.code == "invalid_reason"
    membership.refresh_from_db()
    assert membership.left_at is None
    assert not OutboxMessage.objects.exists()


def test_the_api_removes_members_of_its_own_workspace_groups_only():
    ws, owner, _account, group, membership = _member()
    other_ws, _other_owner, _other_account, other_group, other_membership = _member()
    api, auth = Client(), {"Authorization": f"Bearer {make_token(owner)}"}

    def remove(g, contact_id, body, headers=auth):
        return api.post(f"/api/v1/groups/{g.pk}/members/{contact_id}/remove", body, content_type="application/json", headers=headers)

    assert remove(other_group, other_membership.contact_id, {}).status_code == 404
    other_membership.refresh_from_db()
    assert other_membership.left_at is None
    assert remove(group, other_membership.contact_id, {}).json()["error"]["code"] == "member_not_found"
    assert remove(group, membership.contact_id, {"reason": "长" * 201}).status_code in (400, 422)

    response = remove(group, membership.contact_id, {"reason": "发广告"})

    assert response.status_code == 200
    body = response.json()
    assert body["member"]["contact_id"] == membership.contact_id and body["member"]["left_at"]
    assert body["queued"] == [{"outbox": OutboxMessage.objects.get(workspace=ws).pk}]
    # gone: a second call finds no such member
    assert remove(group, membership.contact_id, {}).status_code == 404
    agent = {"Authorization": f"Bearer {make_token(make_staff(other_ws, Role.AGENT))}"}
    assert remove(other_group, other_membership.contact_id, {}, agent).status_code == 403


def test_the_console_removes_from_the_members_table(client):
    ws, owner, _account, group, membership = _member("wecom")
    client.force_login(owner.user)
    page = client.get(f"/console/groups/{group.pk}/").content.decode()
    assert f'action="/console/groups/{group.pk}/members/{membership.pk}/remove/"' in page

    response = client.post(f"/console/groups/{group.pk}/members/{membership.pk}/remove/", {"reason": "发广告"}, follow=True)

    assert response.redirect_chain[-1][0].endswith(f"/console/groups/{group.pk}/")
    assert "已给群主派任务" in response.content.decode()  # the console speaks Chinese by default
    assert StaffTask.objects.get(workspace=ws).detail["reason"] == "发广告"
    # an agent may not; another workspace's member is not found
    agent = make_staff(ws, Role.AGENT)
    _other_ws, _o, _a, other_group, other_membership = _member()
    client.force_login(agent.user)
    assert client.post(f"/console/groups/{other_group.pk}/members/{other_membership.pk}/remove/").status_code == 403
    client.force_login(owner.user)
    assert client.post(f"/console/groups/{other_group.pk}/members/{other_membership.pk}/remove/").status_code == 404
    other_membership.refresh_from_db()
    assert other_membership.left_at is None


def test_the_cli_removes_and_prints_json():
    ws, _owner, _account, group, membership = _member()
    result = CliRunner().invoke(groups_app, ["remove-member", str(group.pk), str(membership.contact_id), "--workspace", ws.slug,
                                             "--reason", "发广告", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["membership_id"], out["queued"]) == (membership.pk, [{"outbox": OutboxMessage.objects.get(workspace=ws).pk}])
    assert out["left_at"]
    again = CliRunner().invoke(groups_app, ["remove-member", str(group.pk), str(membership.contact_id), "--workspace", ws.slug, "--json"])
    assert again.exit_code != 0 and "no such member" in again.output
