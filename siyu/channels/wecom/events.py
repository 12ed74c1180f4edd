"""Decrypted WeCom callback XML → :class:`~siyu.channels.base.InboundEvent`.

The field names are the documented ones (「客户联系」 callbacks): ``ToUserName``,
``FromUserName``, ``CreateTime``, ``MsgType`` = ``event`` and

- ``Event=change_external_contact`` with ``ChangeType`` ``add_external_contact`` /
  ``add_half_external_contact`` / ``edit_external_contact`` / ``del_external_contact`` /
  ``del_follow_user`` / ``transfer_fail`` (``UserID``, ``ExternalUserID``, ``State``,
  ``WelcomeCode``, ``Source``, ``FailReason``);
- ``Event=change_external_chat`` with ``ChangeType`` ``create`` / ``update`` /
  ``dismiss`` (``ChatId``, ``UpdateDetail``, ``JoinScene``, ``QuitScene``,
  ``MemChangeCnt``, ``MemChangeList`` of ``Item``, ``LastMemVer``, ``CurMemVer``);
- ``Event=change_external_tag`` with ``ChangeType`` ``create`` / ``update`` / ``delete`` /
  ``shuffle`` (``Id``, ``TagType``, ``StrategyId``).

Anything else is a valid but unknown event: it becomes ``InboundKind.UNKNOWN`` (kept,
visible, never processed).

XML safety: ``defusedxml`` is not a dependency. WeCom never sends a DTD, so a payload
containing ``<!DOCTYPE`` or ``<!ENTITY`` is refused before parsing — that removes entity
expansion (billion laughs) and external entities altogether — and the size is capped.
What remains is plain element parsing by the standard library's expat.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from siyu.channels.base import InboundEvent, InboundKind

__all__ = ["MAX_XML_BYTES", "Envelope", "MalformedXml", "parse_envelope", "parse_xml", "to_inbound"]

#: A customer-group update lists every changed member id (~32 bytes each); 256 KiB is far
#: above any documented payload and small enough that parsing is instant.
MAX_XML_BYTES = 256 * 1024
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

#: groupchat JoinScene / join_scene values (「客户群变更事件」, 「获取客户群详情」)
JOIN_SCENES = {1: "invited", 2: "invite_link", 3: "qr_code"}
#: QuitScene: 1 left by themselves, 2 removed by the owner or an admin
QUIT_REASONS = {1: "left", 2: "kicked"}


class MalformedXml(ValueError):
    """The payload is not the small, DTD-free XML document WeCom sends."""


@dataclass(frozen=True)
class Envelope:
    """The outer (still encrypted) POST body: ``<xml><ToUserName/><Encrypt/><AgentID/></xml>``."""

    to_user: str
    encrypt: str
    agent_id: str


def parse_xml(payload: str | bytes) -> dict[str, Any]:
    """A flat dict of the root's children: text for leaves, a list of the children's
    texts for containers (``MemChangeList`` → ``["id1", "id2"]``)."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    if len(data) > MAX_XML_BYTES:
        raise MalformedXml(f"payload larger than {MAX_XML_BYTES} bytes")
    if _DTD.search(data):
        raise MalformedXml("payload declares a DTD or entities")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MalformedXml(f"not XML: {exc}") from exc
    if root.tag != "xml":
        raise MalformedXml(f"root element is <{root.tag}>, expected <xml>")
    fields: dict[str, Any] = {}
    for child in root:
        if len(child):
            fields[child.tag] = [(item.text or "").strip() for item in child]
        else:
            fields[child.tag] = (child.text or "").strip()
    return fields


def parse_envelope(body: bytes) -> Envelope:
    fields = parse_xml(body)
    encrypt = fields.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise MalformedXml("no <Encrypt> element")
    return Envelope(to_user=str(fields.get("ToUserName", "")), encrypt=encrypt, agent_id=str(fields.get("AgentID", "")))


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name, "")
    return value if isinstance(value, str) else ""


def _int(fields: dict[str, Any], name: str) -> int | None:
    try:
        return int(_text(fields, name))
    except ValueError:
        return None


def _members(fields: dict[str, Any]) -> list[str]:
    value = fields.get("MemChangeList")
    if isinstance(value, list):
        return [v for v in value if v]
    # Some deliveries carry the list as one comma-separated text instead of <Item>s.
    return [v.strip() for v in str(value or "").split(",") if v.strip()]


def _occurred_at(fields: dict[str, Any]) -> dt.datetime:
    seconds = _int(fields, "CreateTime")
    if seconds is None:
        return timezone.now()
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)


