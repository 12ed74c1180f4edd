"""Matrix event JSON → siyu :class:`InboundEvent` (pure: no database, no network).

What maps to what:

- a room is a group: ``group_id`` is the room id, ``group_name`` the room name;
- ``m.room.member`` join → ``member_joined`` (with the member's ``power_level`` and
  ``role``); leave by the member → ``member_left`` reason ``left``, leave set by someone
  else → ``kicked``, ban → ``banned``. Display-name changes (join → join), invitations
  and rejected invitations are not membership changes and map to nothing;
- the bot's own join → ``group_created`` (the room becomes a group in siyu); the bot
  removed from a room → ``unknown`` (kept as ignored in the inbox, visible to operators);
- ``m.room.message`` → ``message`` (edits carry the new text; ``from_bot`` for the bot's
  own messages, ``sender_is_staff`` when the sender's power level is ≥ 50);
- ``m.room.name`` → ``group_updated`` with the new name; ``m.room.power_levels`` →
  ``group_updated`` with ``change: "power_levels"`` and the ``roles`` it grants;
- ``m.room.encryption`` → ``unknown`` with a warning: the bot cannot read E2EE rooms.

The dedupe key is always the Matrix event id, so a replayed sync is a no-op.

Events older than the bot's own join in that room are history the bot was not there
for: they are marked ``backfill`` and messages among them are not mapped at all, so
that nobody is moderated (removed, redacted) for what they wrote before the bot came.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from siyu.channels.base import InboundEvent, InboundKind

__all__ = ["ADMIN_LEVEL", "OWNER_LEVEL", "RoomState", "map_event", "role_for_level"]

OWNER_LEVEL = 100
ADMIN_LEVEL = 50
#: room versions 12+ give the creators ("privileged creators") a power above any number
CREATOR_LEVEL = 2**53


def role_for_level(level: int) -> str:
    """Matrix power level → siyu member role: ``owner`` (群主) at 100, ``admin`` (管理员)
    from 50, otherwise no role (``""``)."""
    if level >= OWNER_LEVEL:
        return "owner"
    if level >= ADMIN_LEVEL:
        return "admin"
    return ""


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _privileged_creators(room_version: str) -> bool:
    return room_version.isdigit() and int(room_version) >= 12


@dataclass
class RoomState:
    """What the mapping needs to know about one room, kept current by :meth:`apply`
    as state events go by."""

    room_id: str
    name: str = ""
    power_levels: dict[str, Any] = field(default_factory=dict)
    creators: frozenset[str] = frozenset()
    member_names: dict[str, str] = field(default_factory=dict)
    #: origin_server_ts (ms) of the bot's latest join; earlier events are backfill
    bot_joined_ts: int | None = None

    def apply(self, event: Mapping[str, Any]) -> None:
        if "state_key" not in event:
            return
        kind, content, key = event.get("type"), event.get("content") or {}, str(event.get("state_key", ""))
        if kind == "m.room.name":
            self.name = str(content.get("name") or "")
        elif kind == "m.room.power_levels":
            self.power_levels = dict(content)
        elif kind == "m.room.create":
            if _privileged_creators(str(content.get("room_version", "1"))):
                extra = content.get("additional_creators") or []
                self.creators = frozenset([str(event.get("sender", "")), *(str(u) for u in extra if isinstance(u, str))])
        elif kind == "m.room.member":
            if content.get("membership") == "join" and content.get("displayname"):
                self.member_names[key] = str(content["displayname"])

    def note_bot_join(self, event: Mapping[str, Any], bot_user_id: str) -> None:
        content = event.get("content") or {}
        if event.get("type") == "m.room.member" and event.get("state_key") == bot_user_id and content.get("membership") == "join":
            ts = _int(event.get("origin_server_ts"))
            if self.bot_joined_ts is None or ts > self.bot_joined_ts:
                self.bot_joined_ts = ts

    def level(self, user_id: str) -> int:
        if user_id in self.creators:
            return CREATOR_LEVEL
        users = self.power_levels.get("users") or {}
        if user_id in users:
            return _int(users[user_id])
        return _int(self.power_levels.get("users_default"), 0)

    def is_backfill(self, event: Mapping[str, Any]) -> bool:
        return self.bot_joined_ts is not None and _int(event.get("origin_server_ts")) < self.bot_joined_ts


def occurred_at(event: Mapping[str, Any]) -> dt.datetime:
    ts = _int(event.get("origin_server_ts"))
    return dt.datetime.fromtimestamp(ts / 1000, tz=dt.UTC)


def _prev_content(event: Mapping[str, Any]) -> Mapping[str, Any]:
    unsigned = event.get("unsigned") or {}
    return unsigned.get("prev_content") or event.get("prev_content") or {}


def _inbound(kind: InboundKind, event: Mapping[str, Any], data: dict[str, Any]) -> InboundEvent:
    return InboundEvent(kind=kind, dedupe_key=str(event["event_id"]), occurred_at=occurred_at(event), data=data)


def map_event(event: Mapping[str, Any], room: RoomState, bot_user_id: str) -> InboundEvent | None:
    """The siyu event for one Matrix room event, or None when it means nothing to siyu.
    ``room`` must hold the state *before* this event; the caller applies the event to
    it afterwards."""
    if not event.get("event_id") or not event.get("sender"):
        return None
    kind = event.get("type")
    if kind == "m.room.member":
        return _map_member(event, room, bot_user_id)
    if kind == "m.room.message":
        return _map_message(event, room, bot_user_id)
    if kind == "m.room.name" and "state_key" in event:
        name = str((event.get("content") or {}).get("name") or "")
        if not name or name == str(_prev_content(event).get("name") or ""):
            return None
        return _inbound(InboundKind.GROUP_UPDATED, event, {"group_id": room.room_id, "group_name": name[:100], "change": "name"})
    if kind == "m.room.power_levels" and "state_key" in event:
        users = (event.get("content") or {}).get("users") or {}
        roles = {str(user): role for user, level in users.items() if user != bot_user_id and (role := role_for_level(_int(level)))}
        return _inbound(InboundKind.GROUP_UPDATED, event, {"group_id": room.room_id, "change": "power_levels", "roles": roles})
    if kind == "m.room.encryption" and "state_key" in event:
        return _inbound(InboundKind.UNKNOWN, event, {
            "group_id": room.room_id, "event_type": kind,
            "warning": "end-to-end encryption is on in this room: the bot cannot read its messages",
        })
    return None


def _map_member(event: Mapping[str, Any], room: RoomState, bot_user_id: str) -> InboundEvent | None:
    member = str(event.get("state_key", ""))
    if not member:
        return None
    content = event.get("content") or {}
    membership = content.get("membership")
    before = _prev_content(event).get("membership")
    if member == bot_user_id:
        if membership == "join" and before != "join":
            data: dict[str, Any] = {"group_id": room.room_id}
            if room.name:
                data["group_name"] = room.name[:100]
            return _inbound(InboundKind.GROUP_CREATED, event, data)
        if membership in ("leave", "ban") and event.get("sender") != bot_user_id:
            return _inbound(InboundKind.UNKNOWN, event, {
                "group_id": room.room_id, "event_type": "bot_removed", "by": str(event.get("sender")), "membership": membership,
            })
        return None
    name = str(content.get("displayname") or room.member_names.get(member) or "")
    if membership == "join":
        if before == "join":  # a display name or avatar change
            return None
        level = room.level(member)
        data = {
            "group_id": room.room_id, "member_id": member, "join_source": "invite" if before == "invite" else "join",
            "power_level": min(level, OWNER_LEVEL), "role": role_for_level(level),
        }
        if name:
            data["member_name"] = name[:100]
        if room.name:
            data["group_name"] = room.name[:100]
        if room.is_backfill(event):
            data["backfill"] = True
        return _inbound(InboundKind.MEMBER_JOINED, event, data)
    if membership in ("leave", "ban") and before == "join":
        if membership == "ban":
            reason = "banned"
        else:
            reason = "left" if event.get("sender") == member else "kicked"
        data = {"group_id": room.room_id, "member_id": member, "reason": reason}
        if name:
            data["member_name"] = name[:100]
        if reason != "left":
            data["by"] = str(event.get("sender"))
        return _inbound(InboundKind.MEMBER_LEFT, event, data)
    return None


def _map_message(event: Mapping[str, Any], room: RoomState, bot_user_id: str) -> InboundEvent | None:
    if room.is_backfill(event):
        return None
    content = event.get("content") or {}
    relates = content.get("m.relates_to") or {}
    if relates.get("rel_type") == "m.replace" and isinstance(content.get("m.new_content"), dict):
        # an edit can turn a harmless message into an advert: it is judged on its new text
        content = content["m.new_content"]
    body = content.get("body")
    if not isinstance(body, str):
        return None  # redacted (empty content) or not a message we can read
    sender = str(event["sender"])
    data: dict[str, Any] = {
        "group_id": room.room_id, "sender_id": sender, "message_id": str(event["event_id"]), "text": body,
        "msgtype": str(content.get("msgtype") or "m.text").removeprefix("m."),
        "from_bot": sender == bot_user_id, "sender_is_staff": room.level(sender) >= ADMIN_LEVEL,
    }
    if name := room.member_names.get(sender):
        data["sender_name"] = name[:100]
    if room.name:
        data["group_name"] = room.name[:100]
    # the activity counters read these: a quoted message's author gets a reply received,
    # every @-mentioned member a mention
    reply_to = (relates.get("m.in_reply_to") or {}).get("event_id") if isinstance(relates.get("m.in_reply_to"), dict) else None
    if isinstance(reply_to, str) and reply_to:
        data["reply_to"] = reply_to
    mentioned = (content.get("m.mentions") or {}).get("user_ids") if isinstance(content.get("m.mentions"), dict) else None
    if isinstance(mentioned, list):
        if users := [u for u in dict.fromkeys(mentioned) if isinstance(u, str) and u]:
            data["mentions"] = users
    return _inbound(InboundKind.MESSAGE, event, data)
