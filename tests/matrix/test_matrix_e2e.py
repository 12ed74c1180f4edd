"""The group bot end to end against a real Synapse on loopback: a room becomes a group,
a new member is welcomed, an evasive advert (加 V 信 with a spaced-out id, a phone number in
full-width digits) gets its author removed and
the message redacted with a notice in the room, and all of it is visible through the
siyu API. Nothing is faked: the listener long-polls Synapse, the inbox processes what
it stores, and the outbox delivers through the Matrix adapter (Huey runs immediately
in tests, so delivery happens in the listener's thread right after each commit)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.test import Client

from siyu.accounts.models import Role
from siyu.channels.matrix.actions import do_connect_matrix_account
from siyu.channels.matrix.listener import MatrixListener
from siyu.channels.models import ChannelAccount, InboxEvent, OutboxMessage, OutboxStatus
from siyu.communities.actions import do_update_group
from siyu.communities.models import Group, GroupMessage, Membership
from siyu.core.testing import make_staff, make_token, make_workspace
from siyu.moderation.models import ModerationCase
from tests.matrix.conftest import MatrixCast
from tests.matrix.synapse import SynapseServer
from tests.matrix.users import UserClient, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WELCOME = "欢迎 {name} 加入{group}！请先看群规。"


class RunningListener:
    """The account's listener in a thread, as ``siyu channels run-matrix`` runs it."""

    def __init__(self, account: ChannelAccount) -> None:
        self.stop = threading.Event()
        self.listener = MatrixListener(account, poll_timeout_ms=500)
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop,), name="matrix-listener", daemon=True)

    def __enter__(self) -> RunningListener:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the listener did not stop"


@pytest.fixture
def siyu_side(synapse: SynapseServer, matrix: MatrixCast) -> Iterator[tuple[ChannelAccount, Client, dict[str, str]]]:
    workspace = make_workspace()
    owner = make_staff(workspace, Role.OWNER)
    account, created = do_connect_matrix_account(
        workspace, owner, homeserver=synapse.base_url, user_id=matrix.bot.user_id, password=matrix.bot.password,
    )
    assert created
    yield account, Client(), {"Authorization": f"Bearer {make_token(owner)}"}


def _group(account: ChannelAccount, room_id: str) -> Group | None:
    return Group.objects.filter(channel_account=account, external_id=room_id).first()


def _bot_moderates(account: ChannelAccount, owner: UserClient, bot_id: str, room: str) -> Group:
    """With the listener running: the bot accepted the room's invitation, the room became a
    group, and its owner made the bot a moderator (power level 50)."""
    group = wait_for("the room to become a group", lambda: _group(account, room))
    assert wait_for("the bot to join", lambda: (owner.membership(room, bot_id) or {}).get("content", {}).get("membership") == "join")
    owner.grant_power(room, bot_id, 50)
    return group


