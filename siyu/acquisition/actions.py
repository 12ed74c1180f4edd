"""Writes for acquisition: channels, spend, live codes (活码) and scan routing.

Routing (:func:`do_route_scan`) is the hot path. It runs in one transaction that first
locks the live code row (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite every write
transaction is ``IMMEDIATE`` and so already serialised), then reads the counters, checks
the cap, and takes the seat. Because the check and the increment happen under the same
lock, concurrent scans queue up on the code and none can pass a cap; the conditional
``UPDATE ... WHERE seats_taken < capacity`` and a check constraint are a second guard.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.acquisition.errors import CodeUnavailable
from siyu.acquisition.models import (
    GROUP_CAPACITY_MAX,
    JOIN_WAY_MAX_GROUPS,
    AcquisitionChannel,
    ChannelSpend,
    CostModel,
    LiveCode,
    LiveCodeGroup,
    LiveCodeKind,
    LiveCodeStaff,
    LiveCodeStatus,
    Scan,
    ScanOutcome,
    SourceKind,
)
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.communities.models import Group, Membership
from siyu.contacts.models import Contact, Tag, TagSource
from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.models import Workspace

CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o/1/l/i: codes get typed from posters
CODE_LENGTH = 8
#: a second scan by the same visitor within this window goes to the same target, no new seat
REPEAT_WINDOW = dt.timedelta(hours=24)
CHANNEL_FIELDS = ("name", "kind", "owner", "cost_model", "cost_per_add", "welcome_message", "is_active", "tags", "groups")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def _money(value: Any, field: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValidationFailed(f"{field} must be a decimal amount", code="invalid_amount") from exc
    if amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise ValidationFailed(f"{field} must be ≥ 0 with at most 2 decimals", code="invalid_amount")
    return amount


# ---------------------------------------------------------------- channels


def _channel_fields(workspace: Workspace, values: dict[str, Any]) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in CHANNEL_FIELDS:
            raise ValidationFailed(f"unknown channel field {key!r}", code="unknown_field")
        if key == "name":
            value = (value or "").strip()
            if not value:
                raise ValidationFailed("channel name must not be empty", code="name_required")
        elif key == "kind" and value not in SourceKind.values:
            raise ValidationFailed(f"unknown channel kind {value!r}; expected {', '.join(SourceKind.values)}", code="invalid_kind")
        elif key == "cost_model" and value not in CostModel.values:
            raise ValidationFailed(f"unknown cost model {value!r}; expected {', '.join(CostModel.values)}", code="invalid_cost_model")
        elif key == "cost_per_add":
            value = _money(value, "cost_per_add")
        elif key == "owner" and value is not None:
            owner_id = value if isinstance(value, int) else value.pk
            value = Staff.objects.in_workspace(workspace).filter(pk=owner_id).first()
            if value is None:
                raise ValidationFailed(f"owner {owner_id} is not staff of this workspace", code="unknown_owner")
        clean[key] = value
    return clean


def _check_refs(workspace: Workspace, model: type[Tag] | type[Group], items: Sequence[Any], label: str) -> list[Any]:
    ids = [i if isinstance(i, int) else i.pk for i in items]
    found = list(model.objects.in_workspace(workspace).filter(pk__in=ids))
    if len(found) != len(set(ids)):
        raise NotFound(f"{label} not found", code=f"{label}_not_found")
    return found


def do_create_channel(workspace: Workspace, actor: Staff | None, *, key: str, name: str, **fields: Any) -> AcquisitionChannel:
    """Create an acquisition channel (引流渠道) with its cost, owner, tags, welcome message
    and groups. Records ``acquisition_channel.created``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if not _KEY_RE.match(key or ""):
        raise ValidationFailed("channel key: 1–32 of a-z 0-9 _ -, starting with a letter or digit", code="invalid_key")
    clean = _channel_fields(workspace, {"name": name, **fields})
    tags = _check_refs(workspace, Tag, clean.pop("tags", []) or [], "tag")
    groups = _check_refs(workspace, Group, clean.pop("groups", []) or [], "group")
    with transaction.atomic():
        if AcquisitionChannel.objects.in_workspace(workspace).filter(key=key).exists():
            raise ValidationFailed(f"a channel with key {key!r} already exists", code="channel_exists")
        channel = AcquisitionChannel.objects.create(workspace=workspace, key=key, **clean)
        channel.tags.set(tags)
        channel.groups.set(groups)
        record_audit(workspace, actor, "acquisition_channel.created", target=channel,
                     after={"key": key, "name": channel.name, "cost_model": channel.cost_model, "cost_per_add": channel.cost_per_add})
    return channel


