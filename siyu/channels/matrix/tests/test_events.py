"""Matrix event JSON → InboundEvent, on hand-written events shaped like Synapse's."""

import datetime as dt
from typing import Any

import pytest

from siyu.channels.base import InboundKind
from siyu.channels.matrix.events import RoomState, map_event, role_for_level

BOT = "@siyu:example.org"
ROOM = "!abc:example.org"
TS = 1_760_000_000_000


def member(user: str, membership: str, *, sender: str | None = None, prev: str | None = None, name: str | None = None,
           ts: int = TS, event_id: str = "$m") -> dict[str, Any]:
    content: dict[str, Any] = {"membership": membership}
    if name:
        content["displayname"] = name
    event: dict[str, Any] = {"type": "m.room.member", "state_key": user, "sender": sender or user, "content": content,
                             "event_id": event_id, "origin_server_ts": ts, "room_id": ROOM}
    if prev:
        event["unsigned"] = {"prev_content": {"membership": prev}}
    return event


def message(sender: str, body: Any, *, ts: int = TS, event_id: str = "$msg", msgtype: str = "m.text") -> dict[str, Any]:
    content: dict[str, Any] = {"msgtype": msgtype, "body": body} if body is not None else {}
    return {"type": "m.room.message", "sender": sender, "content": content, "event_id": event_id, "origin_server_ts": ts}


@pytest.fixture
def room() -> RoomState:
    state = RoomState(ROOM, name="福利1群")
    state.power_levels = {"users": {"@alice:example.org": 100, "@mod:example.org": 50, BOT: 50}, "users_default": 0}
    return state


def test_join_after_invite_is_a_member_joined_with_power_and_role(room):
    event = map_event(member("@alice:example.org", "join", prev="invite", name="Alice", event_id="$j1"), room, BOT)
    assert event is not None
    assert (event.kind, event.dedupe_key) == (InboundKind.MEMBER_JOINED, "$j1")
    assert event.occurred_at == dt.datetime(2025, 10, 9, 8, 53, 20, tzinfo=dt.UTC)
    assert event.data == {
        "group_id": ROOM, "member_id": "@alice:example.org", "member_name": "Alice", "group_name": "福利1群",
        "join_source": "invite", "power_level": 100, "role": "owner",
    }


def test_join_without_invite_and_without_power(room):
    event = map_event(member("@bob:example.org", "join"), room, BOT)
    assert event is not None
    assert (event.data["join_source"], event.data["power_level"], event.data["role"]) == ("join", 0, "")
    assert "member_name" not in event.data


def test_display_name_change_invite_and_rejected_invite_are_not_membership_changes(room):
    assert map_event(member("@bob:example.org", "join", prev="join", name="Bobby"), room, BOT) is None
    assert map_event(member("@bob:example.org", "invite", sender="@alice:example.org"), room, BOT) is None
    assert map_event(member("@bob:example.org", "leave", prev="invite"), room, BOT) is None
    assert map_event(member("@bob:example.org", "ban", sender="@alice:example.org", prev="leave"), room, BOT) is None


@pytest.mark.parametrize(
    ("membership", "sender", "reason"),
    [("leave", "@bob:example.org", "left"), ("leave", "@mod:example.org", "kicked"), ("ban", "@mod:example.org", "banned")],
)
def test_leaving_a_room_says_how(room, membership, sender, reason):
    room.member_names["@bob:example.org"] = "Bob"
    event = map_event(member("@bob:example.org", membership, sender=sender, prev="join"), room, BOT)
    assert event is not None
    expected = {"group_id": ROOM, "member_id": "@bob:example.org", "member_name": "Bob", "reason": reason}
    if reason != "left":
        expected["by"] = "@mod:example.org"
    assert (event.kind, event.data) == (InboundKind.MEMBER_LEFT, expected)


def test_bot_joining_makes_the_room_a_group_and_its_removal_is_kept_as_unknown(room):
    joined = map_event(member(BOT, "join", prev="invite", event_id="$botjoin"), room, BOT)
    assert joined is not None
    assert (joined.kind, joined.data) == (InboundKind.GROUP_CREATED, {"group_id": ROOM, "group_name": "福利1群"})
    kicked = map_event(member(BOT, "leave", sender="@alice:example.org", prev="join"), room, BOT)
    assert kicked is not None
    assert (kicked.kind, kicked.data["event_type"], kicked.data["by"]) == (InboundKind.UNKNOWN, "bot_removed", "@alice:example.org")
    assert map_event(member(BOT, "leave", prev="join"), room, BOT) is None  # the bot left by itself


