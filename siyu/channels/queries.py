"""Reads of channel accounts, inbox and outbox (console, API, CLI)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max, Q

from siyu.channels.models import ChannelAccount, InboxStatus, OutboxMessage, OutboxStatus
from siyu.channels.registry import adapter_for
from siyu.core.models import Workspace


def account_overview(workspace: Workspace) -> list[dict[str, Any]]:
    """Each account with its status, last event, error counts and capability list."""
    accounts = ChannelAccount.objects.in_workspace(workspace).annotate(
        inbox_pending=Count("inbox", filter=Q(inbox__status=InboxStatus.PENDING), distinct=True),
        inbox_failed=Count("inbox", filter=Q(inbox__status__in=[InboxStatus.FAILED, InboxStatus.MALFORMED]), distinct=True),
        last_event_at=Max("inbox__received_at"),
    )
    outbox = {
        row["account_id"]: row
        for row in OutboxMessage.objects.in_workspace(workspace).values("account_id").annotate(
            outbox_pending=Count("id", filter=Q(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING])),
            outbox_failed=Count("id", filter=Q(status=OutboxStatus.FAILED)),
        )
    }
    rows = []
    for account in accounts.order_by("id"):
        try:
            capabilities = sorted(c.value for c in adapter_for(account).capabilities)
        except LookupError:
            capabilities = []
        counts = outbox.get(account.pk, {})
        rows.append({
            "id": account.pk, "kind": account.kind, "name": account.name, "external_id": account.external_id,
            "is_active": account.is_active, "capabilities": capabilities,
            "callback_path": f"/channels/wecom/{account.pk}/callback" if account.kind == "wecom" else "",
            "last_event_at": account.last_event_at, "inbox_pending": account.inbox_pending, "inbox_failed": account.inbox_failed,
            "outbox_pending": counts.get("outbox_pending", 0), "outbox_failed": counts.get("outbox_failed", 0),
        })
    return rows