def do_update_channel(channel: AcquisitionChannel, actor: Staff | None, **changes: Any) -> AcquisitionChannel:
    """Change a channel's settings (its key is permanent: contacts keep it as first
    touch). Records ``acquisition_channel.updated``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if "key" in changes:
        raise ValidationFailed("a channel's key cannot change (contacts keep it as their first touch)", code="key_immutable")
    workspace = channel.workspace
    clean = _channel_fields(workspace, changes)
    tags = clean.pop("tags", None)
    groups = clean.pop("groups", None)
    with transaction.atomic():
        before = {k: getattr(channel, k) for k in clean}
        for k, v in clean.items():
            setattr(channel, k, v)
        if clean:
            channel.save(update_fields=list(clean))
        if tags is not None:
            channel.tags.set(_check_refs(workspace, Tag, tags, "tag"))
        if groups is not None:
            channel.groups.set(_check_refs(workspace, Group, groups, "group"))
        record_audit(workspace, actor, "acquisition_channel.updated", target=channel, before=before,
                     after={k: getattr(channel, k) for k in clean})
    return channel


def do_record_spend(
    channel: AcquisitionChannel, actor: Staff | None, *, starts_on: dt.date, ends_on: dt.date, amount: Any, note: str = ""
) -> ChannelSpend:
    """Record money spent on a channel for a period (per-period cost: a print run of
    parcel cards, a month of a partner shop). Records ``acquisition_channel.spend_recorded``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if ends_on < starts_on:
        raise ValidationFailed("a spend period must not end before it starts", code="invalid_period")
    value = _money(amount, "amount")
    with transaction.atomic():
        spend = ChannelSpend.objects.create(
            workspace_id=channel.workspace_id, channel=channel, starts_on=starts_on, ends_on=ends_on, amount=value, note=note[:200]
        )
        record_audit(channel.workspace, actor, "acquisition_channel.spend_recorded", target=channel,
                     after={"starts_on": starts_on, "ends_on": ends_on, "amount": value})
    return spend


# ---------------------------------------------------------------- live codes


def check_schedule(schedule: Any) -> dict[str, Any]:
    """Validate a staff schedule (see :class:`LiveCodeStaff`) and return it."""
    if not schedule:
        return {}
    if not isinstance(schedule, dict) or set(schedule) - {"weekly", "dates"}:
        raise ValidationFailed('schedule: expected {"weekly": {...}, "dates": {...}}', code="invalid_schedule")

    def spans(value: Any, where: str) -> None:
        if not isinstance(value, list):
            raise ValidationFailed(f"schedule {where}: expected a list of [start, end]", code="invalid_schedule")
        for span in value:
            if not (isinstance(span, list) and len(span) == 2 and all(isinstance(t, str) and _TIME_RE.match(t) for t in span)):
                raise ValidationFailed(f"schedule {where}: spans are [\"HH:MM\", \"HH:MM\"]", code="invalid_schedule")
            if span[0] >= span[1]:
                raise ValidationFailed(f"schedule {where}: a span must end after it starts", code="invalid_schedule")

    for day, value in (schedule.get("weekly") or {}).items():
        if day not in {str(d) for d in range(7)}:
            raise ValidationFailed("schedule weekly: days are \"0\" (Monday) to \"6\" (Sunday)", code="invalid_schedule")
        spans(value, f"weekly {day}")
    for date, value in (schedule.get("dates") or {}).items():
        try:
            dt.date.fromisoformat(date)
        except ValueError as exc:
            raise ValidationFailed(f"schedule dates: {date!r} is not YYYY-MM-DD", code="invalid_schedule") from exc
        spans(value, date)
    return dict(schedule)


