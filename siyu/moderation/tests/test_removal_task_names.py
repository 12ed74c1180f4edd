"""Moderation's removal tasks made before their evidence named the group and contact get
both from their keys (migration ``moderation.0003``), so the platform's member-left report
closes them like newer ones."""

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.utils import timezone

from siyu.channels.actions import do_create_channel_account
from siyu.channels.inbox import process
from siyu.channels.models import InboxEvent, StaffTask, StaffTaskStatus
from siyu.communities.actions import do_add_member, do_create_group
from siyu.contacts.actions import do_ensure_contact_for_identity
from siyu.contacts.models import Contact
from siyu.core.testing import make_staff, make_workspace
from siyu.moderation.actions import do_blacklist_contact, do_set_policy
from siyu.moderation.models import ModerationCase

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 3, 2, 2, 0, tzinfo=dt.UTC)
migration = importlib.import_module("siyu.moderation.migrations.0003_removal_tasks_name_group_and_contact")


def _event(group, key, kind, **data):
    row = InboxEvent.objects.create(workspace_id=group.workspace_id, account=group.channel_account, dedupe_key=key, kind=kind,
                                    occurred_at=T0, data={"group_id": group.external_id, **data})
    return process(row.pk)


def _wecom_world():
    """A WeCom-like workspace (the channel cannot remove members: every removal is a task)
    with each way moderation asks a person to remove someone."""
    ws = make_workspace()
    owner = make_staff(ws)
    account = do_create_channel_account(ws, None, kind="sandbox", name="wecom", config={"imitate": "wecom"})
    rooms = [do_create_group(ws, None, name=f"福利{i}群", channel_account=account, external_id=f"room{i}", owner=owner) for i in (1, 2, 3)]
    do_set_policy(ws, None, {"actions": {"url": "blacklist", "wechat_id": "remove"}})
    # members who only chat come first: contact ids and case ids then differ, so a key's number
    # read as the wrong one of the two names someone else
    contacts = {f"m{i}": do_ensure_contact_for_identity(account, f"m{i}", name=f"路人{i}")[0] for i in range(4)}
    for member in ("ad1", "ad2", "ad3"):
        contacts[member], _ = do_ensure_contact_for_identity(account, member, name=member)
    do_add_member(rooms[2], contacts["ad2"], None)
    do_add_member(rooms[0], contacts["ad3"], None)
    # a remove verdict on a message (task:mod:<message>:remove)
    assert _event(rooms[0], "m1", "message", sender_id="ad1", sender_name="ad1", message_id="m1", text="加V信：abc_123 领福利") == "processed"
    # a blacklist verdict, carried to the spammer's other group (task:blacklist:<case>:<group>:remove)
    assert _event(rooms[1], "m2", "message", sender_id="ad2", sender_name="ad2", message_id="m2", text="看 www.spam.example") == "processed"
    # a ban by hand, carried to the group they are in (task:blacklist:<contact>:<group>:remove),
    # then the blacklist enforced when they join another (task:blacklist:join:<membership>:remove)
    do_blacklist_contact(contacts["ad3"], owner, reason="多群发广告")
    assert _event(rooms[1], "j3", "member_joined", member_id="ad3", member_name="ad3") == "processed"
    return ws, rooms, contacts


def test_old_removal_tasks_get_their_group_and_contact_back_from_their_keys():
    # given every kind of moderation removal task, written as before their evidence named the stay
    ws, rooms, contacts = _wecom_world()
    tasks = list(StaffTask.objects.filter(workspace=ws, kind="moderation_remove_member").order_by("id"))
    named = {t.dedupe_key: (t.detail["group_id"], t.detail["contact_id"]) for t in tasks}
    case2 = ModerationCase.objects.get(workspace=ws, verdict="blacklist")
    membership3 = rooms[1].memberships.get(contact=contacts["ad3"])
    message1 = ModerationCase.objects.get(workspace=ws, verdict="remove").message_id
    # the carried ban's key names the case by number, and someone else in the workspace has that
    # number as a contact id (ids restart per test on SQLite, not on PostgreSQL: made so here)
    if not Contact.objects.filter(pk=case2.pk).exists():
        Contact.objects.create(pk=case2.pk, workspace=ws, name="同号路人", created_at=timezone.now(), updated_at=timezone.now())
    assert case2.pk != contacts["ad2"].pk and Contact.objects.filter(workspace=ws, pk=case2.pk).exists()
    assert named == {
        f"task:mod:{message1}:remove": (rooms[0].pk, contacts["ad1"].pk),
        f"task:mod:{case2.message_id}:remove": (rooms[1].pk, contacts["ad2"].pk),
        f"task:blacklist:{case2.pk}:{rooms[2].pk}:remove": (rooms[2].pk, contacts["ad2"].pk),
        f"task:blacklist:{contacts['ad3'].pk}:{rooms[0].pk}:remove": (rooms[0].pk, contacts["ad3"].pk),
        f"task:blacklist:join:{membership3.pk}:remove": (rooms[1].pk, contacts["ad3"].pk),
    }
    for task in tasks:
        task.detail = {k: v for k, v in task.detail.items() if k not in ("group_id", "contact_id")}
        task.save(update_fields=["detail"])

    # when the migration runs
    migration.name_the_stay(apps, None)

    # then each task names the same group and contact the current code writes, the rest of its evidence untouched
    for task in tasks:
        before = task.detail
        task.refresh_from_db()
        assert (task.detail["group_id"], task.detail["contact_id"]) == named[task.dedupe_key], task.dedupe_key
        assert {k: v for k, v in task.detail.items() if k not in ("group_id", "contact_id")} == before

    # and the member-left report now closes the one for that stay only
    _event(rooms[2], "l1", "member_left", member_id="ad2", member_name="ad2")
    closed = set(StaffTask.objects.filter(workspace=ws, status=StaffTaskStatus.DONE).values_list("dedupe_key", flat=True))
    assert closed == {f"task:blacklist:{case2.pk}:{rooms[2].pk}:remove"}


def test_a_key_naming_nothing_in_its_own_workspace_is_left_alone():
    # given another workspace's stay, and a task of this workspace whose key names it
    _ws, rooms, contacts = _wecom_world()
    mine = make_workspace()
    stranger = rooms[1].memberships.get(contact=contacts["ad3"])
    cases = {
        f"task:blacklist:join:{stranger.pk}:remove": {"rule": "blacklisted"},
        f"task:mod:{ModerationCase.objects.filter(verdict='remove').get().message_id}:remove": {"rule": "wechat_id"},
        f"task:blacklist:{contacts['ad3'].pk}:{rooms[0].pk}:remove": {"rule": "blacklisted"},
        "task:mod:not-a-number:remove": {"rule": "x"},
        "made-by-hand": {"rule": "x"},
    }
    made = [StaffTask.objects.create(workspace=mine, kind="moderation_remove_member", title="移出", detail=detail, dedupe_key=key)
            for key, detail in cases.items()]

    migration.name_the_stay(apps, None)

    for task in made:
        task.refresh_from_db()
        assert task.detail == cases[task.dedupe_key], task.dedupe_key
