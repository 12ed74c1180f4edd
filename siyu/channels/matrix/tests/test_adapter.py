"""The Matrix adapter's request mapping and error handling, with httpx.MockTransport
standing in for the homeserver (the real Synapse runs in tests/matrix)."""

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from siyu.accounts.models import AuditEntry
from siyu.channels.base import Capability, Command, CommandKind
from siyu.channels.matrix.actions import do_connect_matrix_account, do_save_sync_position
from siyu.channels.matrix.adapter import MatrixAdapter, txn_id
from siyu.channels.models import ChannelAccount
from siyu.channels.registry import adapter_for
from siyu.core import crypto
from siyu.core.errors import Forbidden, ValidationFailed
from siyu.core.testing import make_staff, make_workspace

pytestmark = pytest.mark.django_db

HS = "https://matrix.example.org"
BOT = "@siyu:example.org"
ROOM = "!room:example.org"

Handler = Callable[[httpx.Request], httpx.Response]


class Homeserver:
    """Records requests and answers them with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.requests: list[httpx.Request] = []
        self.handler = handler

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def calls(self) -> list[tuple[str, str, Any]]:
        return [(r.method, r.url.raw_path.decode(), json.loads(r.content) if r.content else None) for r in self.requests]


def _login(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/login"):
        return httpx.Response(200, json={"user_id": BOT, "access_token": "syt_secret", "device_id": "DEV1"})
    return httpx.Response(200, json={"user_id": BOT, "device_id": "DEV2"})


@pytest.fixture
def account() -> ChannelAccount:
    workspace = make_workspace()
    account, _ = do_connect_matrix_account(workspace, None, homeserver=HS + "/", user_id=BOT, password="pw",
                                           transport=Homeserver(_login).transport)
    return account


def adapter(account: ChannelAccount, handler: Handler) -> tuple[MatrixAdapter, Homeserver]:
    server = Homeserver(handler)
    return MatrixAdapter(account, transport=server.transport), server


def test_connecting_logs_in_and_stores_the_token_encrypted(account):
    assert (account.kind, account.external_id, account.name) == ("matrix", BOT, BOT)
    assert {k: v for k, v in account.config.items() if k != "access_token"} == {"homeserver": HS, "user_id": BOT, "device_id": "DEV1"}
    assert account.config["access_token"] != "syt_secret"
    assert crypto.decrypt(account.config["access_token"]) == "syt_secret"
    assert AuditEntry.objects.filter(action="channel_account.created").count() == 1
    assert "syt_secret" not in json.dumps(list(AuditEntry.objects.values("before", "after", "summary")))


def test_reconnecting_with_a_token_replaces_credentials_and_keeps_the_sync_position(account):
    do_save_sync_position(account, "s72_1")
    server = Homeserver(_login)
    again, created = do_connect_matrix_account(account.workspace, None, homeserver=HS, user_id=BOT, access_token="syt_new",
                                               transport=server.transport)
    assert (again.pk, created) == (account.pk, False)
    assert server.calls() == [("GET", "/_matrix/client/v3/account/whoami", None)]
    assert server.requests[0].headers["Authorization"] == "Bearer syt_new"
    assert crypto.decrypt(again.config["access_token"]) == "syt_new"
    assert (again.config["device_id"], again.config["since"]) == ("DEV2", "s72_1")
    assert AuditEntry.objects.filter(action="channel_account.credentials_updated").count() == 1


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"homeserver": "matrix.example.org", "password": "pw"}, "invalid_homeserver"),
        ({"homeserver": HS + "/path", "password": "pw"}, "invalid_homeserver"),
        ({"user_id": "siyu", "password": "pw"}, "invalid_user_id"),
        ({}, "credentials_required"),
        ({"password": "pw", "access_token": "t"}, "credentials_required"),
        ({"access_token": "belongs-to-someone-else"}, "matrix_wrong_user"),
        ({"password": "wrong"}, "matrix_login_failed"),
    ],
)
def test_connecting_refuses_bad_input_with_a_code(kwargs, code):
    def homeserver(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/login"):
            return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "Invalid username or password"})
        return httpx.Response(200, json={"user_id": "@other:example.org"})

    workspace = make_workspace()
    with pytest.raises(ValidationFailed) as raised:
        do_connect_matrix_account(workspace, None, **{"homeserver": HS, "user_id": BOT, **kwargs},
                                  transport=Homeserver(homeserver).transport)
    assert raised.value.code == code
    assert not ChannelAccount.objects.exists()


def test_connecting_an_unreachable_homeserver_and_without_permission():
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    workspace = make_workspace()
    with pytest.raises(ValidationFailed) as raised:
        do_connect_matrix_account(workspace, None, homeserver=HS, user_id=BOT, password="pw", transport=Homeserver(down).transport)
    assert raised.value.code == "matrix_unreachable"
    agent = make_staff(workspace, "agent")
    with pytest.raises(Forbidden):
        do_connect_matrix_account(workspace, agent, homeserver=HS, user_id=BOT, password="pw", transport=Homeserver(_login).transport)


def test_registry_serves_matrix_accounts_with_their_capabilities(account):
    matrix = adapter_for(account)
    assert isinstance(matrix, MatrixAdapter)
    assert matrix.can(Capability.REMOVE_MEMBER) and matrix.can(Capability.DELETE_MESSAGE)
    assert not matrix.can(Capability.SEND_WELCOME) and not matrix.can(Capability.SEND_DIRECT_MESSAGE)


def test_group_message_goes_out_with_the_txn_id_of_the_idempotency_key_and_a_mention(account):
    matrix, server = adapter(account, lambda r: httpx.Response(200, json={"event_id": "$welcome"}))
    result = matrix.send(Command(CommandKind.SEND_MESSAGE, "group-welcome:7", ROOM, {"to": "group", "text": "欢迎 Bob", "mention": "@bob:x"}))
    assert (result.ok, result.external_id) == (True, "$welcome")
    txn = hashlib.sha256(b"group-welcome:7").hexdigest()[:32]
    assert txn_id("group-welcome:7") == txn
    assert server.calls() == [(
        "PUT", f"/_matrix/client/v3/rooms/%21room%3Aexample.org/send/m.room.message/{txn}",
        {"msgtype": "m.notice", "body": "欢迎 Bob", "m.mentions": {"user_ids": ["@bob:x"]}},
    )]
    assert server.requests[0].headers["Authorization"] == "Bearer syt_secret"


def test_each_command_maps_to_its_endpoint(account):
    def homeserver(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/createRoom"):
            return httpx.Response(200, json={"room_id": "!new:example.org"})
        return httpx.Response(200, json={"event_id": "$e"} if request.method == "PUT" else {})

    matrix, server = adapter(account, homeserver)
    commands = [
        Command(CommandKind.DELETE_MESSAGE, "k1", ROOM, {"message_id": "$advert"}),
        Command(CommandKind.REMOVE_MEMBER, "k2", ROOM, {"member": "@bob:x", "reason": "advertising"}),
        Command(CommandKind.BAN_MEMBER, "k3", ROOM, {"member": "@bob:x"}),
        Command(CommandKind.INVITE_MEMBER, "k4", ROOM, {"member": "@carol:x"}),
        Command(CommandKind.SET_GROUP_TOPIC, "k5", ROOM, {"topic": "每周三上新"}),
        Command(CommandKind.SET_GROUP_NAME, "k6", ROOM, {"name": "福利2群"}),
        Command(CommandKind.CREATE_GROUP, "k7", "", {"name": "新品群", "invite": ["@alice:x"]}),
    ]
    results = [matrix.send(c) for c in commands]
    assert [(r.ok, r.external_id) for r in results] == [
        (True, "$e"), (True, "@bob:x"), (True, "@bob:x"), (True, "@carol:x"), (True, "$e"), (True, "$e"), (True, "!new:example.org"),
    ]
    room = "/_matrix/client/v3/rooms/%21room%3Aexample.org"
    assert server.calls() == [
        ("PUT", f"{room}/redact/%24advert/{txn_id('k1')}", {}),
        ("POST", f"{room}/kick", {"user_id": "@bob:x", "reason": "advertising"}),
        ("POST", f"{room}/ban", {"user_id": "@bob:x"}),
        ("POST", f"{room}/invite", {"user_id": "@carol:x"}),
        ("PUT", f"{room}/state/m.room.topic/", {"topic": "每周三上新"}),
        ("PUT", f"{room}/state/m.room.name/", {"name": "福利2群"}),
        ("POST", "/_matrix/client/v3/createRoom",
         {"preset": "private_chat", "room_alias_name": f"siyu-{txn_id('k7')[:24]}", "name": "新品群", "invite": ["@alice:x"]}),
    ]


def test_rate_limit_and_server_errors_are_transient(account):
    answers = iter([
        httpx.Response(429, json={"errcode": "M_LIMIT_EXCEEDED", "error": "Too many requests", "retry_after_ms": 2500}),
        httpx.Response(502, text="Bad Gateway"),
    ])
    matrix, _ = adapter(account, lambda r: next(answers))
    cmd = Command(CommandKind.SEND_MESSAGE, "k", ROOM, {"to": "group", "text": "hi"})
    limited, bad_gateway = matrix.send(cmd), matrix.send(cmd)
    assert (limited.ok, limited.transient, limited.error_code, limited.retry_after) == (False, True, "M_LIMIT_EXCEEDED", 2.5)
    assert (bad_gateway.transient, bad_gateway.error_code) == (True, "HTTP_502")


def test_network_failure_is_transient(account):
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    result = adapter(account, down)[0].send(Command(CommandKind.SEND_MESSAGE, "k", ROOM, {"to": "group", "text": "hi"}))
    assert (result.ok, result.transient, result.error_code) == (False, True, "M_UNAVAILABLE")


def test_refusals_are_permanent_with_the_matrix_errcode(account):
    def homeserver(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":  # membership check after a refused kick: still in the room
            return httpx.Response(200, json={"membership": "join"})
        return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "You don't have permission to kick"})

    matrix, server = adapter(account, homeserver)
    result = matrix.send(Command(CommandKind.REMOVE_MEMBER, "k", ROOM, {"member": "@bob:x"}))
    assert (result.ok, result.transient, result.error_code) == (False, False, "M_FORBIDDEN")
    assert result.error == "You don't have permission to kick"
    assert [c[0] for c in server.calls()] == ["POST", "GET"]


def test_a_kick_retried_after_it_happened_counts_as_done(account):
    def homeserver(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json={"membership": "leave"})
        return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "The target user is not in the room"})

    result = adapter(account, homeserver)[0].send(Command(CommandKind.REMOVE_MEMBER, "k", ROOM, {"member": "@bob:x"}))
    assert (result.ok, result.external_id) == (True, "@bob:x")


def test_creating_a_room_twice_finds_the_first_by_its_alias(account):
    def homeserver(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/createRoom"):
            return httpx.Response(400, json={"errcode": "M_ROOM_IN_USE", "error": "Room alias already taken"})
        return httpx.Response(200, json={"room_id": "!first:example.org", "servers": ["example.org"]})

    matrix, server = adapter(account, homeserver)
    result = matrix.send(Command(CommandKind.CREATE_GROUP, "create:1", "", {"name": "新品群"}))
    assert (result.ok, result.external_id) == (True, "!first:example.org")
    assert server.calls()[1] == ("GET", f"/_matrix/client/v3/directory/room/%23siyu-{txn_id('create:1')[:24]}%3Aexample.org", None)


def test_unsupported_and_malformed_commands_fail_permanently_without_a_request(account):
    matrix, server = adapter(account, lambda r: httpx.Response(200, json={}))
    direct = matrix.send(Command(CommandKind.SEND_MESSAGE, "k", "@bob:x", {"to": "contact", "text": "hi"}))
    welcome = matrix.send(Command(CommandKind.SEND_WELCOME, "k", "@bob:x", {"welcome_code": "x"}))
    malformed = matrix.send(Command(CommandKind.REMOVE_MEMBER, "k", ROOM, {}))
    assert [(r.ok, r.transient, r.error_code) for r in (direct, welcome, malformed)] == [
        (False, False, "unsupported"), (False, False, "unsupported"), (False, False, "invalid_payload"),
    ]
    assert server.requests == []


def test_dismissing_a_room_posts_the_farewell_closes_it_removes_everyone_it_may_and_leaves(account):
    # given a room alice created (room version 12: creators are not in the levels), the bot a
    # moderator (50), erin a moderator too, bob a member, carol invited, dave gone
    state = [
        {"type": "m.room.create", "state_key": "", "sender": "@alice:x", "content": {"room_version": "12"}},
        {"type": "m.room.power_levels", "state_key": "", "content": {"users": {BOT: 50, "@erin:x": 50}, "users_default": 0}},
        {"type": "m.room.member", "state_key": BOT, "content": {"membership": "join"}},
        {"type": "m.room.member", "state_key": "@alice:x", "content": {"membership": "join"}},
        {"type": "m.room.member", "state_key": "@erin:x", "content": {"membership": "join"}},
        {"type": "m.room.member", "state_key": "@bob:x", "content": {"membership": "join"}},
        {"type": "m.room.member", "state_key": "@carol:x", "content": {"membership": "invite"}},
        {"type": "m.room.member", "state_key": "@dave:x", "content": {"membership": "leave"}},
    ]

    def homeserver(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and "/state/m.room.member/" in path:
            return httpx.Response(200, json={"membership": "join"})
        if request.method == "GET" and path.endswith("/state"):
            return httpx.Response(200, json=state)
        return httpx.Response(200, json={"event_id": "$e"})

    matrix, server = adapter(account, homeserver)
    result = matrix.send(Command(CommandKind.DISMISS_GROUP, "dismiss:7", ROOM, {"farewell": "再见", "reason": "活动结束"}))

    # then: farewell, join rule, kicks of bob and carol (not alice or erin: Matrix would refuse), leave
    assert (result.ok, result.external_id) == (True, ROOM)
    room = "/_matrix/client/v3/rooms/%21room%3Aexample.org"
    calls = server.calls()
    assert [(m, p.removeprefix(room)) for m, p, _ in calls] == [
        ("GET", f"/state/m.room.member/{BOT.replace('@', '%40').replace(':', '%3A')}"),
        ("PUT", f"/send/m.room.message/{txn_id('dismiss:7')}-farewell"),
        ("PUT", "/state/m.room.join_rules/"),
        ("GET", "/state"),
        ("POST", "/kick"),
        ("POST", "/kick"),
        ("POST", "/leave"),
    ]
    assert calls[1][2]["body"] == "再见" and calls[2][2] == {"join_rule": "invite"}
    assert [c[2] for c in calls[4:6]] == [{"user_id": "@bob:x", "reason": "活动结束"}, {"user_id": "@carol:x", "reason": "活动结束"}]
    assert calls[6][2] == {"reason": "活动结束"}


def test_a_dismissal_retried_after_the_bot_left_counts_as_done(account):
    def homeserver(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"membership": "leave"})

    matrix, server = adapter(account, homeserver)
    result = matrix.send(Command(CommandKind.DISMISS_GROUP, "dismiss:7", ROOM, {"farewell": "再见"}))
    assert (result.ok, result.external_id) == (True, ROOM)
    assert [c[0] for c in server.calls()] == ["GET"]


def test_a_kick_refused_during_a_dismissal_does_not_keep_the_bot_in_the_room(account):
    state = [
        {"type": "m.room.power_levels", "state_key": "", "content": {"users": {BOT: 50}}},
        {"type": "m.room.member", "state_key": "@bob:x", "content": {"membership": "join"}},
    ]

    def homeserver(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET":
            return httpx.Response(200, json=state if path.endswith("/state") else {"membership": "join"})
        if path.endswith("/kick"):
            return httpx.Response(403, json={"errcode": "M_FORBIDDEN", "error": "You cannot kick user @bob:x."})
        return httpx.Response(200, json={"event_id": "$e"})

    matrix, server = adapter(account, homeserver)
    result = matrix.send(Command(CommandKind.DISMISS_GROUP, "dismiss:8", ROOM, {}))
    assert result.ok
    assert [p.rsplit("/", 1)[-1] for m, p, _ in server.calls() if m == "POST"] == ["kick", "leave"]