def on_duty(schedule: dict[str, Any], local_now: dt.datetime) -> bool:
    """Whether a schedule covers a local time: a listed date wins over its weekday; no
    schedule means always."""
    if not schedule:
        return True
    dates = schedule.get("dates") or {}
    day_key = local_now.date().isoformat()
    if day_key in dates:
        spans = dates[day_key]
    elif "weekly" in schedule:
        spans = (schedule.get("weekly") or {}).get(str(local_now.weekday()), [])
    else:
        return True
    hhmm = local_now.strftime("%H:%M")
    return any(start <= hhmm < end for start, end in spans)


def do_create_live_code(
    workspace: Workspace,
    actor: Staff | None,
    *,
    channel: AcquisitionChannel,
    name: str,
    kind: str,
    channel_account: ChannelAccount | None = None,
    backup_staff: Staff | None = None,
    group_capacity: int = 200,
    window_size: int = JOIN_WAY_MAX_GROUPS,
    low_watermark: int = 2,
    auto_create_groups: bool = True,
    expires_at: dt.datetime | None = None,
) -> LiveCode:
    """Create a live code (活码) of a channel. Records ``live_code.created``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if channel.workspace_id != workspace.pk:
        raise NotFound("channel not found", code="channel_not_found")
    if kind not in LiveCodeKind.values:
        raise ValidationFailed(f"unknown live code kind {kind!r}; expected staff or group", code="invalid_kind")
    if not (name or "").strip():
        raise ValidationFailed("live code name must not be empty", code="name_required")
    if not 2 <= group_capacity <= GROUP_CAPACITY_MAX:
        raise ValidationFailed(f"group capacity must be between 2 and {GROUP_CAPACITY_MAX} (the channel's group limit)",
                               code="invalid_capacity")
    if not 1 <= window_size <= JOIN_WAY_MAX_GROUPS:
        raise ValidationFailed(f"window size must be between 1 and {JOIN_WAY_MAX_GROUPS} (a WeCom join way lists at most 5 groups)",
                               code="invalid_window")
    if not 0 <= low_watermark <= window_size:
        raise ValidationFailed("low watermark must be between 0 and the window size", code="invalid_window")
    if channel_account is not None and channel_account.workspace_id != workspace.pk:
        raise NotFound("channel account not found")
    if backup_staff is not None and backup_staff.workspace_id != workspace.pk:
        raise NotFound("staff not found", code="staff_not_found")
    with transaction.atomic():
        code = new_code()
        while LiveCode.objects.filter(code=code).exists():
            code = new_code()
        live_code = LiveCode.objects.create(
            workspace=workspace, channel=channel, code=code, name=name.strip()[:100], kind=kind, channel_account=channel_account,
            backup_staff=backup_staff, group_capacity=group_capacity, window_size=window_size, low_watermark=low_watermark,
            auto_create_groups=auto_create_groups, expires_at=expires_at,
        )
        record_audit(workspace, actor, "live_code.created", target=live_code,
                     after={"code": code, "kind": kind, "channel": channel.key, "state": live_code.state})
    return live_code


def do_set_live_code_status(live_code: LiveCode, actor: Staff | None, *, status: str, expires_at: dt.datetime | None = None) -> LiveCode:
    """Pause or resume a live code (and optionally move its expiry). Records
    ``live_code.status_set``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if status not in LiveCodeStatus.values:
        raise ValidationFailed(f"unknown status {status!r}; expected active or paused", code="invalid_status")
    with transaction.atomic():
        before = {"status": live_code.status, "expires_at": live_code.expires_at}
        live_code.status = status
        live_code.expires_at = expires_at if expires_at is not None else live_code.expires_at
        live_code.save(update_fields=["status", "expires_at"])
        record_audit(live_code.workspace, actor, "live_code.status_set", target=live_code, before=before,
                     after={"status": status, "expires_at": live_code.expires_at})
    return live_code


