"""What each normalised inbound event does, through the domain actions. Called by the
inbox inside the transaction that marks the event processed."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any, cast

from django.utils import timezone

from siyu.channels.actions import do_create_staff_task
from siyu.channels.base import Capability, Command, CommandKind, InboundKind
from siyu.channels.inbox import insert_new_rows, insert_rows, select_in, select_pairs
from siyu.channels.models import ChannelAccount, InboxEvent
from siyu.channels.registry import adapter_for
from siyu.communities.actions import (
    do_add_member,
    do_close_removal_task,
    do_ensure_group,
    do_record_group_dismissed,
    do_record_group_message,
    do_remove_member,
    do_set_member_role,
)
from siyu.communities.activity import ActivityCounter, local_day, message_data, message_facts
from siyu.communities.models import Group, GroupMessage, Membership, Threshold
from siyu.contacts.actions import do_ensure_contact_for_identity, do_record_event
from siyu.contacts.models import Contact

DEFAULT_WELCOME = "你好{name}，欢迎添加！有任何问题随时找我～"
WELCOME_CODE_TTL = dt.timedelta(seconds=20)  # WeCom: a welcome_code is usable for 20 s, once

Handler = Callable[[ChannelAccount, InboxEvent], str]


def split_state(state: str) -> tuple[str, str]:
    """A 「联系我」/join-way ``state`` (≤ 30 chars) names the source: ``channel`` or
    ``channel:campaign``. A live-code state (``lc:<code>``) or a fission sharer's state
    (``fx:<invite>``) resolves to the code's acquisition channel and campaign."""
    from siyu.acquisition.queries import resolve_state

    if (resolved := resolve_state(state)) is not None:
        return resolved
    channel, _, campaign = (state or "").partition(":")
    return channel[:64], campaign[:64]


def _contact(account: ChannelAccount, event: InboxEvent, id_key: str, name_key: str) -> Contact:
    data = event.data
    channel, campaign = split_state(data.get("state", ""))
    contact, _ = do_ensure_contact_for_identity(
        account, str(data[id_key]), name=data.get(name_key, ""), unionid=data.get("unionid", ""),
        source_channel=channel, source_campaign=campaign, created_at=event.occurred_at,
    )
    return contact


def _arrived(contact: Contact, event: InboxEvent) -> None:
    """A contact came in through a live code or a sharer's invite: link the scan, apply
    the channel's tags, record the invite (the ``state`` names the code)."""
    if event.data.get("state"):
        from siyu.acquisition.actions import do_record_arrival

        do_record_arrival(contact, state=event.data["state"], occurred_at=event.occurred_at)


def _left(contact: Contact) -> None:
    """An invitee who leaves (group or staff contact) within the hold period earns the
    sharer nothing: pending invites are clawed back."""
    from siyu.campaigns.actions import do_invitee_left

    do_invitee_left(contact)


def on_contact_added(account: ChannelAccount, event: InboxEvent) -> str:
    contact = _contact(account, event, "external_id", "name")
    _arrived(contact, event)
    do_record_event(contact, "channel_added", idempotency_key=f"in:{event.pk}", occurred_at=event.occurred_at,
                    data={"staff": event.data.get("staff_id", ""), "state": event.data.get("state", "")})
    welcome_code = event.data.get("welcome_code")
    if welcome_code and adapter_for(account).can(Capability.SEND_WELCOME):
        from siyu.channels.outbox import do_enqueue

        text = (account.config or {}).get("welcome_message") or DEFAULT_WELCOME
        # WeCom add events carry no customer name; never greet someone by their raw id.
        name = contact.name if contact.name != contact_external_id(event) else ""
        do_enqueue(account, Command(
            CommandKind.SEND_WELCOME, f"welcome:{account.pk}:{welcome_code}", contact_external_id(event),
            {"welcome_code": welcome_code, "text": text.format_map(_Safe(name=name)),
             "expires_at": (event.occurred_at + WELCOME_CODE_TTL).isoformat()},
        ))
    return "ok"


def contact_external_id(event: InboxEvent) -> str:
    return str(event.data.get("external_id", ""))


def on_contact_updated(account: ChannelAccount, event: InboxEvent) -> str:
    contact = _contact(account, event, "external_id", "name")
    do_record_event(contact, "channel_updated", idempotency_key=f"in:{event.pk}", occurred_at=event.occurred_at, data=event.data)
    return "ok"


def on_contact_deleted(account: ChannelAccount, event: InboxEvent) -> str:
    contact = _contact(account, event, "external_id", "name")
    by = event.data.get("by", "customer")
    do_record_event(contact, f"deleted_by_{by}", idempotency_key=f"in:{event.pk}", occurred_at=event.occurred_at,
                    data={"staff": event.data.get("staff_id", "")})
    _left(contact)
    return "ok"


def on_transfer_failed(account: ChannelAccount, event: InboxEvent) -> str:
    do_create_staff_task(
        account.workspace_id, kind="transfer_failed", account=account, dedupe_key=f"in:{event.pk}",
        title=f"客户 {event.data.get('external_id', '')} 转接失败（{event.data.get('fail_reason', '')}）", detail=event.data,
    )
    return "ok"


def on_group_created(account: ChannelAccount, event: InboxEvent) -> str:
    do_ensure_group(account, str(event.data["group_id"]), name=event.data.get("group_name", ""), created_at=event.occurred_at)
    return "ok"


def on_group_dismissed(account: ChannelAccount, event: InboxEvent) -> str:
    group, _ = do_ensure_group(account, str(event.data["group_id"]))
    do_record_group_dismissed(group)
    return "ok"


