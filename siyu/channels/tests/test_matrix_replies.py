"""Matrix messages carry what the activity counters read: the quoted message
(``m.relates_to`` → ``m.in_reply_to``) and the @-mentioned members (``m.mentions``)."""

from siyu.channels.matrix.events import RoomState, map_event

ROOM = "!room:example.org"
BOT = "@siyu:example.org"
TS = 1_772_416_800_000


def _message(content):
    return {"type": "m.room.message", "sender": "@bob:example.org", "content": {"msgtype": "m.text", **content},
            "event_id": "$reply", "origin_server_ts": TS}


def test_a_reply_names_the_quoted_event_and_mentions_name_the_members():
    room = RoomState(ROOM, name="福利1群")

    mapped = map_event(_message({
        "body": "> <@ann:example.org> 多少钱\n\n@ann 看公告",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$question"}},
        "m.mentions": {"user_ids": ["@ann:example.org", "@cat:example.org", "@ann:example.org"]},
    }), room, BOT)

    assert mapped is not None
    assert (mapped.data["reply_to"], mapped.data["mentions"]) == ("$question", ["@ann:example.org", "@cat:example.org"])


def test_a_plain_message_has_neither_and_malformed_relations_are_ignored():
    room = RoomState(ROOM, name="福利1群")

    plain = map_event(_message({"body": "大家好"}), room, BOT)
    odd = map_event(_message({"body": "大家好", "m.relates_to": {"m.in_reply_to": "$x"}, "m.mentions": {"user_ids": "@ann:example.org"}}),
                    room, BOT)
    empty = map_event(_message({"body": "大家好", "m.mentions": {"user_ids": []}}), room, BOT)

    assert plain is not None and odd is not None and empty is not None
    assert [("reply_to" in m.data, "mentions" in m.data) for m in (plain, odd, empty)] == [(False, False)] * 3