def do_add_code_staff(
    live_code: LiveCode,
    actor: Staff | None,
    *,
    staff: Staff,
    weight: int = 1,
    daily_cap: int = 0,
    total_cap: int = 0,
    schedule: dict[str, Any] | None = None,
    is_online: bool = True,
) -> LiveCodeStaff:
    """Add a staff member to a staff code with weight, caps (0 = none) and schedule.
    Records ``live_code.staff_added``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if live_code.kind != LiveCodeKind.STAFF:
        raise ValidationFailed("only a staff code routes to staff", code="wrong_code_kind")
    if staff.workspace_id != live_code.workspace_id:
        raise NotFound("staff not found", code="staff_not_found")
    if not 1 <= weight <= 100:
        raise ValidationFailed("weight must be between 1 and 100", code="invalid_weight")
    if daily_cap < 0 or total_cap < 0:
        raise ValidationFailed("caps must be ≥ 0 (0 = no cap)", code="invalid_cap")
    clean_schedule = check_schedule(schedule)
    with transaction.atomic():
        if LiveCodeStaff.objects.filter(live_code=live_code, staff=staff).exists():
            raise ValidationFailed(f"{staff.display_name} is already on this code", code="staff_already_on_code")
        slot = LiveCodeStaff.objects.create(
            workspace_id=live_code.workspace_id, live_code=live_code, staff=staff, weight=weight, daily_cap=daily_cap,
            total_cap=total_cap, schedule=clean_schedule, is_online=is_online, position=live_code.staff_slots.count(),
        )
        record_audit(live_code.workspace, actor, "live_code.staff_added", target=live_code,
                     after={"staff": staff.pk, "weight": weight, "daily_cap": daily_cap, "total_cap": total_cap})
    return slot


def do_update_code_staff(slot: LiveCodeStaff, actor: Staff | None, **changes: Any) -> LiveCodeStaff:
    """Change a staff slot: weight, caps, schedule, online/offline. Records
    ``live_code.staff_updated``."""
    require(actor, Perm.OPERATE_CHANNELS)
    allowed = {"weight", "daily_cap", "total_cap", "schedule", "is_online"}
    if unknown := set(changes) - allowed:
        raise ValidationFailed(f"unknown field {sorted(unknown)[0]!r}", code="unknown_field")
    if "schedule" in changes:
        changes["schedule"] = check_schedule(changes["schedule"])
    if "weight" in changes and not 1 <= changes["weight"] <= 100:
        raise ValidationFailed("weight must be between 1 and 100", code="invalid_weight")
    if any(changes.get(k, 0) < 0 for k in ("daily_cap", "total_cap")):
        raise ValidationFailed("caps must be ≥ 0 (0 = no cap)", code="invalid_cap")
    with transaction.atomic():
        before = {k: getattr(slot, k) for k in changes}
        for k, v in changes.items():
            setattr(slot, k, v)
        slot.save(update_fields=list(changes))
        record_audit(slot.live_code.workspace, actor, "live_code.staff_updated", target=slot.live_code, before=before, after=changes)
    return slot


def do_add_code_group(live_code: LiveCode, actor: Staff | None, *, group: Group, capacity: int | None = None) -> LiveCodeGroup:
    """Put a group in a group code's fill order. Its members present now take seats, so
    the code only routes into what is free. Records ``live_code.group_added``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if live_code.kind != LiveCodeKind.GROUP:
        raise ValidationFailed("only a group code routes to groups", code="wrong_code_kind")
    if group.workspace_id != live_code.workspace_id:
        raise NotFound("group not found", code="group_not_found")
    if group.archived_at is not None:
        raise ValidationFailed("the group is archived", code="group_archived")
    cap = min(capacity or live_code.group_capacity, group.capacity, GROUP_CAPACITY_MAX)
    if cap < 1:
        raise ValidationFailed("capacity must be ≥ 1", code="invalid_capacity")
    with transaction.atomic():
        locked = LiveCode.objects.select_for_update().get(pk=live_code.pk)
        return _add_group_slot(locked, actor, group, cap)


