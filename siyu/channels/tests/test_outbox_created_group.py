"""A group siyu asks the channel to create learns its platform id from the send result."""

import pytest

from siyu.channels.actions import do_create_channel_account
from siyu.channels.base import Command, CommandKind
from siyu.channels.models import OutboxStatus
from siyu.channels.outbox import deliver, do_enqueue
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db


def test_a_delivered_create_group_gives_the_group_its_platform_id():
    # given a group created in siyu that the channel does not know yet
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    group = do_create_group(ws, None, name="新群")
    row, _ = do_enqueue(account, Command(CommandKind.CREATE_GROUP, f"create:{group.pk}", "", {"name": "新群", "group_id": group.pk}))

    # when the channel creates it
    assert deliver(row.pk) == OutboxStatus.SENT

    # then the group carries the channel's id and account
    row.refresh_from_db()
    group.refresh_from_db()
    assert row.external_id.startswith("sbx-")
    assert (group.external_id, group.channel_account_id) == (row.external_id, account.pk)


def test_a_group_of_another_workspace_or_with_an_id_already_is_left_alone():
    # given a create command that names a foreign group, and one for a group that has an id
    ws, other = make_workspace(), make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    foreign = do_create_group(other, None, name="别人的群")
    known = do_create_group(ws, None, name="老群", external_id="room-1", channel_account=account)
    rows = [
        do_enqueue(account, Command(CommandKind.CREATE_GROUP, f"create:{g.pk}", "", {"name": g.name, "group_id": g.pk}))[0]
        for g in (foreign, known)
    ]

    # when both are delivered
    for row in rows:
        assert deliver(row.pk) == OutboxStatus.SENT

    # then neither group changed
    foreign.refresh_from_db()
    known.refresh_from_db()
    assert (foreign.external_id, foreign.channel_account_id) == ("", None)
    assert known.external_id == "room-1"


def test_a_room_the_sync_saw_before_the_result_was_recorded_becomes_the_planned_group(monkeypatch):
    """Matrix: the listener's sync can see the new room (and people joining it) before the
    worker records the create result; the group it made for the room is folded into the
    group siyu planned instead of the link failing on the unique room id."""
    from siyu.channels import outbox
    from siyu.channels.base import SendResult
    from siyu.communities.actions import do_add_member, do_ensure_group, do_record_group_message
    from siyu.communities.models import Group, GroupMessage, Membership
    from siyu.contacts.actions import do_create_contact

    # given a planned group and its create command
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    planned = do_create_group(ws, None, name="新群")
    row, _ = do_enqueue(account, Command(CommandKind.CREATE_GROUP, f"create:{planned.pk}", "", {"name": "新群", "group_id": planned.pk}))
    ann = do_create_contact(ws, None, name="Ann")

    class RacingAdapter:
        """Creates the room; meanwhile the sync has seen it, Ann joining and a message."""

        def send(self, command):
            stand_in, _ = do_ensure_group(account, "!new:room")
            do_add_member(stand_in, ann, None, join_source="invite")
            do_record_group_message(stand_in, ann, external_id="$m1", text="大家好")
            return SendResult.delivered("!new:room")

    monkeypatch.setattr(outbox, "adapter_for", lambda account: RacingAdapter())

    # when the result is recorded
    assert deliver(row.pk) == OutboxStatus.SENT

    # then one group holds the room, with Ann and her message
    assert list(Group.objects.filter(channel_account=account, external_id="!new:room").values_list("pk", flat=True)) == [planned.pk]
    assert Group.objects.in_workspace(ws).count() == 1
    assert list(Membership.objects.filter(group=planned, left_at__isnull=True).values_list("contact__name", flat=True)) == ["Ann"]
    assert list(GroupMessage.objects.filter(group=planned).values_list("text", flat=True)) == ["大家好"]