def test_message_carries_sender_staff_flag_and_name(room):
    room.member_names["@mod:example.org"] = "小助手"
    by_mod = map_event(message("@mod:example.org", "群规请看公告", event_id="$1"), room, BOT)
    by_bob = map_event(message("@bob:example.org", "想要同款", event_id="$2"), room, BOT)
    by_bot = map_event(message(BOT, "欢迎", event_id="$3", msgtype="m.notice"), room, BOT)
    assert by_mod is not None and by_bob is not None and by_bot is not None
    assert by_mod.data == {
        "group_id": ROOM, "sender_id": "@mod:example.org", "sender_name": "小助手", "message_id": "$1", "text": "群规请看公告",
        "msgtype": "text", "from_bot": False, "sender_is_staff": True, "group_name": "福利1群",
    }
    assert (by_bob.data["sender_is_staff"], by_bob.data["from_bot"], by_bob.dedupe_key) == (False, False, "$2")
    assert (by_bot.data["from_bot"], by_bot.data["msgtype"]) == (True, "notice")


def test_an_edit_is_judged_on_its_new_text_and_a_redacted_message_is_nothing(room):
    edit = message("@bob:example.org", "* 加我微信", event_id="$edit")
    edit["content"]["m.new_content"] = {"msgtype": "m.text", "body": "加我微信 13812345678"}
    edit["content"]["m.relates_to"] = {"rel_type": "m.replace", "event_id": "$orig"}
    mapped = map_event(edit, room, BOT)
    assert mapped is not None
    assert (mapped.data["text"], mapped.data["message_id"]) == ("加我微信 13812345678", "$edit")
    assert map_event(message("@bob:example.org", None), room, BOT) is None


def test_history_from_before_the_bot_joined_is_backfill_and_is_not_moderated(room):
    room.note_bot_join(member(BOT, "join", ts=TS + 5_000), BOT)
    old_message = map_event(message("@bob:example.org", "加我微信 13812345678", ts=TS), room, BOT)
    old_join = map_event(member("@bob:example.org", "join", ts=TS), room, BOT)
    new_message = map_event(message("@bob:example.org", "你好", ts=TS + 6_000), room, BOT)
    assert old_message is None
    assert old_join is not None and old_join.data["backfill"] is True
    assert new_message is not None and "backfill" not in new_message.data


def test_name_and_power_level_changes(room):
    renamed = map_event({"type": "m.room.name", "state_key": "", "sender": "@alice:example.org", "content": {"name": "福利2群"},
                         "unsigned": {"prev_content": {"name": "福利1群"}}, "event_id": "$n", "origin_server_ts": TS}, room, BOT)
    same = map_event({"type": "m.room.name", "state_key": "", "sender": "@alice:example.org", "content": {"name": "福利1群"},
                      "unsigned": {"prev_content": {"name": "福利1群"}}, "event_id": "$n2", "origin_server_ts": TS}, room, BOT)
    levels = map_event({"type": "m.room.power_levels", "state_key": "", "sender": "@alice:example.org", "event_id": "$p",
                        "origin_server_ts": TS, "content": {"users": {"@alice:example.org": 100, "@mod:example.org": 50,
                                                                      "@bob:example.org": 0, BOT: 50}}}, room, BOT)
    assert renamed is not None and levels is not None
    assert (renamed.kind, renamed.data) == (InboundKind.GROUP_UPDATED, {"group_id": ROOM, "group_name": "福利2群", "change": "name"})
    assert same is None
    assert levels.data == {"group_id": ROOM, "change": "power_levels", "roles": {"@alice:example.org": "owner", "@mod:example.org": "admin"}}


def test_state_tracking_names_levels_and_privileged_creators():
    room = RoomState(ROOM)
    room.apply({"type": "m.room.create", "state_key": "", "sender": "@alice:example.org", "content": {"room_version": "12"}})
    room.apply({"type": "m.room.name", "state_key": "", "sender": "@alice:example.org", "content": {"name": "新品群"}})
    room.apply({"type": "m.room.power_levels", "state_key": "", "sender": "@alice:example.org", "content": {"users_default": 10}})
    room.apply(member("@bob:example.org", "join", name="Bob"))
    room.apply(message("@bob:example.org", "not state"))
    assert (room.name, room.member_names, room.level("@bob:example.org")) == ("新品群", {"@bob:example.org": "Bob"}, 10)
    # in room version 12 the creator is above every power level and listed nowhere
    joined = map_event(member("@alice:example.org", "join"), room, BOT)
    assert joined is not None and (joined.data["power_level"], joined.data["role"]) == (100, "owner")


def test_encryption_is_reported_and_unknown_types_are_ignored(room):
    encrypted = map_event({"type": "m.room.encryption", "state_key": "", "sender": "@alice:example.org", "event_id": "$e",
                           "origin_server_ts": TS, "content": {"algorithm": "m.megolm.v1.aes-sha2"}}, room, BOT)
    assert encrypted is not None and encrypted.kind == InboundKind.UNKNOWN and "cannot read" in encrypted.data["warning"]
    assert map_event({"type": "m.reaction", "sender": "@bob:example.org", "event_id": "$r", "origin_server_ts": TS,
                      "content": {}}, room, BOT) is None
    assert map_event({"type": "m.room.message", "content": {"body": "x"}}, room, BOT) is None  # no id, no sender


def test_role_for_level():
    assert [role_for_level(n) for n in (0, 49, 50, 99, 100, 150)] == ["", "", "admin", "admin", "owner", "owner"]