def _add_group_slot(live_code: LiveCode, actor: Staff | None, group: Group, capacity: int) -> LiveCodeGroup:
    if LiveCodeGroup.objects.filter(live_code=live_code, group=group).exists():
        raise ValidationFailed(f"group {group.name} is already on this code", code="group_already_on_code")
    present = Membership.objects.filter(group=group, left_at__isnull=True).count()
    taken = min(present, capacity)
    last = LiveCodeGroup.objects.filter(live_code=live_code).order_by("-position").values_list("position", flat=True).first()
    slot = LiveCodeGroup.objects.create(
        workspace_id=live_code.workspace_id, live_code=live_code, group=group, capacity=capacity, seats_taken=taken,
        position=(last or 0) + 1, filled_at=timezone.now() if taken >= capacity else None,
    )
    record_audit(live_code.workspace, actor, "live_code.group_added", target=live_code,
                 after={"group": group.pk, "capacity": capacity, "seats_taken": taken})
    return slot


# ---------------------------------------------------------------- routing


def _open_next_group(live_code: LiveCode, workspace: Workspace, now: dt.datetime) -> LiveCodeGroup | None:
    """Open one more group for a code whose window runs low (called under the code's
    lock, so two scans never both open one). Sandbox: the room exists at once. A channel
    that can create groups (Matrix): the group row now, the room through the outbox.
    WeCom (no API to create an external group): a staff task, and no group yet."""
    from siyu.channels.base import Capability, Command, CommandKind
    from siyu.channels.registry import adapter_for
    from siyu.communities.actions import do_create_group

    account = live_code.channel_account
    number = live_code.groups_created + 1
    name = live_code.group_name_template.format(channel=live_code.channel.name, code=live_code.name, n=number)[:100]
    if account is not None and not adapter_for(account).can(Capability.CREATE_GROUP):
        from siyu.channels.actions import do_create_staff_task

        do_create_staff_task(
            workspace.pk, kind="live_code_open_group", account=account, dedupe_key=f"livecode:{live_code.pk}:open:{number}",
            title=f"活码「{live_code.name}」的群快满了：请新建客户群「{name}」并加入活码",
            detail={"live_code": live_code.pk, "code": live_code.code, "group_name": name},
        )
        return None
    sandbox = account is None or account.kind == ChannelKind.SANDBOX
    group = do_create_group(
        workspace, None, name=name, channel_account=account, capacity=max(2, live_code.group_capacity),
        external_id=f"sbx-{live_code.code}-{number}" if sandbox and account is not None else "",
    )
    LiveCode.objects.filter(pk=live_code.pk).update(groups_created=F("groups_created") + 1)
    live_code.groups_created = number
    if account is not None and not sandbox:
        from siyu.channels.outbox import do_enqueue

        do_enqueue(account, Command(CommandKind.CREATE_GROUP, f"livecode-group:{group.pk}", "", {"name": name, "group_id": group.pk}))
    return _add_group_slot(live_code, None, group, min(live_code.group_capacity, group.capacity))


