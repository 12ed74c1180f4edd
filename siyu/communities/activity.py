"""Per-member per-day activity counters (成员活跃度): messages sent, replies received,
@-mentions received and links shared, per group and local day (the workspace's time
zone). Roles and group health read them.

The inbound pipeline adds to the counters as messages arrive (one message at a time in
the per-event path, aggregated per ``(group, contact, day)`` in the batch processor);
:func:`siyu.communities.actions.do_rebuild_activity` recomputes them from the stored :class:`GroupMessage` rows, so
both must derive the same numbers from the same facts — :func:`message_facts` is that
one definition.

What a message contributes:

- ``messages``: +1 for the sender;
- ``links``: +1 for the sender when the message carries a URL or is a link /
  mini-program / contact card;
- ``replies_received``: +1 for the author of the message it quotes (``reply_to`` in the
  message data: Matrix ``m.in_reply_to``, a WeCom quote), not for replying to oneself;
- ``mentions``: +1 for every member it @-mentions (``mentions``: the members' channel
  ids, e.g. Matrix ``m.mentions.user_ids``), not for mentioning oneself.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from siyu.communities.models import Group, GroupMessage
from siyu.core.models import Workspace
from siyu.moderation.detectors import CARD_MSGTYPES

__all__ = ["UPSERT_SQL", "ActivityCounter", "MessageFacts", "count_stored_messages", "local_day", "mention_contacts", "message_data", "message_facts"]

_URL = re.compile(
    r"https?://|www\.|\b[a-z0-9][-a-z0-9]{0,62}(?:\.[a-z0-9][-a-z0-9]{0,62})*\.(?:com|cn|net|org|cc|top|xyz|vip|shop|link|me|io)\b",
    re.IGNORECASE,
)
MAX_MENTIONS = 50


@dataclass(frozen=True)
class MessageFacts:
    has_link: bool
    reply_to: str
    mentions: tuple[str, ...]


def message_data(event_data: Mapping[str, Any]) -> dict[str, Any]:
    """What a group message keeps from its inbound event: the sender's channel id and,
    when present, the quoted message and the @-mentioned members (so activity can be
    rebuilt from stored messages alone)."""
    data: dict[str, Any] = {"sender_external_id": event_data["sender_id"]}
    if reply_to := str(event_data.get("reply_to") or ""):
        data["reply_to"] = reply_to[:255]
    mentions = event_data.get("mentions")
    if isinstance(mentions, list | tuple) and mentions:
        data["mentions"] = [str(m)[:200] for m in dict.fromkeys(mentions)][:MAX_MENTIONS]
    return data


def message_facts(text: str, msgtype: str, data: Mapping[str, Any]) -> MessageFacts:
    """The activity facts of one message (pure)."""
    mentions = data.get("mentions") or ()
    return MessageFacts(
        has_link=msgtype in CARD_MSGTYPES or bool(_URL.search(text or "")),
        reply_to=str(data.get("reply_to") or ""),
        mentions=tuple(str(m) for m in mentions) if isinstance(mentions, list | tuple) else (),
    )


def local_day(when: dt.datetime, tz: zoneinfo.ZoneInfo) -> dt.date:
    return when.astimezone(tz).date()


class ActivityCounter:
    """Counter deltas aggregated in memory per ``(workspace, group, contact, day)``."""

    FIELDS = ("messages", "replies_received", "mentions", "links")

    def __init__(self) -> None:
        self.deltas: dict[tuple[int, int, int, dt.date], list[int]] = defaultdict(lambda: [0, 0, 0, 0])

    def add(self, workspace_id: int, group_id: int, contact_id: int, day: dt.date, field: int, n: int = 1) -> None:
        self.deltas[(workspace_id, group_id, contact_id, day)][field] += n

    def count_message(
        self, *, workspace_id: int, group_id: int, sender_id: int | None, day: dt.date, facts: MessageFacts,
        reply_author_id: int | None, mentioned_ids: Iterable[int],
    ) -> None:
        """Add one message's contribution (see the module docstring)."""
        if sender_id is not None:
            self.add(workspace_id, group_id, sender_id, day, 0)
            if facts.has_link:
                self.add(workspace_id, group_id, sender_id, day, 3)
        if reply_author_id is not None and reply_author_id != sender_id:
            self.add(workspace_id, group_id, reply_author_id, day, 1)
        for contact_id in dict.fromkeys(mentioned_ids):
            if contact_id != sender_id:
                self.add(workspace_id, group_id, contact_id, day, 2)

    def __bool__(self) -> bool:
        return bool(self.deltas)


