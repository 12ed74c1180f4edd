"""The Matrix channel adapter: one bot account per workspace; rooms are groups, power
levels are roles, kick/ban is removal, redaction is deletion.

Exactly-once out: every event the bot sends (messages, redactions) goes out with a
transaction id derived from the outbox idempotency key, and Synapse answers a repeated
``txnId`` from the same access token with the first event instead of sending again.
The calls that take no transaction id are made idempotent by checking the outcome:
a kick or invite refused because the member is already out (or in) counts as done, and
a room is created under an alias derived from the key, so a second create finds it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import httpx

from siyu.channels.base import Capability, ChannelAdapter, Command, CommandKind, SendResult, UnsupportedCommand
from siyu.channels.matrix.client import MatrixClient, MatrixError
from siyu.core import crypto

if TYPE_CHECKING:
    from siyu.channels.models import ChannelAccount

__all__ = ["MatrixAdapter", "client_for", "txn_id"]

MESSAGE_EVENT = "m.room.message"


def txn_id(idempotency_key: str) -> str:
    """The Matrix transaction id for an outbox idempotency key: stable across retries,
    short, and made only of characters that need no escaping."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]


def client_for(account: ChannelAccount, *, transport: httpx.BaseTransport | None = None, timeout: float = 30.0) -> MatrixClient:
    """A client logged in as the account's bot (the access token is stored encrypted)."""
    config = account.config or {}
    return MatrixClient(str(config.get("homeserver", "")), crypto.decrypt(str(config.get("access_token", ""))),
                        transport=transport, timeout=timeout)