def on_member_joined(account: ChannelAccount, event: InboxEvent) -> str:
    data = event.data
    group, _ = do_ensure_group(account, str(data["group_id"]), name=data.get("group_name", ""))
    if group.archived_at is not None:
        return "group archived"
    contact = _contact(account, event, "member_id", "member_name")
    _arrived(contact, event)
    role = data.get("role") if data.get("role") in ("owner", "admin") else None
    membership, created = do_add_member(group, contact, None, join_source=data.get("join_source", "") or data.get("state", ""),
                                        joined_at=event.occurred_at, idempotency_key=f"in:{event.pk}", role=role)
    if created and _blacklisted_out(membership):
        return "ok"  # a blacklisted contact is removed again at once, not welcomed
    # members who were already there before the bot joined (backfill) are not welcomed late
    if created and not data.get("backfill"):
        from siyu.communities.actions import do_onboard_member

        do_onboard_member(account, membership, member_external_id=str(data["member_id"]), key=f"group-welcome:{event.pk}")
    return "ok"


def _blacklisted_out(membership: Membership) -> bool:
    """A blacklisted contact turned up in a group: removed again (see
    :func:`siyu.moderation.actions.do_enforce_blacklist`). True when they were."""
    from siyu.moderation.actions import do_enforce_blacklist

    return bool(do_enforce_blacklist(membership))


