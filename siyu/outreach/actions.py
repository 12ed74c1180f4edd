"""Writes for outreach: materials (素材库), the quota policy, group sets, and every send
that goes through the quota ledger (deliveries), broadcasts (群发) and columns (栏目).

Sending (``do_send_to_contact`` / ``do_send_to_group``): one transaction locks the
recipient's row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write
transaction is ``IMMEDIATE`` and so already serialised), reads the recipient's counted
slots, asks the ledger, and writes the :class:`Delivery` with its decision. Because the
check and the slot are taken under one lock, two senders racing for the last slot of a
contact cannot both win. Then the delivery is

- **sent** — an outbox row through the channel adapter (sandbox, Matrix: direct sends);
- **queued** — it holds its slot but waits: for a staff member to confirm the WeCom
  mass-message task (企业群发 goes out only after that tap), or for its planned time;
- **deferred** — stored with the next allowed slot; :func:`do_send_due_deliveries`
  (every minute) asks the ledger again when it is due;
- **skipped** — with the reason (no consent, no channel, no slot before it expires).

Nothing is dropped silently and nothing is sent twice: the idempotency key is unique
per workspace, and the outbox key derives from the delivery.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.channels.base import Capability, Command, CommandKind
from siyu.channels.models import ChannelAccount, StaffTask, StaffTaskStatus
from siyu.channels.registry import adapter_for
from siyu.communities.models import Group
from siyu.contacts.models import Contact
from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.models import Workspace
from siyu.outreach import quota
from siyu.outreach.content import render, validate_content
from siyu.outreach.models import (
    ConsentMode,
    Delivery,
    DeliveryStatus,
    GroupSet,
    Material,
    MaterialKind,
    QuotaPolicy,
)

MASS_TASK_KIND = "mass_message"

_SQLITE_WRITES = threading.Lock()


def _write_gate() -> AbstractContextManager[Any]:
    """On SQLite, threads of one process take turns before asking for the write lock (the
    busy handler's sleep-and-retry costs far more than a mutex); PostgreSQL uses row locks."""
    return _SQLITE_WRITES if connection.vendor == "sqlite" else nullcontext()


# ---------------------------------------------------------------- materials


def _clean_material(kind: str, text: str, data: Mapping[str, Any] | None, name: str) -> tuple[dict[str, Any], list[str]]:
    if not name.strip():
        raise ValidationFailed("name: a material needs a name", code="invalid_material")
    return validate_content(kind, text, data)


def do_create_material(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    kind: str = MaterialKind.TEXT,
    text: str = "",
    data: Mapping[str, Any] | None = None,
    folder: str = "",
    tags: Iterable[str] = (),
) -> Material:
    """Add a material to the library (素材库). Unknown variables are refused here, not at
    send time. Records ``material.created``."""
    require(actor, Perm.MANAGE_OUTREACH)
    clean, variables = _clean_material(kind, text, data, name)
    with transaction.atomic():
        material = Material.objects.create(
            workspace=workspace, name=name.strip()[:100], kind=kind, text=text, data=clean, folder=folder.strip()[:100],
            tags=sorted({t.strip() for t in tags if t.strip()}), variables=variables, created_by=actor,
        )
        record_audit(workspace, actor, "material.created", target=material, after={"name": material.name, "kind": kind})
    return material


IMAGE_MAX_BYTES = 10 * 1024 * 1024  # WeCom refuses larger images in mass messages
IMAGE_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif"}


def do_upload_material_image(
    workspace: Workspace, actor: Staff | None, *, name: str, data: bytes, folder: str = "", tags: Iterable[str] = (), text: str = ""
) -> Material:
    """Store an uploaded image under ``SIYU_HOME/media/materials/<workspace>/`` (named by
    its content hash, so the same picture twice is one file) and add it to the library.
    Only JPEG, PNG and GIF up to 10 MB. Records ``material.created``."""
    import hashlib
    import io

    from django.conf import settings
    from PIL import Image, UnidentifiedImageError

    require(actor, Perm.MANAGE_OUTREACH)
    if len(data) > IMAGE_MAX_BYTES:
        raise ValidationFailed("file: images up to 10 MB", code="invalid_material")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            image_format = str(image.format)
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValidationFailed("file: not a readable image", code="invalid_material") from exc
    if image_format not in IMAGE_FORMATS:
        raise ValidationFailed("file: JPEG, PNG or GIF only", code="invalid_material")
    relative = f"materials/{workspace.pk}/{hashlib.sha256(data).hexdigest()[:32]}{IMAGE_FORMATS[image_format]}"
    from pathlib import Path

    path = Path(settings.MEDIA_ROOT) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(data)
    return do_create_material(workspace, actor, name=name, kind=MaterialKind.IMAGE, text=text, data={"file": relative}, folder=folder, tags=tags)


def do_update_material(material: Material, actor: Staff | None, **changes: Any) -> Material:
    """Change a material's name, text, data, folder or tags (validated as on creation).
    Records ``material.updated``."""
    require(actor, Perm.MANAGE_OUTREACH)
    allowed = {"name", "text", "data", "folder", "tags"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"cannot change {', '.join(sorted(unknown))}", code="invalid_field")
    name = changes.get("name", material.name)
    text = changes.get("text", material.text)
    clean, variables = _clean_material(material.kind, text, changes.get("data", material.data), name)
    before = {"name": material.name, "text": material.text, "data": material.data, "folder": material.folder, "tags": material.tags}
    with transaction.atomic():
        material.name, material.text, material.data, material.variables = name.strip()[:100], text, clean, variables
        material.folder = str(changes.get("folder", material.folder)).strip()[:100]
        material.tags = sorted({str(t).strip() for t in changes.get("tags", material.tags) if str(t).strip()})
        material.save(update_fields=["name", "text", "data", "variables", "folder", "tags", "updated_at"])
        record_audit(material.workspace, actor, "material.updated", target=material, before=before,
                     after={"name": material.name, "text": material.text, "data": material.data, "folder": material.folder, "tags": material.tags})
    return material


def do_archive_material(material: Material, actor: Staff | None) -> Material:
    """Hide a material from the library (broadcasts that used it keep it). Records
    ``material.archived``."""
    require(actor, Perm.MANAGE_OUTREACH)
    if material.archived_at is None:
        with transaction.atomic():
            material.archived_at = timezone.now()
            material.save(update_fields=["archived_at"])
            record_audit(material.workspace, actor, "material.archived", target=material)
    return material


# ---------------------------------------------------------------- quota policy and group sets


POLICY_FIELDS = (
    "contact_marketing_cap", "contact_window_days", "group_marketing_cap", "group_window_days", "reminder_cap",
    "reminder_window_hours", "quiet_start", "quiet_end", "consent_mode", "default_expiry_hours",
)


def get_policy(workspace: Workspace) -> QuotaPolicy:
    """The workspace's policy row (an unsaved default when none was set)."""
    return QuotaPolicy.objects.in_workspace(workspace).first() or QuotaPolicy(workspace=workspace)


def do_set_quota_policy(workspace: Workspace, actor: Staff | None, **values: Any) -> QuotaPolicy:
    """Set the brand's own caps, quiet hours and consent mode for the whole workspace.
    Records ``quota_policy.updated``."""
    require(actor, Perm.MANAGE_OUTREACH)
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationFailed(f"unknown policy field {', '.join(sorted(unknown))}", code="invalid_field")
    for key in ("contact_window_days", "group_window_days", "reminder_window_hours", "default_expiry_hours"):
        if key in values and int(values[key]) < 1:
            raise ValidationFailed(f"{key} must be at least 1", code="invalid_policy")
    for key in ("contact_marketing_cap", "group_marketing_cap", "reminder_cap"):
        if key in values and int(values[key]) < 0:
            raise ValidationFailed(f"{key} must be 0 or more", code="invalid_policy")
    for key in ("quiet_start", "quiet_end"):
        if key in values and isinstance(values[key], str):
            try:
                values[key] = dt.time.fromisoformat(values[key])
            except ValueError as exc:
                raise ValidationFailed(f"{key} must be HH:MM", code="invalid_policy") from exc
    if "consent_mode" in values and values["consent_mode"] not in ConsentMode.values:
        raise ValidationFailed(f"consent_mode must be one of {', '.join(ConsentMode.values)}", code="invalid_policy")
    with transaction.atomic():
        policy, _created = QuotaPolicy.objects.get_or_create(workspace=workspace)
        before = {k: getattr(policy, k) for k in POLICY_FIELDS}
        for key, value in values.items():
            setattr(policy, key, value)
        policy.save(update_fields=[*values.keys(), "updated_at"])
        record_audit(workspace, actor, "quota_policy.updated", target=policy, before=before, after={k: getattr(policy, k) for k in POLICY_FIELDS})
    return policy


def _groups_of(workspace: Workspace, group_ids: Iterable[int]) -> list[Group]:
    ids = sorted({int(g) for g in group_ids})
    groups = list(Group.objects.in_workspace(workspace).filter(pk__in=ids))
    missing = sorted(set(ids) - {g.pk for g in groups})
    if missing:
        raise NotFound(f"group {missing[0]} not found")
    return groups


def do_create_group_set(workspace: Workspace, actor: Staff | None, *, name: str, group_ids: Iterable[int]) -> GroupSet:
    """Name a set of groups (群组合) for broadcasts and columns. Records ``group_set.created``."""
    require(actor, Perm.MANAGE_OUTREACH)
    if not name.strip():
        raise ValidationFailed("name: a group set needs a name", code="invalid_group_set")
    groups = _groups_of(workspace, group_ids)
    with transaction.atomic():
        if GroupSet.objects.in_workspace(workspace).filter(name=name.strip()).exists():
            raise ValidationFailed(f"name: a group set called {name.strip()!r} exists", code="duplicate_name")
        group_set = GroupSet.objects.create(workspace=workspace, name=name.strip()[:100])
        group_set.groups.set(groups)
        record_audit(workspace, actor, "group_set.created", target=group_set, after={"name": group_set.name, "groups": [g.pk for g in groups]})
    return group_set


# ---------------------------------------------------------------- sending through the ledger


def _check_send_args(message_class: str, idempotency_key: str) -> str:
    if message_class not in quota.MESSAGE_CLASSES:
        raise ValidationFailed(f"unknown message class {message_class!r} (one of {', '.join(quota.MESSAGE_CLASSES)})", code="unknown_message_class")
    key = idempotency_key.strip()[:200]
    if not key:
        raise ValidationFailed("a send needs an idempotency key", code="idempotency_key_required")
    return key


def _log(decision: quota.QuotaDecision, at: dt.datetime) -> dict[str, Any]:
    return {"checked_at": at.isoformat(), **decision.as_dict()}


def _apply_decision(delivery: Delivery, decision: quota.QuotaDecision, at: dt.datetime, expires_at: dt.datetime | None) -> None:
    """Set status/slot from the ledger's decision (the caller saves)."""
    delivery.decisions = [*delivery.decisions, _log(decision, at)]
    if decision.allowed:
        delivery.status, delivery.slot_at, delivery.reason, delivery.rule = DeliveryStatus.QUEUED, at, "", ""
        delivery.planned_for = at
    elif decision.next_allowed_at is not None and (expires_at is None or decision.next_allowed_at <= expires_at):
        delivery.status, delivery.planned_for = DeliveryStatus.DEFERRED, decision.next_allowed_at
        delivery.reason, delivery.rule = decision.reason, decision.rule
    else:
        delivery.status, delivery.planned_for = DeliveryStatus.SKIPPED, None
        delivery.rule = decision.rule
        delivery.reason = decision.reason if decision.next_allowed_at is None else (
            f"{decision.reason}; next slot {decision.next_allowed_at:%Y-%m-%d %H:%M} UTC is after the send expires"
        )


def _expiry(workspace: Workspace, at: dt.datetime, expires_at: dt.datetime | None) -> dt.datetime:
    if expires_at is not None:
        return expires_at
    hours = QuotaPolicy.objects.in_workspace(workspace).values_list("default_expiry_hours", flat=True).first() or 72
    return at + dt.timedelta(hours=hours)


def _send_once(workspace: Workspace, key: str, *, at: dt.datetime, now: dt.datetime, actor: Staff | None, lock: Callable[[], object],
               plan: Callable[[], tuple[Delivery, dict[int, str]]]) -> Delivery:
    """The ledger's one write for a send, shared by :func:`do_send_to_contact` and
    :func:`do_send_to_group`: under the write gate, lock the target's row (``lock``: the
    lock that makes "check then take the slot" atomic), return the delivery stored under
    ``key`` if there is one, else store the one ``plan`` decides (with the external ids to
    dispatch to), dispatch it when it is queued for now, and record ``delivery.created``.
    A concurrent sender that stored the same key first wins."""
    try:
        with _write_gate(), transaction.atomic():
            lock()
            existing = Delivery.objects.filter(workspace=workspace, idempotency_key=key).first()
            if existing is not None:
                return existing
            delivery, external_ids = plan()
            with transaction.atomic():
                delivery.save()
            if delivery.status == DeliveryStatus.QUEUED and at <= now:
                _dispatch([delivery], external_ids)
            record_audit(workspace, actor, "delivery.created", target=delivery, summary=f"{delivery.status} {delivery.rule}".strip(),
                         after={"status": delivery.status, "rule": delivery.rule, "source": delivery.source})
    except IntegrityError:
        return Delivery.objects.get(workspace=workspace, idempotency_key=key)
    return delivery


def do_send_to_contact(
    workspace: Workspace,
    *,
    contact: Contact,
    content: Material | Mapping[str, Any],
    message_class: str,
    source: str,
    idempotency_key: str,
    at: dt.datetime | None = None,
    actor: Staff | None = None,
    expires_at: dt.datetime | None = None,
) -> Delivery:
    """Send a message to one contact through the quota ledger: sent (or queued for a
    staff-confirmed WeCom task), deferred to the next allowed slot, or skipped with the
    reason. The same ``idempotency_key`` again returns the first delivery and sends
    nothing. ``content`` is a material or inline content (variables are filled for the
    contact). Records ``delivery.created``."""
    key = _check_send_args(message_class, idempotency_key)
    if contact.workspace_id != workspace.pk:
        raise NotFound("contact not found")
    existing = Delivery.objects.filter(workspace=workspace, idempotency_key=key).first()
    if existing is not None:
        return existing
    now = timezone.now()
    at = at or now
    payload = render(content, contact=contact)

    def plan() -> tuple[Delivery, dict[int, str]]:
        account, external_id = quota.account_for_contact(workspace, contact)
        delivery = Delivery(
            workspace=workspace, idempotency_key=key, contact=contact, channel_account=account, message_class=message_class,
            source=source[:100], content=payload, requested_at=at, expires_at=_expiry(workspace, at, expires_at),
        )
        if account is None:
            delivery.status, delivery.rule, delivery.reason = DeliveryStatus.SKIPPED, "no_channel", "the contact has no identity on an active channel"
        else:
            delivery.platform = (quota.platform_for(account) or quota.PlatformRules("")).name
            target = quota.contact_target(workspace, contact, account, at)
            decision = quota.evaluate(quota.policy_for(workspace), target, message_class, at, until=delivery.expires_at)
            _apply_decision(delivery, decision, at, delivery.expires_at)
        return delivery, {contact.pk: external_id}

    return _send_once(workspace, key, at=at, now=now, actor=actor, lock=Contact.objects.select_for_update().filter(pk=contact.pk).first, plan=plan)


def _group_quiet(group: Group) -> tuple[dt.time, dt.time] | None:
    """The group's own quiet hours (community group settings), when it has some."""
    try:
        from siyu.communities.group_settings import effective
    except ImportError:  # the community settings layer is not installed: the workspace policy applies
        return None
    quiet = effective(group).values.get("quiet_hours")
    if not quiet:
        return None
    return dt.time.fromisoformat(str(quiet["start"])), dt.time.fromisoformat(str(quiet["end"]))


def do_send_to_group(
    workspace: Workspace,
    *,
    group: Group,
    content: Material | Mapping[str, Any],
    message_class: str,
    source: str,
    idempotency_key: str,
    at: dt.datetime | None = None,
    actor: Staff | None = None,
    expires_at: dt.datetime | None = None,
    column: Any = None,
    quiet: tuple[dt.time, dt.time] | None = None,
    tz_name: str = "",
) -> Delivery:
    """Post a message to one group through the quota ledger (per-group platform limit,
    the brand's group cap, quiet hours). Same outcomes and idempotency as
    :func:`do_send_to_contact`; on WeCom the post becomes a mass-message task for the
    group owner. Records ``delivery.created``."""
    key = _check_send_args(message_class, idempotency_key)
    if group.workspace_id != workspace.pk:
        raise NotFound("group not found")
    existing = Delivery.objects.filter(workspace=workspace, idempotency_key=key).first()
    if existing is not None:
        return existing
    now = timezone.now()
    at = at or now
    payload = render(content, group=group)

    def plan() -> tuple[Delivery, dict[int, str]]:
        account = group.channel_account
        delivery = Delivery(
            workspace=workspace, idempotency_key=key, group=group, channel_account=account, message_class=message_class,
            source=source[:100], content=payload, requested_at=at, expires_at=_expiry(workspace, at, expires_at), column=column,
        )
        if account is None or not account.is_active or not group.external_id or group.archived_at is not None:
            delivery.status, delivery.rule = DeliveryStatus.SKIPPED, "no_channel"
            delivery.reason = "the group is archived" if group.archived_at is not None else "the group is not connected to an active channel"
        else:
            delivery.platform = (quota.platform_for(account) or quota.PlatformRules("")).name
            target = quota.group_target(workspace, group, at, account=account, tz_name=tz_name, quiet=quiet or _group_quiet(group))
            decision = quota.evaluate(quota.policy_for(workspace), target, message_class, at, until=delivery.expires_at)
            _apply_decision(delivery, decision, at, delivery.expires_at)
        return delivery, {}

    return _send_once(workspace, key, at=at, now=now, actor=actor, lock=Group.objects.select_for_update().filter(pk=group.pk).first, plan=plan)


# ---------------------------------------------------------------- dispatch


def _sender_userid(account: ChannelAccount, staff: Staff | None) -> str:
    """The WeCom userid that confirms a mass-message task: the staff member's identity on
    the account (``StaffChannelIdentity``), else the account config's map of staff ids to
    userids (``config["staff_userids"]``); the sandbox invents one."""
    if staff is None:
        return ""
    from siyu.accounts.models import StaffChannelIdentity

    found = StaffChannelIdentity.objects.filter(account=account, staff=staff).values_list("external_id", flat=True).first()
    if found:
        return str(found)
    mapped = str(((account.config or {}).get("staff_userids") or {}).get(str(staff.pk), ""))
    if mapped:
        return mapped
    return f"staff:{staff.pk}" if account.kind == "sandbox" else ""


def _dispatch(deliveries: list[Delivery], external_ids: Mapping[int, str]) -> None:
    """Hand queued deliveries (already holding their slots) to their channels: direct
    sends through the outbox, or on WeCom one mass-message task per staff member and
    content (a StaffTask listing the members, plus the ``add_msg_template`` call when
    the staff member's WeCom userid is known). Runs inside the caller's transaction;
    loads what it needs for all deliveries in a few queries."""
    from siyu.channels.outbox import do_enqueue

    if not deliveries:
        return
    now = timezone.now()
    workspace_id = deliveries[0].workspace_id
    contact_ids = [d.contact_id for d in deliveries if d.contact_id is not None]
    group_ids = [d.group_id for d in deliveries if d.group_id is not None]
    missing = [cid for cid in contact_ids if cid not in external_ids]
    if missing:
        external_ids = {**external_ids, **{cid: ext for cid, (_acc, ext) in quota.contact_channels(workspace_id, missing).items()}}
    owners: dict[tuple[str, int], int | None] = {}
    for start in range(0, len(contact_ids), 5000):
        for pk, owner_id in Contact.objects.filter(pk__in=contact_ids[start:start + 5000]).values_list("pk", "owner_id"):
            owners[("c", pk)] = owner_id
    group_ext: dict[int, str] = {}
    for pk, owner_id, ext in Group.objects.filter(pk__in=group_ids).values_list("pk", "owner_id", "external_id"):
        owners[("g", pk)], group_ext[pk] = owner_id, ext
    accounts = {a.pk: a for a in ChannelAccount.objects.filter(pk__in={d.channel_account_id for d in deliveries if d.channel_account_id})}
    adapters = {pk: adapter_for(a) for pk, a in accounts.items()}
    tasks: dict[tuple[int, int | None, str, str], list[Delivery]] = {}
    skipped: list[int] = []
    for delivery in deliveries:
        to_group = delivery.group_id is not None
        adapter = adapters.get(delivery.channel_account_id or 0)
        target = group_ext.get(delivery.group_id or 0, "") if to_group else external_ids.get(delivery.contact_id or 0, "")
        if adapter is not None and adapter.can(Capability.SEND_GROUP_MESSAGE if to_group else Capability.SEND_DIRECT_MESSAGE):
            command = Command(
                kind=CommandKind.SEND_MESSAGE, idempotency_key=f"outreach:{delivery.pk}", target=target,
                payload={**delivery.content, "to": "group" if to_group else "contact"},
            )
            row, _created = do_enqueue(adapter.account, command)
            delivery.status, delivery.sent_at, delivery.outbox = DeliveryStatus.SENT, now, row
            delivery.save(update_fields=["status", "sent_at", "outbox"])
        elif adapter is not None and adapter.can(Capability.MASS_MESSAGE_TASK):
            owner = owners.get(("g", delivery.group_id or 0) if to_group else ("c", delivery.contact_id or 0))
            text = str(delivery.content.get("text", ""))
            tasks.setdefault((adapter.account.pk, owner, "group" if to_group else "single", text), []).append(delivery)
        else:
            delivery.status, delivery.rule, delivery.slot_at = DeliveryStatus.SKIPPED, "channel", None
            delivery.reason = "the channel cannot send this message"
            skipped.append(delivery.pk)
    if skipped:
        Delivery.objects.filter(pk__in=skipped).update(
            status=DeliveryStatus.SKIPPED, rule="channel", slot_at=None, reason="the channel cannot send this message"
        )
    for (account_id, staff_id, chat_type, text), members in tasks.items():
        targets = [group_ext.get(d.group_id or 0, "") if d.group_id is not None else external_ids.get(d.contact_id or 0, "") for d in members]
        _create_mass_tasks(accounts[account_id], staff_id, chat_type, text, members, targets)


def _create_mass_tasks(account: ChannelAccount, staff_id: int | None, chat_type: str, text: str, members: list[Delivery], targets: list[str]) -> None:
    from siyu.channels.actions import do_create_staff_task
    from siyu.channels.outbox import do_enqueue
    from siyu.channels.wecom.limits import limit

    staff = Staff.objects.filter(pk=staff_id).first() if staff_id else None
    userid = _sender_userid(account, staff)
    chunk = int(limit("mass.external_userids_max"))
    for start in range(0, len(members), chunk):
        part, ids = members[start:start + chunk], targets[start:start + chunk]
        first = part[0]
        title = f"群发确认: {len(part)} {'个群' if chat_type == 'group' else '位客户'} — {text[:40]}"
        task, _created = do_create_staff_task(
            account.workspace_id, kind=MASS_TASK_KIND, title=title, account=account, assignee=staff,
            dedupe_key=f"outreach:mass:{first.pk}:{len(part)}",
            detail={
                "chat_type": chat_type, "content": first.content, "delivery_ids": [d.pk for d in part],
                "external_ids": ids, "broadcast_id": first.broadcast_id, "sender_userid": userid,
                "note": "" if userid else "no WeCom userid known for this staff member: send it from the WeCom app by hand",
            },
        )
        outbox = None
        if userid:
            payload: dict[str, Any] = {"chat_type": chat_type, "text": text}
            if chat_type == "single":
                payload["external_userids"] = ids
            command = Command(kind=CommandKind.MASS_MESSAGE_TASK, idempotency_key=f"outreach:mass:{task.pk}", target=userid, payload=payload)
            outbox, _created = do_enqueue(account, command)
        Delivery.objects.filter(pk__in=[d.pk for d in part]).update(staff_task=task, outbox=outbox, sender=staff)
        for d in part:
            d.staff_task, d.outbox, d.sender = task, outbox, staff


def do_sync_mass_tasks(workspace: Workspace | int) -> dict[str, int]:
    """Pull back what staff did with WeCom mass-message tasks: a task marked done marks
    its queued deliveries sent (at the time it was done); a dismissed task releases their
    slots (cancelled, with the reason). Idempotent."""
    ws_id = workspace if isinstance(workspace, int) else workspace.pk
    counts = {"sent": 0, "cancelled": 0}
    queued = Delivery.objects.filter(workspace_id=ws_id, status=DeliveryStatus.QUEUED, staff_task__isnull=False)
    task_ids = set(queued.values_list("staff_task_id", flat=True))
    for task in StaffTask.objects.filter(pk__in=task_ids).exclude(status=StaffTaskStatus.OPEN):
        with transaction.atomic():
            rows = queued.filter(staff_task=task)
            if task.status == StaffTaskStatus.DONE:
                counts["sent"] += rows.update(status=DeliveryStatus.SENT, sent_at=task.done_at or timezone.now())
            else:
                counts["cancelled"] += rows.update(
                    status=DeliveryStatus.CANCELLED, slot_at=None, rule="staff_dismissed", reason="the staff member dismissed the mass-message task"
                )
    return counts


#: WeCom's per-customer result codes of a mass-message task (获取企业群发成员执行结果)
WECOM_SEND_STATUS = {
    2: "wecom: the customer is no longer the staff member's contact",
    3: "wecom: the customer already received another mass message (platform limit)",
}


def do_pull_wecom_mass_results(workspace: Workspace | int, *, transport: Any = None) -> dict[str, int]:
    """Pull back what WeCom did with the mass-message tasks siyu created: per staff member
    and task (``get_groupmsg_send_result``), a customer or group with status 1 marks its
    delivery sent at WeCom's send time; 2 and 3 mark it skipped with the reason (its slot
    released); 0 (not yet sent) leaves it queued. ``transport`` is for tests."""
    from siyu.channels.models import OutboxStatus
    from siyu.channels.wecom.adapter import WeComAdapter
    from siyu.contacts.models import ChannelIdentity

    ws_id = workspace if isinstance(workspace, int) else workspace.pk
    counts = {"sent": 0, "skipped": 0, "waiting": 0}
    rows = list(
        Delivery.objects.filter(
            workspace_id=ws_id, status=DeliveryStatus.QUEUED, channel_account__kind="wecom", outbox__status=OutboxStatus.SENT,
            outbox__command=CommandKind.MASS_MESSAGE_TASK.value,
        ).select_related("outbox", "channel_account", "group")
    )
    by_task: dict[tuple[int, str, str], list[Delivery]] = {}
    for delivery in rows:
        assert delivery.outbox is not None
        by_task.setdefault((delivery.channel_account_id or 0, delivery.outbox.external_id, delivery.outbox.target), []).append(delivery)
    identities = dict(
        ChannelIdentity.objects.filter(workspace_id=ws_id, contact_id__in=[d.contact_id for d in rows if d.contact_id]).values_list(
            "contact_id", "external_id"
        )
    )
    for (_account_id, msgid, userid), deliveries in by_task.items():
        adapter = WeComAdapter(deliveries[0].channel_account, transport=transport)  # type: ignore[arg-type]
        results: dict[str, tuple[int, int]] = {}
        with adapter.client() as client:
            cursor = ""
            for _page in range(100):
                send_list, cursor = client.get_groupmsg_send_result(msgid, userid, cursor=cursor, limit_=1000)
                for item in send_list:
                    key = str(item.get("external_userid") or item.get("chat_id") or "")
                    results[key] = (int(item.get("status", 0)), int(item.get("send_time") or 0))
                if not cursor:
                    break
        with transaction.atomic():
            for delivery in deliveries:
                key = delivery.group.external_id if delivery.group is not None else identities.get(delivery.contact_id or 0, "")
                status, send_time = results.get(key, (0, 0))
                if status == 1:
                    sent_at = dt.datetime.fromtimestamp(send_time, tz=dt.UTC) if send_time else timezone.now()
                    counts["sent"] += Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.QUEUED).update(status=DeliveryStatus.SENT, sent_at=sent_at)
                elif status in WECOM_SEND_STATUS:
                    counts["skipped"] += Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.QUEUED).update(
                        status=DeliveryStatus.SKIPPED, slot_at=None, rule=f"wecom.result_{status}", reason=WECOM_SEND_STATUS[status]
                    )
                else:
                    counts["waiting"] += 1
    return counts


