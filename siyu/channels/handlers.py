"""What each normalised inbound event does, through the domain actions. Called by the
inbox inside the transaction that marks the event processed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from siyu.channels.actions import do_create_staff_task
from siyu.channels.base import Capability, Command, CommandKind, InboundKind
from siyu.channels.models import ChannelAccount, InboxEvent
from siyu.channels.registry import adapter_for
from siyu.communities.actions import (
    do_add_member,
    do_archive_group,
    do_ensure_group,
    do_record_group_message,
    do_remove_member,
    do_set_member_role,
)
from siyu.communities.models import Group, Membership
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
    do_archive_group(group, None)
    return "ok"


def on_member_joined(account: ChannelAccount, event: InboxEvent) -> str:
    data = event.data
    group, _ = do_ensure_group(account, str(data["group_id"]), name=data.get("group_name", ""))
    if group.archived_at is not None:
        return "group archived"
    contact = _contact(account, event, "member_id", "member_name")
    _arrived(contact, event)
    role = data.get("role") if data.get("role") in ("owner", "admin") else None
    _, created = do_add_member(group, contact, None, join_source=data.get("join_source", "") or data.get("state", ""),
                               joined_at=event.occurred_at, idempotency_key=f"in:{event.pk}", role=role)
    # members who were already there before the bot joined (backfill) are not welcomed late
    welcome = created and not data.get("backfill") and group.welcome_message
    if welcome and adapter_for(account).can(Capability.SEND_GROUP_MESSAGE):
        from siyu.channels.outbox import do_enqueue

        text = group.welcome_message.format_map(_Safe(name=contact.name, group=group.name))
        do_enqueue(account, Command(CommandKind.SEND_MESSAGE, f"group-welcome:{event.pk}", group.external_id,
                                    {"to": "group", "text": text, "mention": data["member_id"]}))
    return "ok"


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
    if group.archived_at is None and not Membership.objects.filter(group=group, contact=sender, left_at__isnull=True).exists():
        do_add_member(group, sender, None, join_source="seen_speaking", joined_at=event.occurred_at)
    message, created = do_record_group_message(
        group, sender, external_id=str(data.get("message_id") or event.dedupe_key), text=str(data.get("text", "")),
        msgtype=data.get("msgtype", "text"), data={"sender_external_id": data["sender_id"]}, sent_at=event.occurred_at,
    )
    if created and not data.get("backfill"):  # history from before the bot joined is kept, not judged
        from siyu.moderation.actions import do_moderate_message

        do_moderate_message(message, account, exempt=bool(data.get("sender_is_staff")))
    return "ok"


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