class MatrixAdapter(ChannelAdapter):
    """Executes outbox commands against a Matrix homeserver as the account's bot."""

    kind = "matrix"
    capabilities = frozenset({
        Capability.READ_GROUP_MESSAGES,
        Capability.SEND_GROUP_MESSAGE,
        Capability.DELETE_MESSAGE,
        Capability.REMOVE_MEMBER,
        Capability.BAN_MEMBER,
        Capability.INVITE_MEMBER,
        Capability.SET_GROUP_TOPIC,
        Capability.CREATE_GROUP,
        Capability.DISMISS_GROUP,
    })

    def __init__(self, account: ChannelAccount, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(account)
        self._transport = transport

    def send(self, command: Command) -> SendResult:
        try:
            self.check(command)
        except UnsupportedCommand as exc:
            return SendResult.failed("unsupported", str(exc), transient=False)
        try:
            with client_for(self.account, transport=self._transport) as client:
                return SendResult.delivered(external_id=self._execute(client, command))
        except MatrixError as exc:
            if exc.transient:
                retry_after = exc.retry_after_ms / 1000 if exc.retry_after_ms is not None else None
                return SendResult.failed(exc.errcode, exc.message, transient=True, retry_after=retry_after)
            return SendResult.failed(exc.errcode, exc.message, transient=False)
        except (KeyError, TypeError, ValueError) as exc:
            return SendResult.failed("invalid_payload", f"{command.kind.value}: {type(exc).__name__}: {exc}", transient=False)

    # -- one method per command -----------------------------------------------------
    def _execute(self, client: MatrixClient, command: Command) -> str:
        payload, room, txn = command.payload, command.target, txn_id(command.idempotency_key)
        match command.kind:
            case CommandKind.SEND_MESSAGE:
                return client.send_event(room, MESSAGE_EVENT, message_content(payload), txn)
            case CommandKind.DELETE_MESSAGE:
                return client.redact(room, str(payload["message_id"]), txn, str(payload.get("reason", "")))
            case CommandKind.REMOVE_MEMBER:
                member = str(payload["member"])
                self._membership_change(client, "kick", room, member, str(payload.get("reason", "")), done={"leave", "ban"})
                return member
            case CommandKind.BAN_MEMBER:
                member = str(payload["member"])
                self._membership_change(client, "ban", room, member, str(payload.get("reason", "")), done={"ban"})
                return member
            case CommandKind.INVITE_MEMBER:
                member = str(payload["member"])
                self._membership_change(client, "invite", room, member, str(payload.get("reason", "")), done={"invite", "join"})
                return member
            case CommandKind.SET_GROUP_TOPIC:
                return client.put_state(room, "m.room.topic", {"topic": str(payload.get("topic", payload.get("text", "")))})
            case CommandKind.SET_GROUP_NAME:
                return client.put_state(room, "m.room.name", {"name": str(payload["name"])})
            case CommandKind.CREATE_GROUP:
                return self._create_room(client, payload, txn)
            case CommandKind.DISMISS_GROUP:
                return self._dismiss_room(client, room, payload, txn)
        raise ValueError(f"no Matrix mapping for {command.kind.value}")  # check() keeps this unreachable

    @staticmethod
    def _membership_change(client: MatrixClient, action: str, room: str, member: str, reason: str, *, done: set[str]) -> None:
        try:
            getattr(client, action)(room, member, reason)
        except MatrixError as exc:
            # A retry after a crash finds the change already made (Synapse refuses to
            # kick someone who is out or invite someone who is in): that is success.
            if exc.status == 403 and client.membership_of(room, member) in done:
                return
            raise

    def _dismiss_room(self, client: MatrixClient, room: str, payload: dict[str, Any], txn: str) -> str:
        """Matrix has no "dismiss": the bot posts the farewell, closes the room to joins
        (join rule ``invite``), removes everyone who is in or invited — except those at
        or above its own power level, whom Matrix does not let it remove (the room's
        creator, when the bot did not create it) — and leaves. A retry goes over the same
        steps (the farewell keeps its transaction id, people already out are skipped) and
        finds the room done once the bot has left."""
        bot = str((self.account.config or {}).get("user_id", ""))
        if client.membership_of(room, bot) in ("leave", "ban"):
            return room
        reason = str(payload.get("reason", "")) or "群已解散"
        if payload.get("farewell"):
            client.send_event(room, MESSAGE_EVENT, message_content({"text": str(payload["farewell"])}), f"{txn}-farewell")
        client.put_state(room, "m.room.join_rules", {"join_rule": "invite"})
        state = client.room_state(room)
        levels = next((e.get("content") or {} for e in state if e.get("type") == "m.room.power_levels"), {})
        users, default = levels.get("users") or {}, int(levels.get("users_default", 0))
        mine = int(users.get(bot, default))
        # room version 12 gives the creators unlimited power without listing them in the levels
        create = next((e for e in state if e.get("type") == "m.room.create"), {})
        creators = {str(create.get("sender", "")), *map(str, (create.get("content") or {}).get("additional_creators") or ())} - {bot}
        for event in state:
            member = str(event.get("state_key", ""))
            if (event.get("type") != "m.room.member" or member == bot or member in creators or int(users.get(member, default)) >= mine
                    or (event.get("content") or {}).get("membership") not in ("join", "invite")):
                continue
            try:
                self._membership_change(client, "kick", room, member, reason, done={"leave", "ban"})
            except MatrixError as exc:
                if exc.status != 403:
                    raise  # transient or unexpected: the whole dismissal is retried
                # refused for this member alone (a level changed meanwhile): the room still ends for everyone else
        client.leave(room, reason)
        return room

    def _create_room(self, client: MatrixClient, payload: dict[str, Any], txn: str) -> str:
        alias_name = f"siyu-{txn[:24]}"
        body: dict[str, Any] = {"preset": payload.get("preset", "private_chat"), "room_alias_name": alias_name}
        for key in ("name", "topic"):
            if payload.get(key):
                body[key] = str(payload[key])
        if payload.get("invite"):
            body["invite"] = [str(u) for u in payload["invite"]]
        try:
            return client.create_room(body)
        except MatrixError as exc:
            if exc.errcode != "M_ROOM_IN_USE":
                raise
        server = str((self.account.config or {}).get("user_id", "")).partition(":")[2]
        existing = client.resolve_alias(f"#{alias_name}:{server}")
        if existing is None:
            raise MatrixError(409, "M_ROOM_IN_USE", f"alias #{alias_name}:{server} is taken but does not resolve")
        return existing


def message_content(payload: dict[str, Any]) -> dict[str, Any]:
    """``m.room.message`` content for a siyu text. Bot messages are ``m.notice`` unless
    the payload asks otherwise (the Matrix convention: other bots never answer a notice);
    a ``mention`` becomes an intentional mention (``m.mentions``), which notifies that
    member however the client renders the text."""
    content: dict[str, Any] = {"msgtype": "m." + str(payload.get("msgtype") or "notice").removeprefix("m."), "body": str(payload["text"])}
    mention = payload.get("mention")
    content["m.mentions"] = {"user_ids": [str(mention)]} if mention else {}
    return content