def do_send_due_deliveries(now: dt.datetime | None = None, *, limit: int = 2000) -> dict[str, int]:
    """Every minute: queued deliveries whose planned time came are handed to their
    channel (they hold their slots); deferred ones that are due ask the ledger again —
    sent, deferred further, or skipped when no slot comes before they expire."""
    now = now or timezone.now()
    counts = {"dispatched": 0, "sent": 0, "deferred": 0, "skipped": 0}
    due_queued = list(
        Delivery.objects.filter(status=DeliveryStatus.QUEUED, planned_for__lte=now, outbox__isnull=True, staff_task__isnull=True)
        .select_related("contact", "group").order_by("planned_for", "id")[:limit]
    )
    for workspace_id in sorted({d.workspace_id for d in due_queued}):
        with transaction.atomic():
            batch = [d for d in due_queued if d.workspace_id == workspace_id]
            _dispatch(batch, {})
            counts["dispatched"] += len(batch)
    due_ids = list(
        Delivery.objects.filter(status=DeliveryStatus.DEFERRED, planned_for__lte=now).order_by("planned_for", "id").values_list("pk", flat=True)[:limit]
    )
    for pk in due_ids:
        status = _retry_deferred(pk, now)
        if status in counts:
            counts[status] += 1
    return counts


def _retry_deferred(delivery_id: int, now: dt.datetime) -> str:
    with _write_gate(), transaction.atomic():
        delivery = Delivery.objects.select_related("workspace", "contact", "group", "group__channel_account", "column").get(pk=delivery_id)
        if delivery.status != DeliveryStatus.DEFERRED:
            return "skipped_row"
        workspace = delivery.workspace
        external_ids: dict[int, str] = {}
        if delivery.contact is not None:
            Contact.objects.select_for_update().filter(pk=delivery.contact_id).first()
            account, external_id = quota.account_for_contact(workspace, delivery.contact)
            external_ids[delivery.contact.pk] = external_id
            target = quota.contact_target(workspace, delivery.contact, account, now) if account is not None else None
        else:
            assert delivery.group is not None
            Group.objects.select_for_update().filter(pk=delivery.group_id).first()
            account = delivery.group.channel_account
            column = delivery.column
            quiet = (column.quiet_start, column.quiet_end) if column is not None and column.quiet_start and column.quiet_end else _group_quiet(delivery.group)
            target = quota.group_target(workspace, delivery.group, now, account=account, tz_name=column.time_zone if column else "", quiet=quiet) if account is not None else None
        if target is None:
            delivery.status, delivery.rule, delivery.reason, delivery.planned_for = DeliveryStatus.SKIPPED, "no_channel", "the recipient is no longer reachable on any channel", None
        else:
            decision = quota.evaluate(quota.policy_for(workspace), target, delivery.message_class, now, until=delivery.expires_at)
            _apply_decision(delivery, decision, now, delivery.expires_at)
        delivery.save(update_fields=["status", "slot_at", "planned_for", "reason", "rule", "decisions"])
        if delivery.status == DeliveryStatus.QUEUED:
            _dispatch([delivery], external_ids)
        return "sent" if delivery.status in (DeliveryStatus.SENT, DeliveryStatus.QUEUED) else str(delivery.status)