class _Safe(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def on_member_left(account: ChannelAccount, event: InboxEvent) -> str:
    data = event.data
    group, _ = do_ensure_group(account, str(data["group_id"]))
    contact = _contact(account, event, "member_id", "member_name")
    membership = Membership.objects.filter(group=group, contact=contact, left_at__isnull=True).first()
    if membership is not None:
        do_remove_member(membership, None, reason=data.get("reason", "left"), left_at=event.occurred_at)
        _left(contact)
    do_close_removal_task(group, contact)
    return "ok"


def on_message(account: ChannelAccount, event: InboxEvent) -> str:
    data = event.data
    if data.get("from_bot"):
        return "ignored"
    if not data.get("group_id"):
        contact = _contact(account, event, "sender_id", "sender_name")
        do_record_event(contact, "message", idempotency_key=f"in:{event.pk}", occurred_at=event.occurred_at,
                        data={"text": str(data.get("text", ""))[:500], "direct": True})
        return "ok"
    group, _ = do_ensure_group(account, str(data["group_id"]), name=data.get("group_name", ""))
    sender = _contact(account, event, "sender_id", "sender_name")
    banned = False
    if group.archived_at is None and not Membership.objects.filter(group=group, contact=sender, left_at__isnull=True).exists():
        membership, _ = do_add_member(group, sender, None, join_source="seen_speaking", joined_at=event.occurred_at)
        banned = _blacklisted_out(membership)
    message, created = do_record_group_message(
        group, sender, external_id=str(data.get("message_id") or event.dedupe_key), text=str(data.get("text", "")),
        msgtype=data.get("msgtype", "text"), data=message_data(data), sent_at=event.occurred_at,
    )
    if not created:
        return "ok"
    _count_activity(account, group, message)
    # history from before the bot joined is kept and counted, not judged or answered; nor is
    # the message of a blacklisted contact on their way out again
    if data.get("backfill") or banned:
        return "ok"
    from siyu.moderation.actions import do_moderate_message

    case = do_moderate_message(message, account, exempt=bool(data.get("sender_is_staff")))
    if case is None and not data.get("sender_is_staff"):
        _auto_reply(account, group, message)
    return "ok"


def _count_activity(account: ChannelAccount, group: Group, message: GroupMessage) -> None:
    """The per-event twin of :meth:`MessageBatch.accept`'s counting: same facts, same
    targets, looked up one message at a time."""
    from siyu.communities.actions import do_add_activity
    from siyu.communities.activity import ActivityCounter, local_day, mention_contacts, message_facts

    facts = message_facts(message.text, message.msgtype, message.data)
    reply_author = None
    if facts.reply_to:
        reply_author = GroupMessage.objects.filter(group=group, external_id=facts.reply_to[:255]).values_list("sender_id", flat=True).first()
    mentioned = mention_contacts([account.pk], facts.mentions)
    counter = ActivityCounter()
    counter.count_message(
        workspace_id=group.workspace_id, group_id=group.pk, sender_id=message.sender_id, day=local_day(message.sent_at, group.workspace.tz),
        facts=facts, reply_author_id=reply_author, mentioned_ids=[c for m in facts.mentions if (c := mentioned.get((account.pk, m))) is not None],
    )
    do_add_activity(counter)


def _auto_reply(account: ChannelAccount, group: Group, message: GroupMessage) -> None:
    from siyu.communities import autoreply
    from siyu.communities.actions import do_send_auto_replies
    from siyu.communities.group_settings import effective
    from siyu.communities.models import AutoReplyFiring

    if not adapter_for(account).can(Capability.SEND_GROUP_MESSAGE):
        return  # e.g. a WeCom self-built app cannot post in customer groups
    rules = autoreply.rules_for(group.workspace_id)
    if not autoreply.triggered(rules, group.pk, message.text):
        return
    last_fired = dict(AutoReplyFiring.objects.filter(group=group).values_list("rule_id", "last_fired_at"))
    reply = autoreply.decide(rules, group_id=group.pk, text=message.text, sent_at=message.sent_at, last_fired=last_fired,
                             settings=effective(group).values, tz=group.workspace.tz)
    if reply is not None:
        do_send_auto_replies([(account, group, message, reply)])


#: group changes after which the member list (and name) is fetched again from the platform
RECONCILE_CHANGES = ("add_member", "del_member", "change_name")


def on_group_updated(account: ChannelAccount, event: InboxEvent) -> str:
    """A group changed. Where the adapter can fetch the group (WeCom ``groupchat/get``),
    open memberships are reconciled with the platform's member list: customers who are
    in it but not open here join (the join way's state, else the join scene, as join
    source); open memberships of customers no longer in it close. Elsewhere the group
    and its name are only ensured."""
    from siyu.contacts.models import ChannelIdentity

    data = event.data
    group, _ = do_ensure_group(account, str(data["group_id"]), name=data.get("group_name", ""))
    if data.get("change") == "power_levels":
        _apply_roles(account, group, data.get("roles", {}))
        return "ok"
    fetch_group = getattr(adapter_for(account), "fetch_group", None)
    if data.get("change") not in RECONCILE_CHANGES or not callable(fetch_group):
        return "ok"
    detail = fetch_group(group.external_id)
    if detail.get("name"):
        group, _ = do_ensure_group(account, group.external_id, name=detail["name"])
    if group.archived_at is not None:
        return "group archived"
    customers = {m["member_id"]: m for m in detail.get("members", []) if not m.get("is_staff")}
    open_rows = Membership.objects.filter(group=group, left_at__isnull=True).select_related("contact", "group")
    identities = dict(
        ChannelIdentity.objects.filter(account=account, contact__in=[m.contact for m in open_rows]).values_list("contact_id", "external_id")
    )
    present = set()
    reason = "kicked" if data.get("quit_scene") == 2 else "left"
    for membership in open_rows:
        external_id = identities.get(membership.contact_id)
        if external_id in customers:
            present.add(external_id)
        elif external_id is not None:
            do_remove_member(membership, None, reason=reason, left_at=event.occurred_at)
    for member_id, member in customers.items():
        if member_id in present:
            continue
        channel, campaign = split_state(member.get("state", ""))
        contact, _ = do_ensure_contact_for_identity(
            account, member_id, name=member.get("name", ""), unionid=member.get("unionid", ""),
            source_channel=channel, source_campaign=campaign, created_at=member.get("joined_at") or event.occurred_at,
        )
        do_add_member(group, contact, None, join_source=member.get("join_source", ""),
                      joined_at=member.get("joined_at") or event.occurred_at, idempotency_key=f"in:{event.pk}:{member_id}")
    return "ok"


def _apply_roles(account: ChannelAccount, group: Group, roles: dict[str, str]) -> None:
    """Platform roles (Matrix power levels: 100 owner, ≥ 50 admin) onto open memberships.
    A role set by hand in siyu wins unless the platform makes the member owner/admin."""
    from siyu.contacts.models import ChannelIdentity

    by_member = dict(ChannelIdentity.objects.filter(account=account, external_id__in=list(roles)).values_list("external_id", "contact_id"))
    for member_id, role in roles.items():
        contact_id = by_member.get(member_id)
        membership = Membership.objects.filter(group=group, contact_id=contact_id, left_at__isnull=True).select_related("group").first()
        if membership is None or membership.role == role:
            continue
        if role in ("owner", "admin") or not membership.role_assigned:
            do_set_member_role(membership, None, role=role)


def on_tags_changed(account: ChannelAccount, event: InboxEvent) -> str:
    """The platform's tag library changed: mirror the whole WeCom corp tag library into
    the tag group 「企业微信标签」 (create / rename / delete through the contacts tag
    actions). Channels without a corp tag library ignore the event."""
    fetch_corp_tags = getattr(adapter_for(account), "fetch_corp_tags", None)
    if not callable(fetch_corp_tags):
        return "ignored"
    from siyu.channels.wecom.actions import do_sync_corp_tags

    do_sync_corp_tags(account, fetch_corp_tags())
    return "ok"


def on_unknown(account: ChannelAccount, event: InboxEvent) -> str:
    return "ignored"


HANDLERS: dict[str, Handler] = {
    InboundKind.CONTACT_ADDED: on_contact_added,
    InboundKind.CONTACT_UPDATED: on_contact_updated,
    InboundKind.CONTACT_DELETED: on_contact_deleted,
    InboundKind.TRANSFER_FAILED: on_transfer_failed,
    InboundKind.GROUP_CREATED: on_group_created,
    InboundKind.GROUP_UPDATED: on_group_updated,
    InboundKind.GROUP_DISMISSED: on_group_dismissed,
    InboundKind.MEMBER_JOINED: on_member_joined,
    InboundKind.MEMBER_LEFT: on_member_left,
    InboundKind.MESSAGE: on_message,
    InboundKind.TAGS_CHANGED: on_tags_changed,
    InboundKind.UNKNOWN: on_unknown,
}


def handle(event: InboxEvent) -> str:
    handler = HANDLERS.get(event.kind, on_unknown)
    try:
        return handler(event.account, event)
    except KeyError as exc:
        # A payload without a field its kind needs will not heal on retry.
        raise PermanentEventError(f"{event.kind} event lacks field {exc}") from exc


class PermanentEventError(Exception):
    """The event can never be processed as it is; mark it failed at once."""


class _Message:
    """A group message queued for the bulk insert (lighter than a model instance)."""

    __slots__ = ("data", "external_id", "group", "group_id", "msgtype", "pk", "sender_id", "sent_at", "text", "workspace_id")

    def __init__(self, group: Group, sender_id: int, external_id: str, msgtype: str, text: str, data: dict[str, Any], sent_at: dt.datetime) -> None:
        self.group, self.group_id, self.workspace_id = group, group.pk, group.workspace_id
        self.sender_id, self.external_id, self.msgtype, self.text, self.data, self.sent_at = sender_id, external_id, msgtype, text, data, sent_at
        self.pk: int | None = None


class Prepared:
    """What :meth:`MessageBatch.prepare` works out from a batch's texts before the write
    lock: detector findings by (configuration id, message type, text) — the
    configurations whose ids the keys use are held here, so no id is reused while they
    are —, each message's stored data and activity facts by inbox row id, and the
    (group, text) pairs no auto-reply rule answers, per rules tuple (held too)."""

    def __init__(self) -> None:
        self.findings: dict[tuple[int, str, str], list[Any]] = {}
        self.configs: dict[int, Any] = {}
        self.messages: dict[int, tuple[dict[str, Any], Any]] = {}
        self.rules: dict[int, Any] = {}
        self.silent: set[tuple[int, int, str]] = set()
        #: plain messages no detector flags on their text alone: inbox row id → (group id,
        #: id of the configuration that found nothing)
        self.clean: dict[int, tuple[int, int]] = {}


class MessageBatch:
    """The batch twin of :func:`on_message` for the common case: a message in a known
    group from a known, present member. Such messages are decided in memory against
    caches loaded with a few queries for the whole batch — detectors, the policy's
    verdict (exemptions, repeat-offender strikes), the auto-reply decision — and written
    with bulk statements (:meth:`flush`): group messages, timeline events, moderation
    verdicts (warn, delete, remove through :func:`siyu.moderation.actions.do_apply_verdicts`),
    auto-replies. Everything else — other kinds, unknown groups or members, renames,
    archived groups, blacklist verdicts, verdicts the channel cannot carry out itself
    (staff tasks) — is declined (:meth:`accept` answers ``None``) and goes through the
    per-event handler; the caller flushes first and calls :meth:`after_handler` after,
    so the order of effects is the order of the events and both paths store the same
    rows.

    ``latencies`` receives, per accepted message, the milliseconds from ``started`` (the
    batch's dequeue) to the moment its verdict and auto-reply decision were made.
    """

    def __init__(self, rows: list[InboxEvent], *, started: float, latencies: list[float] | None = None,
                 prepared: Prepared | None = None) -> None:
        self.rows = rows
        self.prepared = prepared or Prepared()
        self.position = 0
        self.started = started
        self.latencies = latencies
        self.pending: list[tuple[ChannelAccount, _Message, Any, Any, int | None]] = []
        self.counter: Any = None
        self.event_ids: list[int] = []
        self.settings: dict[int, Any] = {}
        self.can_post: dict[int, bool] = {}
        self.can_moderate: dict[tuple[int, str], bool] = {}
        self.groups: dict[tuple[int, str], Group] = {}
        self.contacts: dict[tuple[int, str], int] = {}
        self.mentioned: dict[tuple[int, str], int] = {}
        #: open memberships: (group, contact) → (membership id, assigned owner/admin)
        self.members: dict[tuple[int, int], tuple[int, bool]] = {}
        self.seen: set[tuple[int, str]] = set()
        self.authors: dict[tuple[int, str], int | None] = {}
        self.flood: dict[tuple[int, int, str], list[dt.datetime]] = {}
        self.firings: dict[tuple[int, int], dt.datetime] = {}
        self.loaded: dict[int, Any] = {}
        self.findings: dict[tuple[int, str, str], list[Any]] = self.prepared.findings
        self.names: dict[int, str] | None = None
        self.tags: dict[int, set[str]] | None = None
        self.strikes: dict[int, list[dt.datetime]] | None = None
        #: local days by (zone, quarter hour): the zone conversion once per quarter hour of messages
        self.days: dict[tuple[Any, int], dt.date] = {}
        #: the auto-reply rules per workspace, once per batch (the silent texts are keyed by their id)
        self.rules: dict[int, Any] = {}
        self.stale = True

    @staticmethod
    def prepare(rows: list[InboxEvent]) -> Prepared:
        """The work on a batch that depends on the message texts alone, done before the
        batch takes the write lock (the caller hands the result to the batch): the
        detectors' findings per distinct text under each group's compiled configuration
        (what :meth:`_detect` caches), each message's stored data and activity facts, and
        which texts trigger no auto-reply rule. The batch checks that the configuration
        and rules it loads are the ones used here, and works out itself whatever this
        missed (a group created, a configuration edited since)."""
        from siyu.communities import autoreply
        from siyu.moderation.detectors import CARD_MSGTYPES, detect
        from siyu.moderation.engine import load

        prepared = Prepared()
        messages = [r for r in rows if r.kind == InboundKind.MESSAGE and r.data.get("group_id") and r.data.get("sender_id")
                    and not r.data.get("from_bot")]
        if not messages:
            return prepared
        groups = {(a, e): (w, g) for a, e, w, g in select_in(Group, ("channel_account_id", "external_id", "workspace_id", "id"), "external_id",
                                                               {str(r.data["group_id"]) for r in messages},
                                                               channel_account_id={r.account_id for r in messages})}
        findings, configs, silent = prepared.findings, prepared.configs, prepared.silent
        for row in messages:
            data = row.data
            msgtype, text = data.get("msgtype", "text"), str(data.get("text", ""))
            stored = message_data(data)
            prepared.messages[row.pk] = (stored, message_facts(text, msgtype, stored))
            scope = groups.get((row.account_id, str(data["group_id"])))
            if scope is None or data.get("backfill"):
                continue
            if msgtype not in CARD_MSGTYPES:
                detectors = load(*scope).detectors
                configs.setdefault(id(detectors), detectors)
                key = (id(detectors), msgtype, text)
                found = findings.get(key)
                if found is None:
                    found = findings[key] = detect(text, detectors, msgtype=msgtype)
                if not found:
                    prepared.clean[row.pk] = (scope[1], id(detectors))
            rules = prepared.rules.get(scope[0])
            if rules is None:
                rules = prepared.rules[scope[0]] = autoreply.rules_for(scope[0])
            if not autoreply.triggered(rules, scope[1], text):
                silent.add((id(rules), scope[1], text))
        return prepared

    def invalidate(self) -> None:
        self.stale = True

    def after_handler(self, row: InboxEvent) -> None:
        """Bring the caches up to date after the per-event handler ran for ``row``. A
        message only touches its group, its sender (joined, removed, blacklisted from
        every group, a strike), its own stored row and the group's cool-downs: refresh
        those. Any other kind may touch anything: reload everything before the next
        message."""
        data = row.data
        self.names = self.tags = self.strikes = None  # loaded again when the next verdict needs them
        if self.stale or row.kind != InboundKind.MESSAGE or not data.get("group_id") or not data.get("sender_id"):
            self.invalidate()
            return
        from siyu.communities.models import AutoReplyFiring
        from siyu.contacts.models import ChannelIdentity

        account_id = row.account_id
        group = Group.objects.filter(channel_account_id=account_id, external_id=str(data["group_id"])).select_related("workspace").first()
        identity = ChannelIdentity.objects.filter(account_id=account_id, external_id=str(data["sender_id"])).values_list(
            "contact_id", "contact__merged_into_id").first()
        if group is None or identity is None:
            self.invalidate()
            return
        self.groups[(account_id, group.external_id)] = group
        contact_id = identity[0]
        self.mentioned[(account_id, str(data["sender_id"]))] = identity[1] or contact_id
        if identity[1] is None:
            self.contacts[(account_id, str(data["sender_id"]))] = contact_id
        else:
            self.contacts.pop((account_id, str(data["sender_id"])), None)
        self.members = {key: value for key, value in self.members.items() if key[1] != contact_id}
        self.members.update(self._memberships(Membership.objects.filter(contact_id=contact_id, left_at__isnull=True)))
        external_id = str(data.get("message_id") or row.dedupe_key)[:255]
        stored = GroupMessage.objects.filter(group=group, external_id=external_id).values_list("sender_id", "text", "sent_at").first()
        if stored is not None:
            self.seen.add((group.pk, external_id))
            self.authors[(group.pk, external_id)] = stored[0]
            if stored[0] is not None:
                self.flood.setdefault((group.pk, stored[0], stored[1]), []).append(stored[2])
        for rule_id, at in AutoReplyFiring.objects.filter(group=group).values_list("rule_id", "last_fired_at"):
            self.firings[(rule_id, group.pk)] = at

    @staticmethod
    def _memberships(query: Any) -> dict[tuple[int, int], tuple[int, bool]]:
        from siyu.communities.models import MemberRole

        return {
            (g, c): (pk, assigned and role in (MemberRole.OWNER, MemberRole.ADMIN))
            for g, c, pk, role, assigned in query.values_list("group_id", "contact_id", "pk", "role", "role_assigned")
        }

    def _load(self) -> None:
        from siyu.communities.activity import mention_contacts
        from siyu.communities.models import AutoReplyFiring, MemberRole
        from siyu.contacts.models import ChannelIdentity
        from siyu.moderation.policy import Policy

        rows = [r for r in self.rows[self.position:] if r.kind == InboundKind.MESSAGE and r.data.get("group_id") and r.data.get("sender_id")]
        accounts = {r.account_id for r in rows}
        group_ids = {str(r.data["group_id"]) for r in rows}
        senders = {str(r.data["sender_id"]) for r in rows}
        mentions = {str(m) for r in rows for m in (r.data.get("mentions") or ()) if isinstance(r.data.get("mentions"), list)}
        self.groups = {
            (g.channel_account_id, g.external_id): g
            for g in Group.objects.filter(channel_account_id__in=accounts, external_id__in=group_ids).select_related("workspace")
        }
        identities = [row for row in select_in(ChannelIdentity, ("account_id", "external_id", "contact_id"), "external_id", senders,
                                                     account_id=accounts)]
        merged = {c for c, into in select_in(Contact, ("id", "merged_into_id"), "id", {c for _a, _e, c in identities}) if into is not None}
        self.contacts = {(a, ext): c for a, ext, c in identities if c not in merged}
        self.mentioned = mention_contacts(accounts, mentions)
        gids = {g.pk for g in self.groups.values()}
        cids = set(self.contacts.values())
        self.members = {
            (g, c): (pk, bool(assigned) and role in (MemberRole.OWNER, MemberRole.ADMIN))
            for g, c, pk, role, assigned in select_in(Membership, ("group_id", "contact_id", "id", "role", "role_assigned"), "contact_id", cids,
                                                      left_at=None)
            if g in gids
        }
        ids: set[tuple[int, str]] = set()
        replies: set[tuple[int, str]] = set()
        for r in rows:
            group = self.groups.get((r.account_id, str(r.data["group_id"])))
            if group is not None:
                ids.add((group.pk, str(r.data.get("message_id") or r.dedupe_key)[:255]))
                if r.data.get("reply_to"):
                    replies.add((group.pk, str(r.data["reply_to"])[:255]))
        self.seen = set(select_pairs(GroupMessage, ("group_id", "external_id"), ("group_id", "external_id"), ids))
        self.authors = {(g, e): s for g, e, s in select_pairs(GroupMessage, ("group_id", "external_id", "sender_id"), ("group_id", "external_id"), replies)}
        self.flood = {}
        self.loaded = {}
        self.names = self.tags = self.strikes = None
        if rows and gids:
            window = max([Policy().flood_window_seconds, *(self._policy(g).flood_window_seconds for g in self.groups.values())])
            first = min(r.occurred_at for r in rows) - dt.timedelta(seconds=window)
            last = max(r.occurred_at for r in rows)
            texts = {str(r.data.get("text", "")) for r in rows}
            for g, s, text, at in _recent_same_texts(gids, cids, texts, first, last):
                self.flood.setdefault((g, s, text), []).append(at)
        self.firings = {(r, g): at for r, g, at in AutoReplyFiring.objects.filter(group_id__in=gids).values_list("rule_id", "group_id", "last_fired_at")}
        self.stale = False

    def _settings(self, group: Group) -> dict[str, Any]:
        """The group's effective settings (quiet hours for an auto-reply), loaded when the
        batch first needs them — for every group of the batch not loaded yet, at once."""
        if group.pk not in self.settings:
            from siyu.communities.group_settings import effective_for_groups

            self.settings.update(effective_for_groups([g for g in {group, *self.groups.values()} if g.pk not in self.settings]))
        return self.settings[group.pk].values

    def _policy(self, group: Group) -> Any:
        return self._loaded(group).policy

    def _loaded(self, group: Group) -> Any:
        """The group's compiled policy and detectors, once per batch."""
        loaded = self.loaded.get(group.pk)
        if loaded is None:
            from siyu.moderation.engine import load

            loaded = self.loaded[group.pk] = load(group.workspace_id, group.pk)
        return loaded

    def _repeats(self, group_id: int, sender_id: int, text: str, sent_at: dt.datetime, window: int) -> int:
        earlier = self.flood.get((group_id, sender_id, text))
        if not earlier or not text.strip():
            return 0
        since = sent_at - dt.timedelta(seconds=window)
        return sum(1 for at in earlier if since <= at <= sent_at)

    def _detect(self, loaded: Any, text: str, msgtype: str, data: dict[str, Any], repeats: int) -> list[Any]:
        """Detector findings; for plain messages below the flood threshold they depend
        only on the text, so a text posted many times in a batch is examined once."""
        from siyu.moderation.detectors import CARD_MSGTYPES, detect

        if msgtype in CARD_MSGTYPES or repeats + 1 >= loaded.detectors.flood_count:
            return detect(text, loaded.detectors, msgtype=msgtype, data=data, repeats=repeats)
        key = (id(loaded.detectors), msgtype, text)
        found = self.findings.get(key)
        if found is None:
            found = self.findings[key] = detect(text, loaded.detectors, msgtype=msgtype, data=data, repeats=repeats)
        return found

    def _suspects(self) -> set[int]:
        """Senders in the rest of the batch whose message a detector flags on its text
        alone (or that is a card): the ones whose names, tags and strikes a verdict will
        need. Findings are cached, so accepting the messages later costs nothing more."""
        from siyu.moderation.detectors import CARD_MSGTYPES

        out = set()
        # a text found clean before the lock under the configuration its group still has
        # is clean now: skipped without looking anything up
        clean = self.prepared.clean
        current = {g.pk: id(self._loaded(g).detectors) for g in self.groups.values()}
        for row in self.rows[self.position:]:
            known = clean.get(row.pk)
            if known is not None and current.get(known[0]) == known[1]:
                continue
            data = row.data
            if row.kind != InboundKind.MESSAGE or not data.get("group_id") or not data.get("sender_id") or data.get("backfill"):
                continue
            group = self.groups.get((row.account_id, str(data["group_id"])))
            sender_id = self.contacts.get((row.account_id, str(data["sender_id"])))
            if group is None or sender_id is None:
                continue
            msgtype = data.get("msgtype", "text")
            if msgtype in CARD_MSGTYPES or self._detect(self._loaded(group), str(data.get("text", "")), msgtype, {}, 0):
                out.add(sender_id)
        return out

    def _offender_caches(self, sender_id: int) -> None:
        """Names, tags (VIP exemption) and recent strikes of the batch's suspects, loaded
        when the first verdict needs them (and for a sender flagged only by flooding,
        when theirs does)."""
        from siyu.contacts.models import Contact, ContactTag
        from siyu.moderation.models import Strike

        if self.names is None or self.tags is None or self.strikes is None:
            self.names, self.tags, self.strikes = {}, {}, {}
            cids = self._suspects() | {sender_id}
        else:
            cids = {sender_id}
        self.names.update(Contact.objects.filter(pk__in=cids).values_list("pk", "name"))
        for contact_id, tag in ContactTag.objects.filter(contact_id__in=cids).values_list("contact_id", "tag__name"):
            self.tags.setdefault(contact_id, set()).add(tag)
        window = max([30, *(self._policy(g).escalation.window_days for g in self.groups.values())])
        first = min((r.occurred_at for r in self.rows), default=timezone.now()) - dt.timedelta(days=window)
        for contact_id, at in Strike.objects.filter(contact_id__in=cids, cleared_at__isnull=True, created_at__gte=first).values_list(
            "contact_id", "created_at"
        ):
            self.strikes.setdefault(contact_id, []).append(at)

    def _verdict(self, account: ChannelAccount, group: Group, sender_id: int, findings: list[Any], policy: Any, sent_at: dt.datetime,
                 staff: bool) -> Any:
        """The policy's decision, as :func:`siyu.moderation.actions.decide_message` makes
        it, from the caches; ``None`` when the batch cannot apply it."""
        from siyu.moderation.actions import BATCH_VERDICTS, batch_commands
        from siyu.moderation.policy import decide

        if self.names is None or sender_id not in self.names:
            self._offender_caches(sender_id)
        assert self.tags is not None and self.strikes is not None
        exempt = staff or self.members[(group.pk, sender_id)][1] or bool(policy.vip_tags and self.tags.get(sender_id, set()) & set(policy.vip_tags))
        strikes = 0
        if not exempt:
            since = sent_at - dt.timedelta(days=policy.escalation.window_days)
            strikes = sum(1 for at in self.strikes.get(sender_id, ()) if at >= since)
        decision = decide(findings, policy.actions, exempt=exempt, escalation=policy.escalation, prior_strikes=strikes)
        if decision.verdict == "allow":
            return decision
        if decision.verdict not in BATCH_VERDICTS:
            return None
        if decision.verdict == "remove" and group.threshold == Threshold.PRICE:
            return None  # a paid group's removal also asks for a refund: the per-event path's work
        for kind in batch_commands(decision.verdict):
            key = (account.pk, kind.value)
            if key not in self.can_moderate:
                probe = Command(kind, "probe", group.external_id, {"to": "group"})
                self.can_moderate[key] = adapter_for(account).can(probe.required_capability())
            if not self.can_moderate[key]:
                return None  # staff tasks with the evidence: the per-event path
        return decision

    def accept(self, row: InboxEvent, index: int) -> str | None:
        """Decide and queue a message, answering its outcome, or ``None`` to hand the event
        to the per-event handler."""
        # per message, so attribute lookups are kept to locals
        data = row.data
        if row.kind != InboundKind.MESSAGE:
            return None
        if data.get("from_bot"):
            return "ignored"
        group_external, sender_external = data.get("group_id"), data.get("sender_id")
        if not group_external or not sender_external:
            return None
        if self.stale:
            self.position = index
            self._load()
        account_id = row.account_id
        group = self.groups.get((account_id, str(group_external)))
        if group is None or group.archived_at is not None or (data.get("group_name") and data["group_name"] != group.name):
            return None
        gid = group.id
        sender_id = self.contacts.get((account_id, str(sender_external)))
        if sender_id is None:
            return None
        member = self.members.get((gid, sender_id))
        if member is None:
            return None
        external_id = str(data.get("message_id") or row.dedupe_key)[:255]
        if (gid, external_id) in self.seen:
            return "ok"  # stored before: the per-event path changes nothing either
        text, msgtype, sent_at = str(data.get("text", "")), data.get("msgtype", "text"), row.occurred_at
        known = self.prepared.messages.get(row.pk)
        stored = known[0] if known is not None else message_data(data)
        staff = bool(data.get("sender_is_staff"))
        account = row.account
        reply = verdict = None
        if not data.get("backfill"):
            loaded = self._loaded(group)
            policy = loaded.policy
            repeats = self._repeats(gid, sender_id, text, sent_at, policy.flood_window_seconds) if policy.flood_count > 1 else 0
            findings = self._detect(loaded, text, msgtype, stored, repeats)
            if findings:
                verdict = self._verdict(account, group, sender_id, findings, policy, sent_at, staff)
                if verdict is None:
                    return None
                if verdict.verdict == "allow":
                    verdict = None
            if verdict is None and not staff:
                reply = self._decide_reply(account, group, text, sent_at)
        if self.latencies is not None:
            self.latencies.append((time.perf_counter() - self.started) * 1000)
        self.pending.append((account, _Message(group, sender_id, external_id, msgtype[:32], text, stored, sent_at), reply, verdict, member[0]))
        if verdict is not None:
            assert self.strikes is not None
            self.strikes.setdefault(sender_id, []).append(sent_at)
            if verdict.verdict == "remove":
                self.members.pop((gid, sender_id), None)
        self.seen.add((gid, external_id))
        flood_key = (gid, sender_id, text)
        if flood_key in self.flood:
            self.flood[flood_key].append(sent_at)
        else:
            self.flood[flood_key] = [sent_at]
        facts = known[1] if known is not None else message_facts(text, msgtype, stored)
        authors = self.authors
        reply_author = authors.get((gid, facts.reply_to[:255])) if facts.reply_to else None
        authors[(gid, external_id)] = sender_id
        if self.counter is None:
            self.counter = ActivityCounter()
        tz = group.workspace.tz
        day_key = (tz, int(sent_at.timestamp()) // 900)  # zones are offset by whole quarter hours
        day = self.days.get(day_key)
        if day is None:
            day = self.days[day_key] = local_day(sent_at, tz)
        mentioned = self.mentioned
        self.counter.count_message(
            workspace_id=group.workspace_id, group_id=gid, sender_id=sender_id, day=day,
            facts=facts, reply_author_id=reply_author,
            mentioned_ids=[c for m in facts.mentions if (c := mentioned.get((account_id, m))) is not None] if facts.mentions else (),
        )
        return "ok"

    def _decide_reply(self, account: ChannelAccount, group: Group, text: str, sent_at: dt.datetime) -> Any:
        rules = self.rules.get(group.workspace_id)
        if rules is None:
            from siyu.communities.autoreply import rules_for

            rules = self.rules[group.workspace_id] = rules_for(group.workspace_id)
        if not rules or (id(rules), group.pk, text) in self.prepared.silent:
            return None
        from siyu.communities import autoreply

        if not autoreply.triggered(rules, group.pk, text):
            return None
        if account.pk not in self.can_post:
            self.can_post[account.pk] = adapter_for(account).can(Capability.SEND_GROUP_MESSAGE)
        if not self.can_post[account.pk]:
            return None
        last_fired = {rule: at for (rule, g), at in self.firings.items() if g == group.pk}
        reply = autoreply.decide(rules, group_id=group.pk, text=text, sent_at=sent_at, last_fired=last_fired,
                                 settings=self._settings(group), tz=group.workspace.tz)
        if reply is not None:
            key = (reply.rule.pk, group.pk)
            if key not in self.firings or self.firings[key] < sent_at:
                self.firings[key] = sent_at
        return reply

    def flush(self) -> None:
        """Write the queued messages: group messages and their timeline events in bulk,
        then the verdicts and the auto-replies they triggered (bulk writes too)."""
        if not self.pending:
            return
        from siyu.communities.autoreply import do_send_replies_in_bulk
        from siyu.contacts.events import EventKind
        from siyu.contacts.models import ContactEvent
        from siyu.moderation.actions import PendingVerdict, do_apply_verdicts

        messages = [m for _a, m, _r, _v, _s in self.pending]
        insert_rows(GroupMessage, ("workspace_id", "group_id", "sender_id", "external_id", "msgtype", "text", "data", "sent_at"),
                    [(m.workspace_id, m.group_id, m.sender_id, m.external_id, m.msgtype, m.text, m.data, m.sent_at) for m in messages])
        keys = {f"msg:{m.group_id}:{m.external_id}"[:200]: m for m in messages}
        now = timezone.now()
        columns = ("workspace_id", "contact_id", "kind", "occurred_at", "idempotency_key", "data", "created_at")
        events = [
            (m.workspace_id, m.sender_id, EventKind.MESSAGE, m.sent_at, key,
             {"group_id": m.group_id, "group": m.group.name, "text": m.text[:200], "msgtype": m.msgtype}, now)
            for key, m in keys.items()
        ]
        # a timeline event already stored under its key (a replay) is kept, not doubled
        self.event_ids.extend(insert_new_rows(ContactEvent, columns, events).values())
        acted = [m for _a, m, reply, verdict, _s in self.pending if reply is not None or verdict is not None]
        if acted:
            # outbox keys and cases name the message: fetch the ids of the few acted on
            ids = {(g, e): pk for pk, g, e in GroupMessage.objects.filter(
                group_id__in={m.group_id for m in acted}, external_id__in=[m.external_id for m in acted],
            ).values_list("pk", "group_id", "external_id")}
            for m in acted:
                m.pk = ids.get((m.group_id, m.external_id))
            names = self.names or {}
            do_apply_verdicts([
                PendingVerdict(account=account, group=m.group, message_id=cast(int, m.pk), external_id=m.external_id, text=m.text,
                               sent_at=m.sent_at, sender_id=m.sender_id, sender_name=names.get(m.sender_id, "该成员"),
                               member_id=str(m.data.get("sender_external_id", "")), decision=verdict,
                               membership_id=membership_id if verdict.verdict == "remove" else None)
                for account, m, _r, verdict, membership_id in self.pending if verdict is not None
            ])
            do_send_replies_in_bulk([
                (account, m.group, cast(int, m.pk), m.external_id, m.sent_at, reply) for account, m, reply, _v, _s in self.pending if reply is not None
            ])
        self.pending = []

    def finish(self) -> None:
        """After the last event: add the activity counters and hand the new timeline
        events to their consumers (one after-commit task for the whole batch)."""
        from siyu.communities.actions import do_add_activity
        from siyu.contacts.events import schedule_event_fanout

        self.flush()
        if self.counter is not None:
            do_add_activity(self.counter)
            self.counter = None
        schedule_event_fanout(self.event_ids)
        self.event_ids = []


def _recent_same_texts(gids: set[int], cids: set[int], texts: set[str], first: dt.datetime, last: dt.datetime) -> list[tuple[Any, ...]]:
    """Stored messages of these senders in these groups with one of these texts, sent in
    ``[first, last]`` — what flood detection counts — as plain SQL (the ORM prepares every
    value of the three ``IN`` lists on its own)."""
    from django.db import connection
    from django.utils.dateparse import parse_datetime

    if not gids or not cids or not texts:
        return []
    ops = connection.ops
    adapt = ops.adapt_datetimefield_value
    marks = lambda values: ", ".join(["%s"] * len(values))  # noqa: E731
    sql = (
        f"SELECT group_id, sender_id, text, sent_at FROM {ops.quote_name(GroupMessage._meta.db_table)} "
        f"WHERE group_id IN ({marks(gids)}) AND sender_id IN ({marks(cids)}) AND text IN ({marks(texts)}) AND sent_at >= %s AND sent_at <= %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*gids, *cids, *texts, adapt(first), adapt(last)])
        rows = cursor.fetchall()
    out = []
    for g, s, text, at in rows:
        if isinstance(at, str):
            at = parse_datetime(at)
        if at is not None and at.tzinfo is None:  # SQLite: naive, in the connection's zone
            at = at.replace(tzinfo=connection.timezone)
        out.append((g, s, text, at))
    return out
