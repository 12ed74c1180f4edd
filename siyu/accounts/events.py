"""Audit records. Every action calls :func:`record_audit` inside its transaction."""

from __future__ import annotations

import contextvars
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from siyu.accounts.models import AuditEntry, Staff
from siyu.core.models import Workspace

#: Which surface a write came through (api, console, cli, worker); set by each surface.
current_via: contextvars.ContextVar[str] = contextvars.ContextVar("siyu_via", default="")


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False))


def record_audit(
    workspace: Workspace,
    actor: Staff | None,
    action: str,
    *,
    target: Any = None,
    target_type: str = "",
    target_id: Any = "",
    summary: str = "",
    before: Any = None,
    after: Any = None,
) -> AuditEntry:
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or target.pk
    return AuditEntry.objects.create(
        workspace=workspace,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=str(target_id or ""),
        summary=summary[:300],
        before=_jsonable(before),
        after=_jsonable(after),
        via=current_via.get(),
    )