def test_welcome_and_advert_removal_in_a_real_synapse_room(matrix: MatrixCast, siyu_side) -> None:
    account, api, auth = siyu_side
    alice, bob, bot_id = matrix.alice, matrix.bob, matrix.bot.user_id

    # given a room alice owns, with the bot invited
    room = alice.create_room("福利1群", invite=[bot_id])
    with RunningListener(account):
        # the listener accepts the invitation; the room becomes a group with alice in it;
        # alice makes the bot a moderator and sets the group's welcome message in siyu
        group = _bot_moderates(account, alice, bot_id, room)
        assert group.name == "福利1群"
        wait_for("alice's membership", lambda: Membership.objects.filter(group=group, contact__name="Alice", left_at__isnull=True).exists())
        do_update_group(group, None, welcome_message=WELCOME)

        # when bob joins, he is welcomed by name, with a mention
        alice.invite(room, bob.user_id)
        bob.join(room)
        welcome = wait_for("the welcome message", lambda: bob.texts_from(room, bot_id))
        assert [e["content"]["body"] for e in welcome] == ["欢迎 Bob 加入福利1群！请先看群规。"]
        assert welcome[0]["content"]["m.mentions"] == {"user_ids": [bob.user_id]}

        # when bob chats about clothes, nothing happens to him
        chat_id = bob.send_text(room, "今天的穿搭好看")
        wait_for("the chat message to be stored", lambda: GroupMessage.objects.filter(external_id=chat_id).exists())
        assert not ModerationCase.objects.exists()

        # when bob posts an evasive advert (a spaced-out WeChat id, a phone number in full-width
        # digits with spaces), he is removed with a notice and the advert redacted
        advert_id = bob.send_text(room, "想要同款的加 V 信：abc_123，或打 １３８ １２３４ ５６７８")
        kicked = wait_for("bob to be removed", lambda: _left(alice.membership(room, bob.user_id)))
        assert kicked["sender"] == bot_id
        notice = wait_for("the removal notice", lambda: [
            e for e in alice.texts_from(room, bot_id) if e["content"].get("body", "").startswith("因系统检测到Bob发广告，已移出群聊")
        ])
        assert len(notice) == 1
        redacted = wait_for("the advert to be redacted", lambda: _redacted(alice.event(room, advert_id)))
        assert redacted["content"] == {}
        assert redacted["unsigned"]["redacted_because"]["sender"] == bot_id
        # the kick comes back through sync as bob's leave; siyu had already closed the membership
        wait_for("bob's leave to be processed", lambda: InboxEvent.objects.filter(account=account, kind="member_left", status="processed").exists())

    assert (alice.membership(room, bot_id) or {})["content"]["membership"] == "join"
    # then every send went out once, and siyu's API shows the membership and the case
    sends = OutboxMessage.objects.filter(account=account).order_by("id")
    assert [(o.command, o.status) for o in sends] == [
        ("send_message", OutboxStatus.SENT),
        ("delete_message", OutboxStatus.SENT),
        ("remove_member", OutboxStatus.SENT),
        ("send_message", OutboxStatus.SENT),
    ]
    assert sends[0].external_id == welcome[0]["event_id"]
    assert sends[3].external_id == notice[0]["event_id"]

    members = api.get(f"/api/v1/groups/{group.pk}/members", {"include_left": "true"}, headers=auth).json()
    by_name = {m["contact_name"]: m for m in members["items"]}
    assert sorted(by_name) == ["Alice", "Bob"]
    assert by_name["Alice"]["left_at"] is None
    assert by_name["Bob"]["left_at"] is not None
    current = api.get(f"/api/v1/groups/{group.pk}/members", headers=auth).json()
    assert [m["contact_name"] for m in current["items"]] == ["Alice"]

    cases = api.get("/api/v1/moderation/cases", headers=auth).json()
    assert cases["count"] == 1
    case = cases["items"][0]
    assert (case["group_id"], case["contact_id"], case["verdict"]) == (group.pk, by_name["Bob"]["contact_id"], "remove")
    assert case["text"] == "想要同款的加 V 信：abc_123，或打 １３８ １２３４ ５６７８"
    assert {r["detector"] for r in case["reasons"]} == {"phone", "wechat_id"}
    assert [a.get("command") for a in case["applied"] if "outbox" in a] == ["delete_message", "remove_member", "send_message"]


def _left(member_event: dict | None) -> dict | None:
    if member_event and member_event["content"].get("membership") == "leave":
        return member_event
    return None


def _redacted(event: dict) -> dict | None:
    return event if "redacted_because" in (event.get("unsigned") or {}) else None


def test_dismissing_a_group_ends_the_real_room(synapse: SynapseServer, matrix: MatrixCast, siyu_side) -> None:
    import uuid

    account, api, auth = siyu_side
    alice, bob, bot_id = matrix.alice, matrix.bob, matrix.bot.user_id
    carol = UserClient(synapse.base_url, synapse.register(f"carol-{uuid.uuid4().hex[:8]}"))
    try:
        # given a room alice created, the bot a moderator in it, bob a member and carol invited
        room = alice.create_room("双11快闪群", invite=[bot_id])
        with RunningListener(account):
            group = _bot_moderates(account, alice, bot_id, room)
            alice.invite(room, bob.user_id)
            bob.join(room)
            alice.invite(room, carol.user.user_id)
            wait_for("bob's membership", lambda: Membership.objects.filter(group=group, contact__name="Bob", left_at__isnull=True).exists())

            # when the group is dismissed through the API with a farewell
            response = api.post(f"/api/v1/groups/{group.pk}/dismiss", {"farewell": "活动结束，本群解散，感谢陪伴！"},
                                content_type="application/json", headers=auth)
            assert response.status_code == 200, response.content

            # then the bot posted the farewell, closed the room, removed bob and carol's invitation, and left
            farewell = wait_for("the farewell", lambda: alice.texts_from(room, bot_id))
            assert [e["content"]["body"] for e in farewell] == ["活动结束，本群解散，感谢陪伴！"]
            bot_left = wait_for("the bot to leave", lambda: _left(alice.membership(room, bot_id)))
            assert bot_left["sender"] == bot_id
        for user_id in (bob.user_id, carol.user.user_id):
            member = alice.membership(room, user_id) or {}
            assert (member["content"]["membership"], member["sender"]) == ("leave", bot_id), user_id
        assert alice.state_content(room, "m.room.join_rules") == {"join_rule": "invite"}
        assert (alice.membership(room, alice.user.user_id) or {})["content"]["membership"] == "join"  # her level is above the bot's

        # and siyu shows the group dismissed, the command sent once, nobody left in it
        body = api.get(f"/api/v1/groups/{group.pk}", headers=auth).json()
        assert body["dismissed_at"] and body["archived_at"]
        assert [(o.command, o.status) for o in OutboxMessage.objects.filter(account=account)] == [("dismiss_group", OutboxStatus.SENT)]
        assert not Membership.objects.filter(group=group, left_at__isnull=True).exists()
    finally:
        carol.close()