def do_cancel_delivery(delivery: Delivery, actor: Staff | None, *, reason: str = "") -> Delivery:
    """Cancel a deferred or not-yet-dispatched delivery; it releases its slot. Records
    ``delivery.cancelled``."""
    require(actor, Perm.MANAGE_OUTREACH)
    with transaction.atomic():
        changed = Delivery.objects.filter(
            pk=delivery.pk, status__in=[DeliveryStatus.DEFERRED, DeliveryStatus.QUEUED], outbox__isnull=True, staff_task__isnull=True
        ).update(status=DeliveryStatus.CANCELLED, slot_at=None, rule="cancelled", reason=reason[:500] or "cancelled by staff")
        if changed:
            record_audit(delivery.workspace, actor, "delivery.cancelled", target=delivery, summary=reason[:300])
    delivery.refresh_from_db()
    return delivery


# ---------------------------------------------------------------- broadcasts (群发)


def _clean_audience(workspace: Workspace, actor: Staff | None, audience: Mapping[str, Any]) -> dict[str, Any]:
    from siyu.contacts.queries import visible_contacts
    from siyu.outreach.errors import InvalidAudience

    keys = [k for k in ("segment", "contacts", "groups", "group_set") if k in (audience or {})]
    if len(keys) != 1:
        raise InvalidAudience("audience: give exactly one of segment, contacts, groups or group_set")
    key = keys[0]
    value = audience[key]
    if key == "segment":
        from siyu.segments.models import Segment

        if not Segment.objects.in_workspace(workspace).filter(pk=int(value)).exists():
            raise InvalidAudience(f"audience.segment: segment {value} not found")
        return {"segment": int(value)}
    if key == "group_set":
        if not GroupSet.objects.in_workspace(workspace).filter(pk=int(value)).exists():
            raise InvalidAudience(f"audience.group_set: group set {value} not found")
        return {"group_set": int(value)}
    ids = sorted({int(v) for v in value or []})
    if not ids:
        raise InvalidAudience(f"audience.{key}: the list is empty")
    if key == "contacts":
        found = set(visible_contacts(workspace, actor).filter(pk__in=ids).values_list("pk", flat=True))
    else:
        found = set(Group.objects.in_workspace(workspace).filter(pk__in=ids).values_list("pk", flat=True))
    missing = [i for i in ids if i not in found]
    if missing:
        raise InvalidAudience(f"audience.{key}: {key[:-1]} {missing[0]} not found")
    return {key: ids}