def dedupe_key(fields: dict[str, Any]) -> str:
    """``MsgId`` when present; otherwise FromUserName + CreateTime + Event + ChangeType +
    the subject (ExternalUserID / ChatId / tag Id), plus the fields that tell two
    different events of the same second apart (the staff member, the group change and
    its member version). A retry carries the same fields, so it gets the same key."""
    msg_id = _text(fields, "MsgId")
    if msg_id:
        return f"msgid:{msg_id}"
    subject = _text(fields, "ExternalUserID") or _text(fields, "ChatId") or _text(fields, "Id")
    parts = [
        _text(fields, "FromUserName"),
        _text(fields, "CreateTime"),
        _text(fields, "Event"),
        _text(fields, "ChangeType"),
        subject,
        _text(fields, "UserID"),
        _text(fields, "UpdateDetail"),
        _text(fields, "CurMemVer"),
        _text(fields, "TagType"),
    ]
    return "evt:" + ":".join(parts).rstrip(":")


def _contact_event(change: str, fields: dict[str, Any]) -> tuple[InboundKind, dict[str, Any]]:
    # A missing id is left out rather than sent empty: the handler then fails the event
    # visibly ("lacks field") instead of creating a contact without an identity.
    base: dict[str, Any] = {}
    if external_id := _text(fields, "ExternalUserID"):
        base["external_id"] = external_id
    if staff := _text(fields, "UserID"):
        base["staff_id"] = staff
    if change in ("add_external_contact", "add_half_external_contact"):
        if state := _text(fields, "State"):
            base["state"] = state
        if code := _text(fields, "WelcomeCode"):
            base["welcome_code"] = code
        if change == "add_half_external_contact":
            base["half"] = True  # the customer added the staff member, who has not confirmed yet
        return InboundKind.CONTACT_ADDED, base
    if change == "edit_external_contact":
        return InboundKind.CONTACT_UPDATED, base
    if change == "del_external_contact":
        if source := _text(fields, "Source"):
            base["source"] = source  # DELETE_BY_TRANSFER: removed by a customer transfer, not churn
        return InboundKind.CONTACT_DELETED, {**base, "by": "staff"}
    if change == "del_follow_user":
        return InboundKind.CONTACT_DELETED, {**base, "by": "customer"}
    if change == "transfer_fail":
        return InboundKind.TRANSFER_FAILED, {**base, "fail_reason": _text(fields, "FailReason")}
    return InboundKind.UNKNOWN, {}


def _chat_event(change: str, fields: dict[str, Any]) -> tuple[InboundKind, dict[str, Any]]:
    group: dict[str, Any] = {"group_id": chat_id} if (chat_id := _text(fields, "ChatId")) else {}
    if change == "create":
        return InboundKind.GROUP_CREATED, group
    if change == "dismiss":
        return InboundKind.GROUP_DISMISSED, group
    if change == "update":
        data: dict[str, Any] = {**group, "change": _text(fields, "UpdateDetail")}
        join_scene, quit_scene, count = _int(fields, "JoinScene"), _int(fields, "QuitScene"), _int(fields, "MemChangeCnt")
        if join_scene is not None:
            data["join_scene"] = join_scene
        if quit_scene is not None:
            data["quit_scene"] = quit_scene
        if count is not None:
            data["member_change_count"] = count
        if members := _members(fields):
            data["member_ids"] = members
        if version := _text(fields, "CurMemVer"):
            data["member_version"] = version
        return InboundKind.GROUP_UPDATED, data
    return InboundKind.UNKNOWN, {}


def _tag_event(change: str, fields: dict[str, Any]) -> tuple[InboundKind, dict[str, Any]]:
    if change not in ("create", "update", "delete", "shuffle"):
        return InboundKind.UNKNOWN, {}
    data: dict[str, Any] = {"change": change}
    tag_type, tag_id = _text(fields, "TagType"), _text(fields, "Id")
    # A shuffle (re-ordering) names the tag group whose tags moved and has no TagType.
    if tag_id and (tag_type == "tag_group" or (change == "shuffle" and not tag_type)):
        data["tag_group_id"] = tag_id
    elif tag_id:
        data["tag_id"] = tag_id
    if strategy := _text(fields, "StrategyId"):
        data["strategy_id"] = strategy
    return InboundKind.TAGS_CHANGED, data


def to_inbound(fields: dict[str, Any]) -> InboundEvent:
    """Map one decrypted callback to siyu's normalised event (UNKNOWN when the event is
    valid but not one siyu acts on)."""
    event, change = _text(fields, "Event"), _text(fields, "ChangeType")
    kind: InboundKind = InboundKind.UNKNOWN
    data: dict[str, Any] = {}
    if _text(fields, "MsgType") == "event":
        if event == "change_external_contact":
            kind, data = _contact_event(change, fields)
        elif event == "change_external_chat":
            kind, data = _chat_event(change, fields)
        elif event == "change_external_tag":
            kind, data = _tag_event(change, fields)
    if kind == InboundKind.UNKNOWN:
        data = {"msgtype": _text(fields, "MsgType"), "event": event, "change_type": change}
    return InboundEvent(kind=kind, dedupe_key=dedupe_key(fields), occurred_at=_occurred_at(fields), data=data)
