"""The listener's handling of /sync answers (invitations, positions, replays, gaps,
restarts), with httpx.MockTransport playing the homeserver. Events go through the real
inbox and handlers; the adapter's sends go to the same fake homeserver."""

import json
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from siyu.channels import registry
from siyu.channels.matrix.actions import do_connect_matrix_account
from siyu.channels.matrix.adapter import MatrixAdapter
from siyu.channels.matrix.client import MatrixClient, MatrixError
from siyu.channels.matrix.listener import MatrixListener
from siyu.channels.models import ChannelAccount, InboxEvent
from siyu.communities.models import Group, GroupMessage, Membership
from siyu.core.testing import make_workspace
from siyu.moderation.models import ModerationCase

pytestmark = pytest.mark.django_db(transaction=True)

HS = "https://matrix.example.org"
BOT = "@siyu:example.org"
ROOM = "!room:example.org"
T0 = 1_760_000_000_000


def ev(kind: str, sender: str, content: dict[str, Any], event_id: str, ts: int, state_key: str | None = None, **extra: Any) -> dict[str, Any]:
    event = {"type": kind, "sender": sender, "content": content, "event_id": event_id, "origin_server_ts": ts, **extra}
    if state_key is not None:
        event["state_key"] = state_key
    return event


def join(user: str, event_id: str, ts: int, name: str = "", prev: str | None = None) -> dict[str, Any]:
    content = {"membership": "join", **({"displayname": name} if name else {})}
    extra = {"unsigned": {"prev_content": {"membership": prev}}} if prev else {}
    return ev("m.room.member", user, content, event_id, ts, state_key=user, **extra)


def text(user: str, body: str, event_id: str, ts: int) -> dict[str, Any]:
    return ev("m.room.message", user, {"msgtype": "m.text", "body": body}, event_id, ts)


def room_block(*timeline: dict[str, Any], state: tuple[dict[str, Any], ...] = (), limited: bool = False, prev_batch: str = "p0") -> dict[str, Any]:
    return {"state": {"events": list(state)}, "timeline": {"events": list(timeline), "limited": limited, "prev_batch": prev_batch}}


class FakeHomeserver:
    """Answers /sync from a script; records every other request."""

    def __init__(self) -> None:
        self.syncs: list[dict[str, Any]] = []
        self.sync_params: list[dict[str, list[str]]] = []
        self.requests: list[tuple[str, str]] = []
        self.room_state: list[dict[str, Any]] = []
        self.messages: dict[str, Any] = {"chunk": []}
        self.join_error: httpx.Response | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/login"):
            return httpx.Response(200, json={"user_id": BOT, "access_token": "tok", "device_id": "D"})
        if path.endswith("/sync"):
            self.sync_params.append(parse_qs(request.url.query.decode()))
            return httpx.Response(200, json=self.syncs.pop(0))
        self.requests.append((request.method, request.url.raw_path.decode().split("?")[0]))
        if path.endswith("/join"):
            return self.join_error or httpx.Response(200, json={"room_id": ROOM})
        if path.endswith("/state"):
            return httpx.Response(200, json=self.room_state)
        if path.endswith("/messages"):
            self.requests[-1] = (request.method, request.url.raw_path.decode())
            return httpx.Response(200, json=self.messages)
        return httpx.Response(200, json={"event_id": "$sent"})


@pytest.fixture
def homeserver() -> FakeHomeserver:
    return FakeHomeserver()


@pytest.fixture
def account(homeserver, monkeypatch) -> ChannelAccount:
    account, _ = do_connect_matrix_account(make_workspace(), None, homeserver=HS, user_id=BOT, password="pw",
                                           transport=httpx.MockTransport(homeserver))
    # the outbox delivers through the adapter the registry gives: make it talk to the fake too
    registry.adapter_for(account)
    monkeypatch.setitem(registry._FACTORIES, "matrix", lambda acc: MatrixAdapter(acc, transport=httpx.MockTransport(homeserver)))
    return account


def listener(account: ChannelAccount, homeserver: FakeHomeserver) -> MatrixListener:
    return MatrixListener(account, client=MatrixClient(HS, "tok", transport=httpx.MockTransport(homeserver)), poll_timeout_ms=0)


def first_sync() -> dict[str, Any]:
    return {"next_batch": "s1", "rooms": {"join": {ROOM: room_block(
        ev("m.room.create", "@alice:example.org", {"room_version": "10"}, "$create", T0, state_key=""),
        join("@alice:example.org", "$alice", T0 + 1, "Alice"),
        ev("m.room.power_levels", "@alice:example.org", {"users": {"@alice:example.org": 100, BOT: 50}}, "$pl", T0 + 2, state_key=""),
        ev("m.room.name", "@alice:example.org", {"name": "福利1群"}, "$name", T0 + 3, state_key=""),
        join("@bob:example.org", "$bob", T0 + 4, "Bob"),
        text("@bob:example.org", "加我微信 13812345678", "$old-advert", T0 + 5),
        join(BOT, "$bot", T0 + 10, prev="invite"),
        text("@bob:example.org", "大家好", "$hello", T0 + 11),
    )}}}


