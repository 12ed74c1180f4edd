"""Reads of outreach for API, console and CLI: the material library, the quota rules,
and "why didn't this person get the message?" (a contact's ledger)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from siyu.channels.models import ChannelAccount
from siyu.contacts.models import Contact
from siyu.core.models import Workspace
from siyu.outreach import quota
from siyu.outreach.models import Broadcast, Column, Delivery, Material, QuotaPolicy


def materials(workspace: Workspace, *, folder: str | None = None, kind: str | None = None, q: str | None = None, archived: bool = False) -> QuerySet[Material]:
    qs = Material.objects.in_workspace(workspace).filter(archived_at__isnull=not archived)
    if folder is not None:
        qs = qs.filter(folder=folder)
    if kind:
        qs = qs.filter(kind=kind)
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(text__icontains=q))
    return qs.order_by("folder", "name", "id")


def folders(workspace: Workspace) -> list[str]:
    return sorted(set(Material.objects.in_workspace(workspace).filter(archived_at__isnull=True).values_list("folder", flat=True)))


def quota_rules(workspace: Workspace) -> dict[str, Any]:
    """The workspace's own caps and the platform rules each channel account sends under."""
    row = QuotaPolicy.objects.in_workspace(workspace).first() or QuotaPolicy(workspace=workspace)
    accounts = []
    for account in ChannelAccount.objects.in_workspace(workspace).order_by("id"):
        rules = quota.platform_for(account)
        accounts.append({
            "id": account.pk, "kind": account.kind, "name": account.name,
            "platform": rules.name if rules else "",
            "mass_period": rules.mass_period if rules else None,
            "mass_classes": sorted(rules.mass_classes) if rules else [],
            "reminder_cap": rules.reminder_cap if rules else None,
            "reminder_window_hours": rules.reminder_window.total_seconds() / 3600 if rules and rules.reminder_cap else None,
        })
    return {
        "policy": {
            "contact_marketing_cap": row.contact_marketing_cap, "contact_window_days": row.contact_window_days,
            "group_marketing_cap": row.group_marketing_cap, "group_window_days": row.group_window_days,
            "reminder_cap": row.reminder_cap, "reminder_window_hours": row.reminder_window_hours,
            "quiet_start": row.quiet_start.strftime("%H:%M"), "quiet_end": row.quiet_end.strftime("%H:%M"),
            "consent_mode": row.consent_mode, "default_expiry_hours": row.default_expiry_hours,
        },
        "message_classes": list(quota.MESSAGE_CLASSES),
        "exempt_classes": ["service", "notice"],
        "channel_accounts": accounts,
    }


def delivery_dict(delivery: Delivery) -> dict[str, Any]:
    def iso(value: dt.datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": delivery.pk, "idempotency_key": delivery.idempotency_key, "contact_id": delivery.contact_id, "group_id": delivery.group_id,
        "channel_account_id": delivery.channel_account_id, "platform": delivery.platform, "message_class": delivery.message_class,
        "source": delivery.source, "status": delivery.status, "rule": delivery.rule, "reason": delivery.reason,
        "requested_at": iso(delivery.requested_at), "planned_for": iso(delivery.planned_for), "slot_at": iso(delivery.slot_at),
        "sent_at": iso(delivery.sent_at), "expires_at": iso(delivery.expires_at), "broadcast_id": delivery.broadcast_id,
        "variant": delivery.variant.label if delivery.variant_id and delivery.variant else None, "column_id": delivery.column_id,
        "staff_task_id": delivery.staff_task_id, "text": str((delivery.content or {}).get("text", "")), "decisions": delivery.decisions,
    }


def contact_ledger(workspace: Workspace, contact: Contact, *, now: dt.datetime | None = None, limit: int = 100) -> dict[str, Any]:
    """Why did (or didn't) this person get messages: the ledger's answer for each class
    right now, the counted slots, and every delivery with its decisions."""
    now = now or timezone.now()
    account, _external_id = quota.account_for_contact(workspace, contact)
    rows = list(
        Delivery.objects.in_workspace(workspace).filter(contact=contact).select_related("variant").order_by("-requested_at", "-id")[:limit]
    )
    decisions = {cls: quota.check(workspace, contact=contact, message_class=cls, at=now).as_dict() for cls in quota.MESSAGE_CLASSES}
    counted = [r for r in rows if r.slot_at is not None and r.status in ("queued", "sent")]
    return {
        "contact_id": contact.pk,
        "channel_account": {"id": account.pk, "kind": account.kind, "name": account.name} if account else None,
        "platform": (quota.platform_for(account).name if quota.platform_for(account) else "") if account else "",  # type: ignore[union-attr]
        "checked_at": now.isoformat(),
        "now": decisions,
        "counted": len(counted),
        "deliveries": [delivery_dict(r) for r in rows],
    }


def broadcasts(workspace: Workspace) -> QuerySet[Broadcast]:
    return Broadcast.objects.in_workspace(workspace).order_by("-created_at", "-id")


def columns(workspace: Workspace) -> QuerySet[Column]:
    return Column.objects.in_workspace(workspace).prefetch_related("groups").select_related("group_set").order_by("name", "id")
