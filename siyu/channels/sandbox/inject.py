"""Inject events into the sandbox channel as if the platform had sent them
(``siyu sandbox say``); they take the same inbox → worker → actions path."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone

from siyu.channels.base import InboundEvent, InboundKind
from siyu.channels.inbox import do_receive
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.communities.models import Group
from siyu.core.errors import NotFound
from siyu.core.models import Workspace


def sandbox_account(workspace: Workspace) -> ChannelAccount:
    account = ChannelAccount.objects.in_workspace(workspace).filter(kind=ChannelKind.SANDBOX, is_active=True).order_by("id").first()
    if account is None:
        raise NotFound(f"workspace {workspace.slug!r} has no sandbox channel account", code="no_sandbox_account")
    return account


def _group(workspace: Workspace, account: ChannelAccount, ref: str) -> Group:
    qs = Group.objects.in_workspace(workspace).filter(channel_account=account)
    group = qs.filter(pk=int(ref)).first() if ref.isdigit() else None
    group = group or qs.filter(external_id=ref).first() or qs.filter(name=ref).first()
    if group is None:
        raise NotFound(f"no sandbox group {ref!r} (use its id, external id or name)", code="group_not_found")
    if not group.external_id:
        raise NotFound(f"group {group.name!r} has no channel id", code="group_not_on_channel")
    return group


def say(workspace: Workspace, *, group: str, member: str, text: str, member_name: str = "") -> dict[str, Any]:
    """A member posts ``text`` in a sandbox group. Returns what was stored and what the
    pipeline did (in immediate mode or once the worker ran)."""
    account = sandbox_account(workspace)
    target = _group(workspace, account, group)
    message_id = f"sbx-msg-{uuid.uuid4().hex[:16]}"
    event = InboundEvent(
        kind=InboundKind.MESSAGE,
        dedupe_key=message_id,
        occurred_at=timezone.now(),
        data={"group_id": target.external_id, "group_name": target.name, "sender_id": member, "sender_name": member_name or member,
              "message_id": message_id, "text": text, "msgtype": "text"},
    )
    ((row, _),) = do_receive(account, [event])
    row.refresh_from_db()
    from siyu.moderation.models import ModerationCase

    case = ModerationCase.objects.filter(message__group=target, message__external_id=message_id).first()
    return {
        "inbox_id": row.pk,
        "status": row.status,
        "group_id": target.pk,
        "message_id": message_id,
        "verdict": case.verdict if case else ("allow" if row.status == "processed" else None),
        "reasons": case.reasons if case else [],
    }


def join(workspace: Workspace, *, group: str, member: str, member_name: str = "") -> dict[str, Any]:
    """A member joins a sandbox group."""
    account = sandbox_account(workspace)
    target = _group(workspace, account, group)
    event = InboundEvent(
        kind=InboundKind.MEMBER_JOINED,
        dedupe_key=f"sbx-join-{uuid.uuid4().hex[:16]}",
        occurred_at=timezone.now(),
        data={"group_id": target.external_id, "member_id": member, "member_name": member_name or member, "join_source": "sandbox"},
    )
    ((row, _),) = do_receive(account, [event])
    row.refresh_from_db()
    return {"inbox_id": row.pk, "status": row.status, "group_id": target.pk}
