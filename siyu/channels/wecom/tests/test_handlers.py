"""group_updated and tags_changed through the real pipeline, with WeCom look-ups served by
the loopback fake (fixtures shaped like the documentation)."""

import copy
from typing import Any

import pytest
from django.utils import timezone

from siyu.channels.actions import do_create_channel_account
from siyu.channels.base import InboundEvent, InboundKind
from siyu.channels.inbox import do_receive
from siyu.channels.models import InboxEvent, InboxStatus
from siyu.channels.wecom.actions import CORP_TAG_GROUP
from siyu.channels.wecom.testing import api_fixture
from siyu.communities.models import Group, Membership
from siyu.contacts.actions import do_ensure_contact_for_identity, do_tag_contacts
from siyu.contacts.models import ChannelIdentity, Contact, ContactTag, Tag
from siyu.core.testing import make_workspace

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA"
STAYING = "wmOgQhDgAAuXFJGwbve4g4iyTAAAAAAA"  # the customer in the documented groupchat/get answer
GET_GROUP = "/cgi-bin/externalcontact/groupchat/get"
TAG_LIST = "/cgi-bin/externalcontact/get_corp_tag_list"


def receive(account, kind, key, **data):
    do_receive(account, [InboundEvent(kind=kind, dedupe_key=key, occurred_at=timezone.now(), data=data)])
    return InboxEvent.objects.get(account=account, dedupe_key=key)


def group_answer(*extra_members):
    answer = copy.deepcopy(api_fixture("get_groupchat")["response"])
    answer["group_chat"]["member_list"].extend(extra_members)
    return answer


@pytest.fixture
def served(fake, connect_wecom):
    with fake.serve() as api_base:
        yield connect_wecom(api_base=api_base)


def member_of(account, external_id, group):
    contact, _ = do_ensure_contact_for_identity(account, external_id)
    Membership.objects.create(workspace_id=account.workspace_id, group=group, contact=contact, joined_at=timezone.now())
    return contact


def test_member_changes_reconcile_open_memberships_with_the_group_detail(served, fake):
    account = served
    group = Group.objects.create(
        workspace_id=account.workspace_id, channel_account=account, external_id=CHAT, name=CHAT, created_at=timezone.now()
    )
    gone = member_of(account, "wmGONE", group)
    staying = member_of(account, STAYING, group)
    fake.script(
        GET_GROUP,
        group_answer(
            {
                "userid": "wmNEW",
                "type": 2,
                "join_time": 1572505600,
                "join_scene": 3,
                "state": "flash:sat",
                "group_nickname": "新人",
                "name": "小新",
            }
        ),
    )

    row = receive(
        account, InboundKind.GROUP_UPDATED, "u1", group_id=CHAT, change="del_member", quit_scene=2, member_ids=["wmGONE"]
    )

    assert row.status == InboxStatus.PROCESSED
    group.refresh_from_db()
    assert group.name == "销售客服群"
    open_members = dict(Membership.objects.filter(group=group, left_at__isnull=True).values_list("contact__name", "join_source"))
    assert open_members == {STAYING: "", "小新": "flash:sat"}
    assert Membership.objects.get(contact=gone).left_at is not None
    assert gone.events.get(kind="left_group").data["reason"] == "kicked"
    newcomer = Contact.objects.get(identities__external_id="wmNEW")
    assert (newcomer.source_channel, newcomer.source_campaign) == ("flash", "sat")
    assert not ChannelIdentity.objects.filter(external_id="abel").exists()  # staff are not contacts
    assert Membership.objects.filter(contact=staying, left_at__isnull=True).count() == 1


def test_other_group_changes_do_not_call_wecom(served, fake):
    row = receive(served, InboundKind.GROUP_UPDATED, "u2", group_id=CHAT, change="change_owner")
    assert row.status == InboxStatus.PROCESSED
    assert fake.calls(GET_GROUP) == []
    assert Group.objects.get().external_id == CHAT


def test_channels_without_group_look_ups_only_ensure_the_group():
    account = do_create_channel_account(make_workspace(), None, kind="sandbox", name="sbx")
    row = receive(account, InboundKind.GROUP_UPDATED, "u3", group_id="room1", group_name="福利群", change="add_member")
    assert row.status == InboxStatus.PROCESSED
    assert Group.objects.get().name == "福利群"
    assert Membership.objects.count() == 0


def tag_list(*groups):
    return {"errcode": 0, "errmsg": "ok", "tag_group": list(groups)}


def test_tag_changes_mirror_the_corp_tag_library(served, fake):
    account = served
    documented = api_fixture("get_corp_tag_list")["response"]
    fake.script(TAG_LIST, documented)
    assert receive(account, InboundKind.TAGS_CHANGED, "t1", change="create", tag_id="TAG_ID1").status == InboxStatus.PROCESSED
    # NAME2 is marked deleted in the documented answer and is not mirrored
    assert list(Tag.objects.filter(group__name=CORP_TAG_GROUP).values_list("name", flat=True)) == ["GOURP_NAME:NAME1"]
    tag = Tag.objects.get(name="GOURP_NAME:NAME1")
    contact, _ = do_ensure_contact_for_identity(account, "wmTagged")
    do_tag_contacts(tag.workspace, None, [contact], [tag])

    group: dict[str, Any] = {
        "group_id": "TAG_GROUPID1",
        "group_name": "客户等级",
        "create_time": 1557838797,
        "order": 1,
        "deleted": False,
        "tag": [
            {"id": "TAG_ID1", "name": "VIP", "create_time": 1557838797, "order": 1, "deleted": False},
            {"id": "TAG_ID3", "name": "普通", "create_time": 1557838797, "order": 2, "deleted": False},
        ],
    }
    fake.script(TAG_LIST, tag_list(group))
    receive(account, InboundKind.TAGS_CHANGED, "t2", change="update", tag_group_id="TAG_GROUPID1")
    names = dict(Tag.objects.filter(group__name=CORP_TAG_GROUP).values_list("pk", "name"))
    assert names[tag.pk] == "客户等级:VIP"  # renamed in place: the contact keeps it
    assert sorted(names.values()) == ["客户等级:VIP", "客户等级:普通"]
    assert ContactTag.objects.filter(contact=contact, tag=tag).exists()

    fake.script(TAG_LIST, tag_list({**group, "tag": group["tag"][1:]}))
    receive(account, InboundKind.TAGS_CHANGED, "t3", change="delete", tag_id="TAG_ID1")
    assert list(Tag.objects.filter(group__name=CORP_TAG_GROUP).values_list("name", flat=True)) == ["客户等级:普通"]
    account.refresh_from_db()
    assert account.config["corp_tag_map"] == {"TAG_ID3": Tag.objects.get(name="客户等级:普通").pk}


def test_tag_changes_are_ignored_where_there_is_no_corp_tag_library():
    account = do_create_channel_account(make_workspace(), None, kind="sandbox", name="sbx")
    assert receive(account, InboundKind.TAGS_CHANGED, "t9", change="create").status == InboxStatus.IGNORED