def test_staff_removal_and_the_blacklist_kick_in_the_real_room(matrix: MatrixCast, siyu_side) -> None:
    account, api, auth = siyu_side
    alice, bob, bot_id = matrix.alice, matrix.bob, matrix.bot.user_id

    # given a room alice owns with the bot a moderator in it, and bob a member
    room = alice.create_room("静安福利群", invite=[bot_id])
    with RunningListener(account):
        group = _bot_moderates(account, alice, bot_id, room)
        alice.invite(room, bob.user_id)
        bob.join(room)
        stay = wait_for("bob's membership", lambda: Membership.objects.filter(group=group, contact__name="Bob", left_at__isnull=True).first())

        # when staff remove bob from the group page's API (移出群聊) with a reason
        response = api.post(f"/api/v1/groups/{group.pk}/members/{stay.contact_id}/remove", {"reason": "多次发广告"},
                            content_type="application/json", headers=auth)
        assert response.status_code == 200, response.content

        # then the bot kicked him, with the reason, and siyu ended his stay
        kicked = wait_for("bob to be removed", lambda: _left(alice.membership(room, bob.user_id)))
        assert (kicked["sender"], kicked["content"].get("reason")) == (bot_id, "多次发广告")
        stay.refresh_from_db()
        assert stay.left_at is not None

        # when bob is blacklisted and alice lets him back in
        assert api.post("/api/v1/moderation/blacklist", {"contact_id": stay.contact_id, "reason": "发广告"},
                        content_type="application/json", headers=auth).status_code == 201
        alice.invite(room, bob.user_id)
        bob.join(room)

        # then the bot removes him again at once, with the notice
        wait_for("bob's second removal", lambda: OutboxMessage.objects.filter(account=account, command="remove_member").count() == 2
                 and _left(alice.membership(room, bob.user_id)))
        notice = wait_for("the removal notice", lambda: [
            e for e in alice.texts_from(room, bot_id) if e["content"].get("body", "").startswith("因系统检测到Bob发广告，已移出群聊")
        ])
        assert len(notice) == 1

    assert [(o.command, o.status) for o in OutboxMessage.objects.filter(account=account).order_by("id")] == [
        ("remove_member", OutboxStatus.SENT), ("remove_member", OutboxStatus.SENT), ("send_message", OutboxStatus.SENT),
    ]
    assert not Membership.objects.filter(group=group, contact_id=stay.contact_id, left_at__isnull=True).exists()


def test_a_known_spammer_banned_by_matrix_id_is_kicked_on_first_join(matrix: MatrixCast, siyu_side) -> None:
    account, api, auth = siyu_side
    alice, bob, bot_id = matrix.alice, matrix.bob, matrix.bot.user_id

    # given a room with the bot a moderator and a welcome set, and bob's Matrix id on a shared
    # spammer list — banned by id (按渠道账号拉黑) before siyu has ever seen him
    room = alice.create_room("徐汇福利群", invite=[bot_id])
    with RunningListener(account):
        group = _bot_moderates(account, alice, bot_id, room)
        do_update_group(group, None, welcome_message=WELCOME)
        assert not Membership.objects.filter(contact__identities__external_id=bob.user_id).exists()
        response = api.post("/api/v1/moderation/blacklist/by-channel-id",
                            {"account_id": account.pk, "people": [{"external_id": bob.user_id, "name": "广告号"}], "reason": "共享黑名单"},
                            content_type="application/json", headers=auth)
        assert response.status_code == 200, response.content
        assert [e["contact_name"] for e in response.json()["created"]] == ["广告号"]

        # when alice lets him in
        alice.invite(room, bob.user_id)
        bob.join(room)

        # then the bot kicks him at once, posts the removal notice, and does not welcome him
        kicked = wait_for("bob to be removed", lambda: _left(alice.membership(room, bob.user_id)))
        assert kicked["sender"] == bot_id
        wait_for("the removal notice", lambda: [
            e for e in alice.texts_from(room, bot_id) if e["content"].get("body", "").startswith("因系统检测到")
        ])
        assert not [e for e in alice.texts_from(room, bot_id) if e["content"].get("body", "").startswith(WELCOME.split("{")[0])]

    assert not Membership.objects.filter(group=group, contact__identities__external_id=bob.user_id, left_at__isnull=True).exists()
    assert [(o.command, o.status) for o in OutboxMessage.objects.filter(account=account).order_by("id")] == [
        ("remove_member", OutboxStatus.SENT), ("send_message", OutboxStatus.SENT),
    ]
