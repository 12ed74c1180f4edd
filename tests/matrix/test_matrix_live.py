"""The adapter's promises and the listener's bookkeeping, checked against the real
Synapse: a repeated txnId is one event, retried kicks and room creations are done once,
history from before the bot joined is not moderated, a restarted listener continues
where it stopped, and the CLI connects the bot and runs one sync."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from siyu.channels.base import Command, CommandKind
from siyu.channels.matrix.actions import do_connect_matrix_account
from siyu.channels.matrix.adapter import MatrixAdapter
from siyu.channels.matrix.cli import app as matrix_cli
from siyu.channels.matrix.listener import MatrixListener
from siyu.channels.models import ChannelAccount, InboxEvent
from siyu.communities.models import GroupMessage, Membership
from siyu.core.testing import make_workspace
from siyu.moderation.models import ModerationCase
from tests.matrix.conftest import MatrixCast
from tests.matrix.synapse import SynapseServer
from tests.matrix.users import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def account(synapse: SynapseServer, matrix: MatrixCast) -> ChannelAccount:
    account, _ = do_connect_matrix_account(make_workspace(), None, homeserver=synapse.base_url, user_id=matrix.bot.user_id,
                                           access_token=matrix.bot.access_token)
    return account


def _bot_joins(account: ChannelAccount, matrix: MatrixCast, name: str, *, power: int = 0) -> str:
    """alice makes a room and invites the bot; one listener sync accepts."""
    room = matrix.alice.create_room(name, invite=[matrix.bot.user_id])
    listener = MatrixListener(account, poll_timeout_ms=0)
    wait_for("the bot to accept the invitation", lambda: room in listener.sync_once().joined)
    if power:
        matrix.alice.grant_power(room, matrix.bot.user_id, power)
    return room


def test_a_send_retried_with_the_same_key_is_one_event(account, matrix):
    room = _bot_joins(account, matrix, "去重群", power=50)
    adapter = MatrixAdapter(account)
    send = Command(CommandKind.SEND_MESSAGE, "notice:1", room, {"to": "group", "text": "本周六直播"})
    first, retry = adapter.send(send), adapter.send(send)
    assert first.ok and retry.ok
    assert retry.external_id == first.external_id
    assert [e["content"]["body"] for e in matrix.alice.texts_from(room, matrix.bot.user_id)] == ["本周六直播"]
    assert adapter.send(Command(CommandKind.SEND_MESSAGE, "notice:2", room, {"to": "group", "text": "本周六直播"})).external_id != first.external_id

    redact = Command(CommandKind.DELETE_MESSAGE, "delete:1", room, {"message_id": first.external_id})
    redaction, redaction_retry = adapter.send(redact), adapter.send(redact)
    assert redaction.ok and redaction.external_id == redaction_retry.external_id
    assert matrix.alice.event(room, first.external_id)["content"] == {}


def test_kicks_need_power_and_a_retried_kick_is_done_once(account, matrix):
    room = _bot_joins(account, matrix, "踢人群")
    matrix.alice.invite(room, matrix.bob.user_id)
    matrix.bob.join(room)
    adapter = MatrixAdapter(account)
    refused = adapter.send(Command(CommandKind.REMOVE_MEMBER, "kick:1", room, {"member": matrix.bob.user_id, "reason": "advertising"}))
    assert (refused.ok, refused.transient, refused.error_code) == (False, False, "M_FORBIDDEN")

    matrix.alice.grant_power(room, matrix.bot.user_id, 50)
    kicked = adapter.send(Command(CommandKind.REMOVE_MEMBER, "kick:2", room, {"member": matrix.bob.user_id, "reason": "advertising"}))
    again = adapter.send(Command(CommandKind.REMOVE_MEMBER, "kick:2", room, {"member": matrix.bob.user_id, "reason": "advertising"}))
    assert kicked.ok and again.ok
    leave = matrix.alice.membership(room, matrix.bob.user_id)
    assert leave is not None
    assert (leave["content"]["membership"], leave["sender"], leave["content"]["reason"]) == ("leave", matrix.bot.user_id, "advertising")

    invited = adapter.send(Command(CommandKind.INVITE_MEMBER, "invite:1", room, {"member": matrix.bob.user_id}))
    invited_again = adapter.send(Command(CommandKind.INVITE_MEMBER, "invite:2", room, {"member": matrix.bob.user_id}))
    assert invited.ok and invited_again.ok
    banned = adapter.send(Command(CommandKind.BAN_MEMBER, "ban:1", room, {"member": matrix.bob.user_id}))
    assert banned.ok
    assert (matrix.alice.membership(room, matrix.bob.user_id) or {})["content"]["membership"] == "ban"

    missing = adapter.send(Command(CommandKind.SEND_MESSAGE, "x", "!nowhere:localhost", {"to": "group", "text": "hi"}))
    assert (missing.ok, missing.transient) == (False, False)
    assert missing.error_code in ("M_FORBIDDEN", "M_NOT_FOUND")


def test_room_name_topic_and_a_created_room_that_is_created_once(account, matrix):
    room = _bot_joins(account, matrix, "旧名字", power=50)
    adapter = MatrixAdapter(account)
    assert adapter.send(Command(CommandKind.SET_GROUP_NAME, "name:1", room, {"name": "新名字"})).ok
    assert adapter.send(Command(CommandKind.SET_GROUP_TOPIC, "topic:1", room, {"topic": "每周三上新"})).ok
    assert matrix.alice.state_content(room, "m.room.name") == {"name": "新名字"}
    assert matrix.alice.state_content(room, "m.room.topic") == {"topic": "每周三上新"}

    create = Command(CommandKind.CREATE_GROUP, "create:vip", "", {"name": "VIP群", "topic": "会员专享", "invite": [matrix.alice.user_id]})
    created, retried = adapter.send(create), adapter.send(create)
    assert created.ok and retried.ok
    assert created.external_id.startswith("!") and retried.external_id == created.external_id
    matrix.alice.join(created.external_id)
    assert matrix.alice.state_content(created.external_id, "m.room.name") == {"name": "VIP群"}


def test_history_from_before_the_bot_joined_is_kept_out_of_moderation(account, matrix):
    alice, bob = matrix.alice, matrix.bob
    room = alice.create_room("老群")
    alice.invite(room, bob.user_id)
    bob.join(room)
    old_advert = bob.send_text(room, "加我微信 13812345678 便宜出")
    room_with_bot = room
    alice.invite(room_with_bot, matrix.bot.user_id)
    listener = MatrixListener(account, poll_timeout_ms=0)
    wait_for("the bot to accept", lambda: room in listener.sync_once().joined)
    wait_for("bob's membership", lambda: listener.sync_once() and Membership.objects.filter(contact__name="Bob", left_at__isnull=True).exists())
    hello = bob.send_text(room, "大家好")
    wait_for("bob's new message", lambda: listener.sync_once() and GroupMessage.objects.filter(external_id=hello).exists())

    assert not GroupMessage.objects.filter(external_id=old_advert).exists()
    assert not ModerationCase.objects.exists()
    assert (alice.membership(room, bob.user_id) or {})["content"]["membership"] == "join"
    bob_joined = InboxEvent.objects.get(account=account, kind="member_joined", data__member_id=bob.user_id)
    assert bob_joined.data["backfill"] is True


def test_a_restarted_listener_continues_and_a_replay_stores_nothing(account, matrix):
    room = _bot_joins(account, matrix, "重启群")
    first = MatrixListener(account, poll_timeout_ms=0)
    first.sync_once()
    position = ChannelAccount.objects.get(pk=account.pk).config["since"]
    matrix.alice.send_text(room, "重启前")

    restarted = MatrixListener(ChannelAccount.objects.get(pk=account.pk), poll_timeout_ms=0)
    wait_for("the message after the restart", lambda: restarted.sync_once().stored)
    assert restarted.account.config["since"] != position
    assert list(GroupMessage.objects.values_list("text", "sender__name")) == [("重启前", "Alice")]

    stored_before = InboxEvent.objects.count()
    replay = MatrixListener(ChannelAccount.objects.get(pk=account.pk), poll_timeout_ms=0)
    replay.account.config = {**replay.account.config, "since": position}  # as if the last commit had been lost
    replayed = replay.sync_once()
    assert replayed.mapped == 1 and replayed.stored == 0
    assert InboxEvent.objects.count() == stored_before


def test_the_bot_removed_from_a_room_is_kept_for_operators_to_see(account, matrix):
    room = _bot_joins(account, matrix, "被踢群")
    listener = MatrixListener(account, poll_timeout_ms=0)
    listener.sync_once()
    matrix.alice.send_text(room, "最后一句")
    kick = matrix.alice.http.post(f"/_matrix/client/v3/rooms/{room}/kick", json={"user_id": matrix.bot.user_id, "reason": "不需要机器人"})
    assert kick.status_code == 200
    removed = wait_for("the removal to be stored", lambda: listener.sync_once() and InboxEvent.objects.filter(kind="unknown").first())
    assert (removed.status, removed.data["event_type"], removed.data["by"]) == ("ignored", "bot_removed", matrix.alice.user_id)
    assert list(GroupMessage.objects.values_list("text", flat=True)) == ["最后一句"]
    assert room not in listener.rooms


def test_cli_connects_the_bot_and_runs_one_sync(synapse, matrix):
    workspace = make_workspace()
    runner = CliRunner()
    added = runner.invoke(matrix_cli, [
        "add-matrix", "--workspace", workspace.slug, "--homeserver", synapse.base_url, "--user-id", matrix.bot.user_id,
        "--json",
    ], env={"SIYU_MATRIX_PASSWORD": matrix.bot.password})
    assert added.exit_code == 0, added.output
    info = json.loads(added.output)
    account = ChannelAccount.objects.get(pk=info["account_id"])
    assert (info["user_id"], info["created"], account.workspace_id) == (matrix.bot.user_id, True, workspace.pk)

    room = matrix.alice.create_room("命令行群", invite=[matrix.bot.user_id])
    ran = runner.invoke(matrix_cli, ["run-matrix", "--workspace", workspace.slug, "--once", "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output.strip().splitlines()[-1]) == {"accounts": 1, "failed": []}
    assert (matrix.alice.membership(room, matrix.bot.user_id) or {})["content"]["membership"] == "join"

    wrong = runner.invoke(matrix_cli, [
        "add-matrix", "--workspace", workspace.slug, "--homeserver", synapse.base_url, "--user-id", matrix.bot.user_id,
        "--password", "not-the-password", "--name", "second", "--json",
    ])
    assert wrong.exit_code == 1
    assert json.loads(wrong.output)["error"]["code"] == "matrix_login_failed"