def _route_group(live_code: LiveCode, workspace: Workspace, now: dt.datetime) -> LiveCodeGroup | None:
    open_slots = list(
        LiveCodeGroup.objects.filter(live_code=live_code, filled_at__isnull=True, group__archived_at__isnull=True)
        .select_related("group").order_by("position", "id")[: live_code.window_size]
    )
    chosen = next((s for s in open_slots if s.seats_taken < s.capacity), None)
    if chosen is None and live_code.auto_create_groups:
        chosen = _open_next_group(live_code, workspace, now)
        open_slots = [chosen] if chosen is not None else []
    if chosen is None:
        return None
    # The lock on the code already serialises this; the guarded UPDATE makes the cap hold
    # even for a writer that forgot the lock.
    taken = LiveCodeGroup.objects.filter(pk=chosen.pk, seats_taken__lt=F("capacity")).update(seats_taken=F("seats_taken") + 1)
    if taken != 1:
        return None
    chosen.seats_taken += 1
    if chosen.seats_taken >= chosen.capacity:
        chosen.filled_at = now
        chosen.save(update_fields=["filled_at"])
    still_open = sum(1 for s in open_slots if s.seats_taken < s.capacity)
    if still_open < live_code.low_watermark and live_code.auto_create_groups:
        _open_next_group(live_code, workspace, now)
    return chosen


def _route_staff(live_code: LiveCode, workspace: Workspace, now: dt.datetime) -> LiveCodeStaff | None:
    local_now = now.astimezone(workspace.tz)
    today = local_now.date()
    eligible = []
    for slot in LiveCodeStaff.objects.filter(live_code=live_code).select_related("staff"):
        day_count = slot.day_count if slot.day == today else 0
        if not (slot.is_online and slot.staff.is_active and on_duty(slot.schedule, local_now)):
            continue
        if slot.daily_cap and day_count >= slot.daily_cap:
            continue
        if slot.total_cap and slot.total_count >= slot.total_cap:
            continue
        eligible.append((day_count / slot.weight, slot.total_count / slot.weight, slot.position, slot.pk, slot, day_count))
    if not eligible:
        return None
    *_, slot, day_count = min(eligible, key=lambda e: e[:4])
    slot.day, slot.day_count, slot.total_count = today, day_count + 1, slot.total_count + 1
    slot.save(update_fields=["day", "day_count", "total_count"])
    return slot


def do_route_scan(code: str, *, visitor_key: str, user_agent: str = "", invite_code: str = "", now: dt.datetime | None = None) -> Scan:
    """Route one scan of a live code (活码) and record it: a staff code picks an eligible
    staff member (online, on duty, under the daily and total caps; least loaded per
    weight) or the backup; a group code takes a seat in the first open group of the
    window and opens the next group when the window runs low. A repeat scan by the same
    visitor within 24 h goes to the same target without taking another seat.

    Raises :class:`NotFound` for an unknown code and :class:`CodeUnavailable` for a
    paused (503) or expired (410) code or one with no target left (503)."""
    now = now or timezone.now()
    row = LiveCode.objects.filter(code=code).values("pk", "status", "expires_at").first()
    if row is None:
        raise NotFound("this code does not exist", code="live_code_not_found")
    _check_available(row["status"], row["expires_at"], now)
    with _write_gate(), transaction.atomic():
        live_code = LiveCode.objects.select_for_update(of=("self",)).select_related("workspace", "channel", "channel_account").get(pk=row["pk"])
        _check_available(live_code.status, live_code.expires_at, now)
        workspace = live_code.workspace
        scan = Scan(workspace=workspace, live_code=live_code, scanned_at=now, visitor_key=visitor_key[:64],
                    user_agent=user_agent[:300], invite_code=invite_code[:16])
        previous = (
            Scan.objects.filter(live_code=live_code, visitor_key=scan.visitor_key, scanned_at__gte=now - REPEAT_WINDOW)
            .exclude(outcome=ScanOutcome.EXHAUSTED).order_by("-scanned_at", "-id").first()
        )
        if previous is not None:
            scan.outcome, scan.staff_id, scan.group_id = ScanOutcome.REPEAT, previous.staff_id, previous.group_id
        elif live_code.kind == LiveCodeKind.GROUP:
            slot = _route_group(live_code, workspace, now)
            scan.outcome, scan.group = (ScanOutcome.GROUP, slot.group) if slot else (ScanOutcome.EXHAUSTED, None)
        else:
            staff_slot = _route_staff(live_code, workspace, now)
            if staff_slot is not None:
                scan.outcome, scan.staff = ScanOutcome.STAFF, staff_slot.staff
            elif live_code.backup_staff_id is not None:
                scan.outcome, scan.staff_id = ScanOutcome.BACKUP, live_code.backup_staff_id
            else:
                scan.outcome = ScanOutcome.EXHAUSTED
        scan.save()
        LiveCode.objects.filter(pk=live_code.pk).update(scan_count=F("scan_count") + 1)
    if scan.outcome == ScanOutcome.EXHAUSTED:
        raise CodeUnavailable("every target of this code is full or off duty right now", code="live_code_exhausted", status=503)
    return scan


