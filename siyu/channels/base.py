"""The channel adapter contract (渠道适配器).

Modelled on httpx's transport: one small interface between siyu and a chat platform.
Inbound, an adapter turns what the platform sends into normalised
:class:`InboundEvent` objects; outbound, it executes one typed :class:`Command` and
answers a :class:`SendResult`. Each adapter declares its :class:`Capability` set, and
features check it before they ask for something the platform cannot do — where WeCom
cannot remove a customer-group member, moderation creates a staff task instead.

A minimal adapter::

    class EchoAdapter(ChannelAdapter):
        kind = "echo"
        capabilities = frozenset({Capability.SEND_GROUP_MESSAGE})

        def send(self, command: Command) -> SendResult:
            print(command.payload["text"])
            return SendResult.delivered(external_id="1")
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from siyu.channels.models import ChannelAccount

__all__ = [
    "Capability",
    "ChannelAdapter",
    "Command",
    "CommandKind",
    "InboundEvent",
    "InboundKind",
    "SendResult",
    "UnsupportedCommand",
]


class Capability(StrEnum):
    READ_GROUP_MESSAGES = "read_group_messages"
    REMOVE_MEMBER = "remove_member"
    DELETE_MESSAGE = "delete_message"
    BAN_MEMBER = "ban_member"
    INVITE_MEMBER = "invite_member"
    SEND_WELCOME = "send_welcome"
    SEND_DIRECT_MESSAGE = "send_direct_message"
    SEND_GROUP_MESSAGE = "send_group_message"
    MASS_MESSAGE_TASK = "mass_message_task"  # staff must confirm in the app (WeCom 群发)
    CREATE_CONTACT_CODE = "create_contact_code"  # 「联系我」 live code
    CREATE_GROUP_CODE = "create_group_code"  # 「加入群聊」 join way
    CREATE_GROUP = "create_group"
    DISMISS_GROUP = "dismiss_group"
    SET_GROUP_TOPIC = "set_group_topic"
    SYNC_TAGS = "sync_tags"
    TRANSFER_CUSTOMERS = "transfer_customers"  # 在职/离职继承


class InboundKind(StrEnum):
    """Normalised inbound kinds and the ``data`` keys each carries (``?`` = optional).

    - contact_added: external_id, staff_id?, name?, state?, welcome_code?, unionid?
    - contact_updated: external_id, staff_id?
    - contact_deleted: external_id, staff_id?, by ("staff" | "customer")
    - transfer_failed: external_id, staff_id?, fail_reason?
    - group_created / group_updated: group_id, group_name?, change?, join_scene?, member_change_count?
    - group_dismissed: group_id
    - member_joined: group_id, member_id, member_name?, group_name?, join_source?, state?
    - member_left: group_id, member_id, member_name?, reason? ("left" | "kicked" | "banned")
    - message: sender_id, message_id, text, msgtype?, group_id? (absent for a direct message),
      sender_name?, group_name?, from_bot?, sender_is_staff?
    - tags_changed: change (create | update | delete | shuffle), tag_id?, tag_group_id?
    """

    CONTACT_ADDED = "contact_added"
    CONTACT_UPDATED = "contact_updated"
    CONTACT_DELETED = "contact_deleted"  # by staff or by the customer (data says which)
    TRANSFER_FAILED = "transfer_failed"
    GROUP_CREATED = "group_created"
    GROUP_UPDATED = "group_updated"
    GROUP_DISMISSED = "group_dismissed"
    MEMBER_JOINED = "member_joined"
    MEMBER_LEFT = "member_left"
    MESSAGE = "message"
    TAGS_CHANGED = "tags_changed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class InboundEvent:
    """A platform event in siyu's terms. ``dedupe_key`` is what makes a replay a no-op:
    WeCom msgid (or FromUserName+CreateTime+Event), the Matrix event id."""

    kind: InboundKind
    dedupe_key: str
    occurred_at: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)


class CommandKind(StrEnum):
    SEND_MESSAGE = "send_message"  # to a contact (direct) or a group
    SEND_WELCOME = "send_welcome"
    REMOVE_MEMBER = "remove_member"
    DELETE_MESSAGE = "delete_message"
    BAN_MEMBER = "ban_member"
    INVITE_MEMBER = "invite_member"
    SET_GROUP_TOPIC = "set_group_topic"
    SET_GROUP_NAME = "set_group_name"
    CREATE_GROUP = "create_group"
    DISMISS_GROUP = "dismiss_group"  # payload: farewell (optional, posted first), reason
    MASS_MESSAGE_TASK = "mass_message_task"
    MARK_TAGS = "mark_tags"


#: what each command needs from the adapter
COMMAND_CAPABILITY: dict[CommandKind, Capability] = {
    CommandKind.SEND_WELCOME: Capability.SEND_WELCOME,
    CommandKind.REMOVE_MEMBER: Capability.REMOVE_MEMBER,
    CommandKind.DELETE_MESSAGE: Capability.DELETE_MESSAGE,
    CommandKind.BAN_MEMBER: Capability.BAN_MEMBER,
    CommandKind.INVITE_MEMBER: Capability.INVITE_MEMBER,
    CommandKind.SET_GROUP_TOPIC: Capability.SET_GROUP_TOPIC,
    CommandKind.SET_GROUP_NAME: Capability.SET_GROUP_TOPIC,
    CommandKind.CREATE_GROUP: Capability.CREATE_GROUP,
    CommandKind.DISMISS_GROUP: Capability.DISMISS_GROUP,
    CommandKind.MASS_MESSAGE_TASK: Capability.MASS_MESSAGE_TASK,
    CommandKind.MARK_TAGS: Capability.SYNC_TAGS,
}


@dataclass(frozen=True)
class Command:
    """One outbound action. ``idempotency_key`` is passed to the platform where it has a
    place for one (Matrix txnId, sandbox delivery key) so that a retry after a crash is
    recognised there as the same send."""

    kind: CommandKind
    idempotency_key: str
    target: str  # external id of the group (room) or contact
    payload: dict[str, Any] = field(default_factory=dict)

    def required_capability(self) -> Capability:
        if self.kind == CommandKind.SEND_MESSAGE:
            return Capability.SEND_GROUP_MESSAGE if self.payload.get("to") == "group" else Capability.SEND_DIRECT_MESSAGE
        return COMMAND_CAPABILITY[self.kind]


@dataclass(frozen=True)
class SendResult:
    ok: bool
    external_id: str = ""
    error_code: str = ""
    error: str = ""
    transient: bool = False  # worth retrying (network, rate limit, token expired)
    retry_after: float | None = None

    @classmethod
    def delivered(cls, external_id: str = "") -> SendResult:
        return cls(ok=True, external_id=external_id)

    @classmethod
    def failed(cls, code: str, message: str, *, transient: bool, retry_after: float | None = None) -> SendResult:
        return cls(ok=False, error_code=code, error=message, transient=transient, retry_after=retry_after)


class UnsupportedCommand(Exception):
    """Raised by :meth:`ChannelAdapter.check` when an adapter lacks the capability."""


class ChannelAdapter(ABC):
    """Base class of every adapter. Subclasses set ``kind`` and ``capabilities`` and
    implement :meth:`send`; webhook-style adapters also turn requests into events."""

    kind: ClassVar[str] = ""
    capabilities: ClassVar[frozenset[Capability]] = frozenset()

    def __init__(self, account: ChannelAccount) -> None:
        self.account = account

    def can(self, capability: Capability) -> bool:
        return capability in self.capabilities

    def check(self, command: Command) -> None:
        needed = command.required_capability()
        if not self.can(needed):
            raise UnsupportedCommand(f"{self.kind} cannot {needed.value}")

    @abstractmethod
    def send(self, command: Command) -> SendResult:
        """Execute one command against the platform. Must not raise for platform errors:
        answer ``SendResult.failed(...)`` with ``transient`` set for retryable ones."""
