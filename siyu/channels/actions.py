"""Writes for channel accounts."""

from __future__ import annotations

from django.db import transaction

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace


def do_create_channel_account(
    workspace: Workspace, actor: Staff | None, *, kind: str, name: str, external_id: str = "", config: dict | None = None
) -> ChannelAccount:
    """Connect a channel account to the workspace. Records ``channel_account.created``."""
    require(actor, Perm.MANAGE_WORKSPACE)
    if kind not in ChannelKind.values:
        raise ValidationFailed(f"unknown channel kind {kind!r}", code="unknown_channel")
    with transaction.atomic():
        account, created = ChannelAccount.objects.get_or_create(
            workspace=workspace, kind=kind, name=name, defaults={"external_id": external_id, "config": config or {}}
        )
        if created:
            record_audit(workspace, actor, "channel_account.created", target=account, after={"kind": kind, "name": name})
    return account