_SQLITE_WRITES = threading.Lock()


def _write_gate() -> AbstractContextManager[Any]:
    """On SQLite, threads of one process take turns before asking for the database write
    lock: SQLite's own busy handler sleeps and retries, which under a spike of scans
    costs far more than waiting on a mutex. PostgreSQL needs no gate (row locks)."""
    return _SQLITE_WRITES if connection.vendor == "sqlite" else nullcontext()


def _check_available(status: str, expires_at: dt.datetime | None, now: dt.datetime) -> None:
    if status == LiveCodeStatus.PAUSED:
        raise CodeUnavailable("this code is paused", code="live_code_paused", status=503)
    if expires_at is not None and expires_at <= now:
        raise CodeUnavailable("this code has expired", code="live_code_expired", status=410)


def do_record_arrival(contact: Contact, *, state: str, occurred_at: dt.datetime | None = None) -> Scan | None:
    """Close the loop when a contact arrives through a live code (the add or join event
    carries ``state``): links the visitor's scan to the contact, applies the channel's
    tags and records a ``scan`` timeline event; a fission sharer's state (``fx:<invite>``)
    also records the invite. Returns the linked scan, if any. Safe to
    call twice (the timeline key and the scan link make a replay a no-op)."""
    from siyu.acquisition.queries import INVITE_PREFIX, live_code_for_state
    from siyu.contacts.actions import do_record_event, do_tag_contacts

    live_code = live_code_for_state(contact.workspace_id, state)
    if live_code is None:
        return None
    when = occurred_at or timezone.now()
    invite_code = state[len(INVITE_PREFIX):] if state.startswith(INVITE_PREFIX) else ""
    with transaction.atomic():
        candidates = Scan.objects.select_for_update().filter(live_code=live_code, contact__isnull=True, scanned_at__lte=when)
        if invite_code:
            candidates = candidates.filter(invite_code=invite_code)
        scan = candidates.exclude(outcome=ScanOutcome.EXHAUSTED).order_by("-scanned_at", "-id").first()
        if Scan.objects.filter(live_code=live_code, contact=contact).exists():
            scan = None
        if scan is not None:
            scan.contact = contact
            scan.save(update_fields=["contact"])
        do_record_event(contact, "scan", idempotency_key=f"arrival:{live_code.pk}:{contact.pk}", occurred_at=when,
                        data={"live_code": live_code.code, "channel": live_code.channel.key, "scan": scan.pk if scan else None})
        tags = list(live_code.channel.tags.all())
        if tags:
            do_tag_contacts(contact.workspace, None, [contact], tags, source=TagSource.CHANNEL, reason=f"live code {live_code.code}")
        if invite_code:
            from siyu.campaigns.actions import do_record_invite

            do_record_invite(invite_code, contact, visitor_key=scan.visitor_key if scan else "", occurred_at=when)
    return scan