def test_first_sync_stores_the_room_as_a_group_with_its_members_and_saves_the_position(account, homeserver):
    homeserver.syncs.append(first_sync())
    result = listener(account, homeserver).sync_once()
    assert (result.next_batch, result.stored, result.mapped) == ("s1", 6, 6)
    kinds = list(InboxEvent.objects.order_by("id").values_list("dedupe_key", "kind", "status"))
    assert kinds == [
        ("$alice", "member_joined", "processed"), ("$pl", "group_updated", "processed"), ("$name", "group_updated", "processed"),
        ("$bob", "member_joined", "processed"), ("$bot", "group_created", "processed"), ("$hello", "message", "processed"),
    ]
    group = Group.objects.get(external_id=ROOM)
    assert group.name == "福利1群"
    assert sorted(Membership.objects.filter(group=group).values_list("contact__name", flat=True)) == ["Alice", "Bob"]
    # the advert from before the bot joined is history: not stored, nobody moderated
    assert list(GroupMessage.objects.values_list("external_id", flat=True)) == ["$hello"]
    assert not ModerationCase.objects.exists()
    account.refresh_from_db()
    assert account.config["since"] == "s1"
    assert "since" not in homeserver.sync_params[0]
    assert json.loads(homeserver.sync_params[0]["filter"][0])["room"]["timeline"] == {"limit": 100}


def test_a_replayed_sync_stores_nothing_new(account, homeserver):
    homeserver.syncs.extend([first_sync(), first_sync()])
    first = listener(account, homeserver)
    first.sync_once()
    account.config = {**account.config, "since": ""}  # as if the position had been lost
    replay = first.sync_once()
    assert (replay.mapped, replay.stored) == (6, 0)
    assert InboxEvent.objects.count() == 6


def test_invitations_from_the_bots_server_are_accepted_others_declined(account, homeserver):
    def invite(sender: str) -> dict[str, Any]:
        return {"invite_state": {"events": [ev("m.room.member", sender, {"membership": "invite"}, "$i", T0, state_key=BOT)]}}

    homeserver.syncs.append({"next_batch": "s1", "rooms": {"invite": {ROOM: invite("@alice:example.org"),
                                                                       "!spam:evil.example": invite("@spammer:evil.example")}}})
    result = listener(account, homeserver).sync_once()
    assert (result.joined, result.declined) == ([ROOM], ["!spam:evil.example"])
    assert homeserver.requests == [
        ("POST", "/_matrix/client/v3/rooms/%21room%3Aexample.org/join"),
        ("POST", "/_matrix/client/v3/rooms/%21spam%3Aevil.example/leave"),
    ]


def test_an_invitation_that_cannot_be_answered_now_is_retried_from_the_same_position(account, homeserver):
    homeserver.join_error = httpx.Response(502)
    homeserver.syncs.append({"next_batch": "s9", "rooms": {"invite": {ROOM: {"invite_state": {"events": [
        ev("m.room.member", "@alice:example.org", {"membership": "invite"}, "$i", T0, state_key=BOT)]}}}}})
    with pytest.raises(MatrixError):
        listener(account, homeserver).sync_once()
    account.refresh_from_db()
    assert "since" not in account.config


def test_after_a_restart_room_state_is_loaded_and_a_limited_timeline_gap_is_read_back(account, homeserver):
    account.config = {**account.config, "since": "s5"}
    account.save(update_fields=["config"])
    homeserver.room_state = [
        ev("m.room.name", "@alice:example.org", {"name": "福利1群"}, "$name", T0, state_key=""),
        ev("m.room.power_levels", "@alice:example.org", {"users": {"@alice:example.org": 100}}, "$pl", T0, state_key=""),
        join(BOT, "$bot", T0 + 1),
        join("@bob:example.org", "$bob", T0 + 2, "Bob"),
    ]
    # the gap, newest first as /messages?dir=b answers
    homeserver.messages = {"chunk": [text("@bob:example.org", "在吗", "$gap2", T0 + 21), text("@bob:example.org", "加我微信 13812345678", "$gap1", T0 + 20)]}
    homeserver.syncs.append({"next_batch": "s6", "rooms": {"join": {ROOM: room_block(
        text("@alice:example.org", "欢迎大家", "$after", T0 + 30), limited=True, prev_batch="p5")}}})
    restarted = listener(account, homeserver)
    restarted.sync_once()
    assert homeserver.sync_params[0]["since"] == ["s5"]
    assert homeserver.requests[:2] == [
        ("GET", "/_matrix/client/v3/rooms/%21room%3Aexample.org/state"),
        ("GET", "/_matrix/client/v3/rooms/%21room%3Aexample.org/messages?from=p5&dir=b&limit=100&to=s5"),
    ]
    messages = list(GroupMessage.objects.order_by("sent_at").values_list("external_id", "sender__name"))
    assert messages == [("$gap1", "Bob"), ("$gap2", "Bob"), ("$after", "@alice:example.org")]
    # the advert in the gap was moderated (with the room's name and Bob's display name from the loaded state)
    case = ModerationCase.objects.get()
    assert (case.message.external_id, case.verdict, case.group.name) == ("$gap1", "remove", "福利1群")
    assert [(m, p.rsplit("/", 2)[-2] if m == "PUT" else p.rsplit("/", 1)[-1]) for m, p in homeserver.requests[2:]] == [
        ("PUT", "%24gap1"), ("POST", "kick"), ("PUT", "m.room.message"),
    ]
    # alice (power 100) is staff: her message is exempt whatever it says
    assert InboxEvent.objects.get(dedupe_key="$after").data["sender_is_staff"] is True