def _clean_variants(workspace: Workspace, variants: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    cleaned: list[dict[str, Any]] = []
    for i, raw in enumerate(list(variants)):
        where = f"variants[{i}]"
        label = str(raw.get("label") or "ABCDE"[i] if i < 5 else "")
        weight = int(raw.get("weight") or 1)
        if weight < 1:
            raise ValidationFailed(f"{where}.weight: must be at least 1", code="invalid_variant")
        if raw.get("material_id"):
            material = Material.objects.in_workspace(workspace).filter(pk=int(raw["material_id"]), archived_at__isnull=True).first()
            if material is None:
                raise ValidationFailed(f"{where}.material_id: material {raw['material_id']} not found", code="invalid_variant")
            cleaned.append({"label": label, "weight": weight, "material": material, "content": {}})
            continue
        content = dict(raw.get("content") or {})
        kind = str(content.get("kind", MaterialKind.TEXT))
        data = {k: v for k, v in content.items() if k not in ("kind", "text")}
        clean, _used = validate_content(kind, str(content.get("text", "")), data, where=f"{where}.content")
        cleaned.append({"label": label, "weight": weight, "material": None, "content": {"kind": kind, "text": str(content.get("text", "")), **clean}})
    if not 1 <= len(cleaned) <= 5:
        raise ValidationFailed("variants: give 1 to 5 copy variants", code="invalid_variant")
    labels = [v["label"] for v in cleaned]
    if len(set(labels)) != len(labels) or any(not lbl or len(lbl) > 8 for lbl in labels):
        raise ValidationFailed("variants: labels must be distinct and 1–8 characters", code="invalid_variant")
    return cleaned


def _clean_schedule(schedule: Mapping[str, Any] | None) -> tuple[str, dt.datetime | None]:
    from siyu.outreach.models import ScheduleMode

    schedule = schedule or {"mode": ScheduleMode.NOW}
    mode = str(schedule.get("mode", ScheduleMode.NOW))
    if mode not in ScheduleMode.values:
        raise ValidationFailed(f"schedule.mode: one of {', '.join(ScheduleMode.values)}", code="invalid_schedule")
    when = schedule.get("at") or schedule.get("after")
    if isinstance(when, str):
        try:
            when = dt.datetime.fromisoformat(when)
        except ValueError as exc:
            raise ValidationFailed("schedule.at: an ISO date-time", code="invalid_schedule") from exc
    if when is not None and timezone.is_naive(when):
        raise ValidationFailed("schedule.at: give a time zone (e.g. 2026-12-01T20:00:00+08:00)", code="invalid_schedule")
    if mode == ScheduleMode.AT and when is None:
        raise ValidationFailed("schedule.at: a scheduled broadcast needs a time", code="invalid_schedule")
    return mode, when


def do_create_broadcast(
    workspace: Workspace,
    *,
    actor: Staff | None,
    name: str,
    audience: Mapping[str, Any],
    variants: Iterable[Mapping[str, Any]],
    schedule: Mapping[str, Any] | None = None,
    message_class: str = "marketing",
    auto_winner: bool = False,
    test_fraction: float = 0.2,
    winner_wait_hours: int = 24,
    expires_after_hours: int | None = None,
) -> Any:
    """Draft a broadcast (群发): audience (segment, contacts, groups or a group set), 1–5
    copy variants (materials or inline content, A/B split by weight), a schedule (now,
    at a time, or best time per recipient) and an optional automatic winner. Nothing is
    sent until :func:`do_send_broadcast`. Records ``broadcast.created``."""
    from siyu.outreach.models import Broadcast, BroadcastVariant

    require(actor, Perm.MANAGE_OUTREACH)
    if not name.strip():
        raise ValidationFailed("name: a broadcast needs a name", code="invalid_broadcast")
    if message_class not in quota.MESSAGE_CLASSES:
        raise ValidationFailed(f"message_class: one of {', '.join(quota.MESSAGE_CLASSES)}", code="unknown_message_class")
    if not 0 < test_fraction < 1:
        raise ValidationFailed("test_fraction: between 0 and 1", code="invalid_broadcast")
    clean_audience = _clean_audience(workspace, actor, audience)
    clean_variants = _clean_variants(workspace, variants)
    mode, when = _clean_schedule(schedule)
    expiry = expires_after_hours if expires_after_hours is not None else get_policy(workspace).default_expiry_hours
    with transaction.atomic():
        broadcast = Broadcast.objects.create(
            workspace=workspace, name=name.strip()[:200], audience=clean_audience, message_class=message_class, schedule_mode=mode,
            scheduled_at=when, expires_after_hours=max(1, int(expiry)), auto_winner=auto_winner and len(clean_variants) > 1,
            test_fraction=test_fraction, winner_wait_hours=winner_wait_hours, created_by=actor,
        )
        for variant in clean_variants:
            BroadcastVariant.objects.create(workspace=workspace, broadcast=broadcast, **variant)
        record_audit(workspace, actor, "broadcast.created", target=broadcast,
                     after={"name": broadcast.name, "audience": clean_audience, "variants": [v["label"] for v in clean_variants]})
    return broadcast


def do_send_broadcast(broadcast: Any, actor: Staff | None, *, now: dt.datetime | None = None) -> Any:
    """Plan and send a draft broadcast through the quota ledger: due sends go out (or
    become WeCom tasks per staff member), later ones hold their slots, others are
    deferred or skipped with the reason. With an automatic winner only the test fraction
    is planned now. Returns the :class:`~siyu.outreach.planning.PlanResult`. Records
    ``broadcast.sent``."""
    from dataclasses import asdict

    from siyu.outreach.models import Broadcast, BroadcastStatus
    from siyu.outreach.planning import plan_broadcast

    require(actor, Perm.MANAGE_OUTREACH)
    now = now or timezone.now()
    with transaction.atomic():
        claimed = Broadcast.objects.filter(pk=broadcast.pk, status__in=[BroadcastStatus.DRAFT, BroadcastStatus.SCHEDULED]).update(
            status=BroadcastStatus.SENDING, planned_at=now
        )
        if not claimed:
            from siyu.core.errors import Conflict

            raise Conflict(f"the broadcast is {broadcast.status}; only a draft can be sent", code="broadcast_not_draft")
        record_audit(broadcast.workspace, actor, "broadcast.sent", target=broadcast)
    broadcast.status, broadcast.planned_at = BroadcastStatus.SENDING, now
    result = plan_broadcast(broadcast, now=now)
    broadcast.plan_summary = {"test" if broadcast.auto_winner else "all": asdict(result)}
    broadcast.save(update_fields=["plan_summary"])
    return result


def do_cancel_broadcast(broadcast: Any, actor: Staff | None) -> Any:
    """Stop a broadcast: deliveries not yet handed to a channel are cancelled (their slots
    released). Records ``broadcast.cancelled``."""
    from siyu.outreach.models import BroadcastStatus

    require(actor, Perm.MANAGE_OUTREACH)
    with transaction.atomic():
        released = Delivery.objects.filter(
            broadcast=broadcast, status__in=[DeliveryStatus.DEFERRED, DeliveryStatus.QUEUED], outbox__isnull=True, staff_task__isnull=True
        ).update(status=DeliveryStatus.CANCELLED, slot_at=None, rule="cancelled", reason="the broadcast was cancelled")
        broadcast.status = BroadcastStatus.CANCELLED
        broadcast.save(update_fields=["status"])
        record_audit(broadcast.workspace, actor, "broadcast.cancelled", target=broadcast, after={"released": released})
    return broadcast


# ---------------------------------------------------------------- columns (栏目)


def do_create_column(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    time_of_day: dt.time | str,
    material_ids: Iterable[int],
    group_ids: Iterable[int] = (),
    group_set_id: int | None = None,
    weekdays: Iterable[int] = (),
    time_zone: str = "",
    quiet_start: dt.time | str | None = None,
    quiet_end: dt.time | str | None = None,
    message_class: str = "marketing",
    starts_on: dt.date | None = None,
    ends_on: dt.date | None = None,
) -> Any:
    """A recurring post (栏目) to groups or a group set: e.g. a morning brief every day at
    08:30, a sharing session every Thursday at 20:00, with the materials in rotation.
    Records ``column.created``."""
    from siyu.core.models import validate_time_zone
    from siyu.outreach.models import Column

    require(actor, Perm.MANAGE_OUTREACH)
    if not name.strip():
        raise ValidationFailed("name: a column needs a name", code="invalid_column")
    times: dict[str, dt.time | None] = {}
    for key, value in (("time_of_day", time_of_day), ("quiet_start", quiet_start), ("quiet_end", quiet_end)):
        try:
            times[key] = dt.time.fromisoformat(value) if isinstance(value, str) else value
        except ValueError as exc:
            raise ValidationFailed(f"{key}: HH:MM", code="invalid_column") from exc
    if (times["quiet_start"] is None) != (times["quiet_end"] is None):
        raise ValidationFailed("quiet hours need both a start and an end", code="invalid_column")
    days = sorted({int(d) for d in weekdays})
    if any(not 0 <= d <= 6 for d in days):
        raise ValidationFailed("weekdays: 0 (Monday) to 6 (Sunday)", code="invalid_column")
    if time_zone:
        try:
            validate_time_zone(time_zone)
        except Exception as exc:
            raise ValidationFailed(f"time_zone: unknown time zone {time_zone!r}", code="invalid_column") from exc
    if message_class not in quota.MESSAGE_CLASSES:
        raise ValidationFailed(f"message_class: one of {', '.join(quota.MESSAGE_CLASSES)}", code="unknown_message_class")
    materials = [int(m) for m in material_ids]
    found = set(Material.objects.in_workspace(workspace).filter(pk__in=materials, archived_at__isnull=True).values_list("pk", flat=True))
    if not materials or any(m not in found for m in materials):
        raise ValidationFailed("materials: give one or more materials of this workspace", code="invalid_column")
    groups = _groups_of(workspace, group_ids)
    group_set = None
    if group_set_id is not None:
        group_set = GroupSet.objects.in_workspace(workspace).filter(pk=group_set_id).first()
        if group_set is None:
            raise NotFound("group set not found")
    if not groups and group_set is None:
        raise ValidationFailed("a column posts to groups or a group set", code="invalid_column")
    local_today = timezone.now().astimezone(workspace.tz).date()
    with transaction.atomic():
        column = Column.objects.create(
            workspace=workspace, name=name.strip()[:100], group_set=group_set, weekdays=days, time_of_day=times["time_of_day"],
            time_zone=time_zone, quiet_start=times["quiet_start"], quiet_end=times["quiet_end"], materials=materials,
            message_class=message_class, starts_on=starts_on or local_today, ends_on=ends_on, created_by=actor,
        )
        column.groups.set(groups)
        record_audit(workspace, actor, "column.created", target=column, after={"name": column.name, "weekdays": days, "time": str(times["time_of_day"])})
    return column


def do_set_column_active(column: Any, actor: Staff | None, *, is_active: bool) -> Any:
    """Pause or resume a column. Records ``column.updated``."""
    require(actor, Perm.MANAGE_OUTREACH)
    with transaction.atomic():
        column.is_active = is_active
        column.save(update_fields=["is_active"])
        record_audit(column.workspace, actor, "column.updated", target=column, after={"is_active": is_active})
    return column


#: how far back a late run still posts a missed occurrence (a brief 6 hours late is news;
#: a day late it is noise)
COLUMN_CATCH_UP = dt.timedelta(hours=6)


def column_occurrences(column: Any, since: dt.datetime, until: dt.datetime) -> list[tuple[int, dt.datetime]]:
    """(occurrence number, time) of the column's posts in (since, until], in its zone;
    the number counts occurrences from ``starts_on`` and picks the rotation's material."""
    tz = quota.zone(column.time_zone, column.workspace.tz)
    days = set(column.weekdays or range(7))
    found: list[tuple[int, dt.datetime]] = []
    day = max(since.astimezone(tz).date(), column.starts_on)
    last = until.astimezone(tz).date()
    if column.ends_on is not None:
        last = min(last, column.ends_on)
    while day <= last:
        when = dt.datetime.combine(day, column.time_of_day, tzinfo=tz)
        if day.weekday() in days and since < when <= until:
            elapsed = (day - column.starts_on).days
            number = (elapsed // 7) * len(days) + sum(1 for k in range(elapsed % 7) if (column.starts_on + dt.timedelta(days=k)).weekday() in days) \
                if column.weekdays else elapsed
            found.append((number, when))
        day += dt.timedelta(days=1)
    return found


def do_run_due_columns(now: dt.datetime | None = None) -> dict[str, int]:
    """Turn due column occurrences into group posts through the ledger, once each: the
    key is (column, group, occurrence date), so a restart or an overlapping run never
    posts twice."""
    from siyu.outreach.models import Column, Material

    now = now or timezone.now()
    counts: dict[str, int] = {}
    columns = Column.objects.filter(is_active=True).select_related("workspace", "group_set")
    for column in columns:
        since = max(column.last_run_at or (now - COLUMN_CATCH_UP), now - COLUMN_CATCH_UP)
        occurrences = column_occurrences(column, since, now)
        if occurrences:
            groups = {g.pk: g for g in column.groups.filter(archived_at__isnull=True).select_related("channel_account", "owner")}
            if column.group_set_id:
                groups |= {g.pk: g for g in column.group_set.groups.filter(archived_at__isnull=True).select_related("channel_account", "owner")}
            materials = {m.pk: m for m in Material.objects.filter(workspace=column.workspace, pk__in=column.materials)}
            rotation = [materials[m] for m in column.materials if m in materials]
            quiet = (column.quiet_start, column.quiet_end) if column.quiet_start and column.quiet_end else None
            for number, when in occurrences:
                if not rotation:
                    break
                material = rotation[number % len(rotation)]
                for group in groups.values():
                    delivery = do_send_to_group(
                        column.workspace, group=group, content=material, message_class=column.message_class, source=f"column:{column.pk}",
                        idempotency_key=f"column:{column.pk}:group:{group.pk}:{when.date().isoformat()}", at=when,
                        expires_at=when + dt.timedelta(hours=12), column=column, quiet=quiet, tz_name=column.time_zone,
                    )
                    counts[str(delivery.status)] = counts.get(str(delivery.status), 0) + 1
        Column.objects.filter(pk=column.pk).update(last_run_at=now)
    return counts