UPSERT_SQL = (
    "INSERT INTO {table} (workspace_id, group_id, contact_id, day, messages, replies_received, mentions, links) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (group_id, contact_id, day) DO UPDATE SET "
    "messages = {table}.messages + excluded.messages, "
    "replies_received = {table}.replies_received + excluded.replies_received, "
    "mentions = {table}.mentions + excluded.mentions, "
    "links = {table}.links + excluded.links"
)


def mention_contacts(account_ids: Iterable[int], external_ids: Iterable[str]) -> dict[tuple[int, str], int]:
    from siyu.contacts.models import ChannelIdentity

    ids = set(external_ids)
    if not ids:
        return {}
    rows = ChannelIdentity.objects.filter(account_id__in=set(account_ids), external_id__in=ids).values_list(
        "account_id", "external_id", "contact_id", "contact__merged_into_id"
    )
    return {(account, ext): merged or contact for account, ext, contact, merged in rows}


def count_stored_messages(
    workspace: Workspace, group: Group | None = None, since: dt.date | dt.datetime | None = None
) -> tuple[ActivityCounter, int, dt.date | None]:
    """Count the stored group messages of a workspace (or one group) from the local day
    ``since`` on, with the same :func:`message_facts` the inbound path uses: ``(counter,
    messages read, since as a local day)``. Reads only; the rebuild action writes."""
    tz = workspace.tz
    if isinstance(since, dt.datetime):
        since = local_day(since, tz)
    messages = GroupMessage.objects.in_workspace(workspace)
    if group is not None:
        if group.workspace_id != workspace.pk:
            from siyu.core.errors import NotFound

            raise NotFound("group not found", code="group_not_found")
        messages = messages.filter(group=group)
    if since is not None:
        start = dt.datetime.combine(since, dt.time(), tzinfo=tz)
        messages = messages.filter(sent_at__gte=start)
    rows = list(messages.order_by("sent_at", "id").values_list(
        "group_id", "group__channel_account_id", "external_id", "sender_id", "text", "msgtype", "data", "sent_at"))
    authors = {(g, ext): sender for g, _a, ext, sender, *_ in rows}
    wanted = {(g, str((data or {}).get("reply_to"))) for g, _a, _e, _s, _t, _m, data, _w in rows if (data or {}).get("reply_to")}
    missing = {key for key in wanted if key not in authors}
    if missing:
        for g, ext, sender in GroupMessage.objects.in_workspace(workspace).filter(
            group_id__in={g for g, _ in missing}, external_id__in={e for _, e in missing}
        ).values_list("group_id", "external_id", "sender_id"):
            authors[(g, ext)] = sender
    mentioned = mention_contacts(
        {a for _g, a, *_ in rows if a is not None},
        {m for *_x, data, _w in rows for m in ((data or {}).get("mentions") or ())},
    )
    counter = ActivityCounter()
    for group_id, account_id, _ext, sender_id, text, msgtype, data, sent_at in rows:
        facts = message_facts(text, msgtype, data or {})
        counter.count_message(
            workspace_id=workspace.pk, group_id=group_id, sender_id=sender_id, day=local_day(sent_at, tz), facts=facts,
            reply_author_id=authors.get((group_id, facts.reply_to)) if facts.reply_to else None,
            mentioned_ids=[c for m in facts.mentions if (c := mentioned.get((account_id, m))) is not None],
        )
    return counter, len(rows), since
