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
from siyu.accounts.models import Staff, StaffChannelIdentity
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
    SyncStatus,
)
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.communities.models import Group, Membership
from siyu.contacts.models import Contact, Tag, TagSource
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Workspace

CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o/1/l/i: codes get typed from posters
CODE_LENGTH = 8
#: a second scan by the same visitor within this window goes to the same target, no new seat
REPEAT_WINDOW = dt.timedelta(hours=24)
#: outcomes that hold a target (a seat or an add of a staff member's allowance, or the backup)
ROUTED = (ScanOutcome.STAFF, ScanOutcome.BACKUP, ScanOutcome.GROUP)
#: outcomes that took a seat / an allowance and so can give it back
SEAT_TAKING = (ScanOutcome.STAFF, ScanOutcome.GROUP)
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


def _plain(value: Any) -> Any:
    # Audit rows are JSON: a related row is recorded by its id.
    return value.pk if hasattr(value, "pk") else value


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
        before = {k: _plain(getattr(channel, k)) for k in clean}
        for k, v in clean.items():
            setattr(channel, k, v)
        if clean:
            channel.save(update_fields=list(clean))
        if tags is not None:
            channel.tags.set(_check_refs(workspace, Tag, tags, "tag"))
        if groups is not None:
            channel.groups.set(_check_refs(workspace, Group, groups, "group"))
        record_audit(workspace, actor, "acquisition_channel.updated", target=channel, before=before,
                     after={k: _plain(getattr(channel, k)) for k in clean})
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
        if _on_wecom(live_code):
            slot.sync_status = SyncStatus.PENDING
            slot.save(update_fields=["sync_status"])
            request_code_sync(live_code)
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
    request_code_sync(live_code)
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
    cannot_create = account is not None and not adapter_for(account).can(Capability.CREATE_GROUP)
    # Groups that staff create by hand never bump groups_created, so the task's number
    # (and dedupe key) follows the groups on the code instead, one task per missing group.
    number = (LiveCodeGroup.objects.filter(live_code=live_code).count() if cannot_create else live_code.groups_created) + 1
    name = live_code.group_name_template.format(channel=live_code.channel.name, code=live_code.name, n=number)[:100]
    if cannot_create:
        assert account is not None
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
        request_code_sync(live_code)  # the join way moves on to the next groups
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
        # Only a scan that still holds its target counts: once its seat was released as
        # stale, a new scan of the same visitor must take a seat of its own.
        previous = (
            Scan.objects.filter(live_code=live_code, visitor_key=scan.visitor_key, scanned_at__gte=now - REPEAT_WINDOW,
                                outcome__in=ROUTED, released_at__isnull=True)
            .order_by("-scanned_at", "-id").first()
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
        candidates = Scan.objects.select_for_update().filter(live_code=live_code, contact__isnull=True, scanned_at__lte=when,
                                                             outcome__in=ROUTED)
        if invite_code:
            candidates = candidates.filter(invite_code=invite_code)
        # A scan still holding its seat first; a late arrival whose seat was already
        # released takes one back (if one is free: the platform itself refuses a full group).
        scan = candidates.filter(released_at__isnull=True).order_by("-scanned_at", "-id").first()
        if scan is None:
            scan = candidates.order_by("-scanned_at", "-id").first()
        if Scan.objects.filter(live_code=live_code, contact=contact).exists():
            scan = None
        if scan is not None:
            scan.contact = contact
            fields = ["contact"]
            if scan.released_at is not None:
                _retake_seat(scan, when)
                scan.released_at = None
                fields.append("released_at")
            scan.save(update_fields=fields)
        do_record_event(contact, "scan", idempotency_key=f"arrival:{live_code.pk}:{contact.pk}", occurred_at=when,
                        data={"live_code": live_code.code, "channel": live_code.channel.key, "scan": scan.pk if scan else None})
        tags = list(live_code.channel.tags.all())
        if tags:
            do_tag_contacts(contact.workspace, None, [contact], tags, source=TagSource.CHANNEL, reason=f"live code {live_code.code}")
        if invite_code:
            from siyu.campaigns.actions import do_record_invite

            do_record_invite(invite_code, contact, visitor_key=scan.visitor_key if scan else "", occurred_at=when)
    return scan


# ---------------------------------------------------------------- stale reservations


def seat_ttl() -> dt.timedelta:
    """A reserved seat whose scan has not turned into an add/join after this long goes
    back to the pool (``SIYU_LIVE_CODE_SEAT_TTL_MINUTES``, default 30)."""
    from django.conf import settings

    return dt.timedelta(minutes=settings.SIYU_LIVE_CODE_SEAT_TTL_MINUTES)


def _retake_seat(scan: Scan, now: dt.datetime) -> None:
    if scan.outcome == ScanOutcome.GROUP and scan.group_id is not None:
        slot = LiveCodeGroup.objects.filter(live_code_id=scan.live_code_id, group_id=scan.group_id).first()
        if slot is not None and LiveCodeGroup.objects.filter(pk=slot.pk, seats_taken__lt=F("capacity")).update(
            seats_taken=F("seats_taken") + 1
        ):
            LiveCodeGroup.objects.filter(pk=slot.pk, seats_taken__gte=F("capacity"), filled_at__isnull=True).update(filled_at=now)
    elif scan.outcome == ScanOutcome.STAFF and scan.staff_id is not None:
        # The friend is already added: the allowance counts them whatever the cap says.
        LiveCodeStaff.objects.filter(live_code_id=scan.live_code_id, staff_id=scan.staff_id).update(total_count=F("total_count") + 1)


def _release_code(live_code_id: int, cutoff: dt.datetime, now: dt.datetime) -> dict[str, int]:
    with _write_gate(), transaction.atomic():
        # The same lock routing takes: a release never interleaves with a seat check.
        live_code = LiveCode.objects.select_for_update(of=("self",)).select_related("workspace").get(pk=live_code_id)
        stale = list(
            Scan.objects.select_for_update().filter(live_code=live_code, outcome__in=SEAT_TAKING, contact__isnull=True,
                                                    released_at__isnull=True, scanned_at__lt=cutoff)
            .values_list("pk", "outcome", "group_id", "staff_id", "scanned_at")
        )
        if not stale:
            return {"groups": 0, "staff": 0}
        tz = live_code.workspace.tz
        per_group: dict[int, int] = {}
        per_staff: dict[int, list[dt.date]] = {}
        for _, outcome, group_id, staff_id, scanned_at in stale:
            if outcome == ScanOutcome.GROUP and group_id is not None:
                per_group[group_id] = per_group.get(group_id, 0) + 1
            elif outcome == ScanOutcome.STAFF and staff_id is not None:
                per_staff.setdefault(staff_id, []).append(scanned_at.astimezone(tz).date())
        released_groups = released_staff = 0
        reopened = False
        for slot in LiveCodeGroup.objects.select_for_update().filter(live_code=live_code, group_id__in=per_group):
            n = min(per_group[slot.group_id], slot.seats_taken)
            slot.seats_taken -= n
            fields = ["seats_taken"]
            if slot.filled_at is not None and slot.seats_taken < slot.capacity and slot.group.archived_at is None:
                slot.filled_at = None  # open again: it is back in the window
                fields.append("filled_at")
            slot.save(update_fields=fields)
            if "filled_at" in fields:
                reopened = True
            released_groups += n
        for staff_slot in LiveCodeStaff.objects.select_for_update().filter(live_code=live_code, staff_id__in=per_staff):
            days = per_staff[staff_slot.staff_id]
            staff_slot.total_count = max(0, staff_slot.total_count - len(days))
            if staff_slot.day is not None:
                staff_slot.day_count = max(0, staff_slot.day_count - sum(1 for d in days if d == staff_slot.day))
            staff_slot.save(update_fields=["total_count", "day_count"])
            released_staff += len(days)
        Scan.objects.filter(pk__in=[row[0] for row in stale]).update(released_at=now)
        if reopened:
            request_code_sync(live_code)
        record_audit(live_code.workspace, None, "live_code.seats_released", target=live_code,
                     summary=f"{released_groups} group seats and {released_staff} staff adds released (no arrival before {cutoff:%H:%M})",
                     after={"groups": released_groups, "staff": released_staff, "scans": len(stale)})
    return {"groups": released_groups, "staff": released_staff}


def do_release_stale_seats(*, now: dt.datetime | None = None, ttl: dt.timedelta | None = None) -> dict[str, int]:
    """Give back the seats (group codes) and daily/total allowance (staff codes) reserved by
    scans that did not turn into a join/add within ``ttl`` (default :func:`seat_ttl`),
    so capacity is not wasted on people who scanned and walked away. Each code is done
    under the same lock as routing, so a release only ever makes room and no group or
    staff member can be routed past its cap. A person who arrives after all takes a seat
    back (:func:`do_record_arrival`). Records ``live_code.seats_released`` per code.
    Returns the counts released."""
    now = now or timezone.now()
    cutoff = now - (ttl if ttl is not None else seat_ttl())
    code_ids = sorted(set(
        Scan.objects.filter(outcome__in=SEAT_TAKING, contact__isnull=True, released_at__isnull=True, scanned_at__lt=cutoff)
        .values_list("live_code_id", flat=True)
    ))
    totals = {"codes": 0, "groups": 0, "staff": 0}
    for code_id in code_ids:
        done = _release_code(code_id, cutoff, now)
        if done["groups"] or done["staff"]:
            totals["codes"] += 1
        totals["groups"] += done["groups"]
        totals["staff"] += done["staff"]
    return totals


def do_remove_code_staff(slot: LiveCodeStaff, actor: Staff | None) -> None:
    """Take a staff member off a staff code (their past scans stay). Records
    ``live_code.staff_removed``."""
    require(actor, Perm.OPERATE_CHANNELS)
    with transaction.atomic():
        live_code = slot.live_code
        record_audit(live_code.workspace, actor, "live_code.staff_removed", target=live_code,
                     before={"staff": slot.staff_id, "weight": slot.weight, "daily_cap": slot.daily_cap, "total_cap": slot.total_cap})
        config_id, account_id = slot.config_id, live_code.channel_account_id
        slot.delete()
        if config_id and _on_wecom(live_code):

            def schedule() -> None:
                from siyu.worker.tasks import delete_contact_way_task

                delete_contact_way_task(account_id, config_id)

            transaction.on_commit(schedule)


def do_remove_code_group(slot: LiveCodeGroup, actor: Staff | None) -> None:
    """Take a group off a group code's fill order (the group itself and past scans stay).
    A WeCom join way is then re-synced without it. Records ``live_code.group_removed``."""
    require(actor, Perm.OPERATE_CHANNELS)
    with transaction.atomic():
        live_code = LiveCode.objects.select_for_update(of=("self",)).select_related("channel_account", "workspace").get(pk=slot.live_code_id)
        record_audit(live_code.workspace, actor, "live_code.group_removed", target=live_code,
                     before={"group": slot.group_id, "capacity": slot.capacity, "seats_taken": slot.seats_taken})
        slot.delete()
        request_code_sync(live_code)


def do_update_code_group(slot: LiveCodeGroup, actor: Staff | None, *, capacity: int) -> LiveCodeGroup:
    """Change a group slot's capacity (never below the seats already taken, never above
    the group's own capacity). A slot that gains room opens again; one that reaches its
    capacity closes. Records ``live_code.group_updated``."""
    require(actor, Perm.OPERATE_CHANNELS)
    with transaction.atomic():
        live_code = LiveCode.objects.select_for_update(of=("self",)).select_related("channel_account", "workspace").get(pk=slot.live_code_id)
        slot = LiveCodeGroup.objects.select_related("group").get(pk=slot.pk)
        top = min(slot.group.capacity, GROUP_CAPACITY_MAX)
        if not 1 <= capacity <= top:
            raise ValidationFailed(f"capacity must be between 1 and {top} (the group's own capacity)", code="invalid_capacity")
        if capacity < slot.seats_taken:
            raise ValidationFailed(f"{slot.seats_taken} seats are already taken: capacity cannot go below that",
                                   code="capacity_below_taken")
        before = {"capacity": slot.capacity}
        slot.capacity = capacity
        was_open = slot.filled_at is None
        slot.filled_at = None if capacity > slot.seats_taken else (slot.filled_at or timezone.now())
        slot.save(update_fields=["capacity", "filled_at"])
        record_audit(live_code.workspace, actor, "live_code.group_updated", target=live_code, before=before,
                     after={"group": slot.group_id, "capacity": capacity})
        if was_open != (slot.filled_at is None):
            request_code_sync(live_code)
    return slot


LIVE_CODE_SETTINGS = ("name", "group_capacity", "window_size", "low_watermark", "expires_at", "auto_create_groups", "backup_staff")


def do_update_live_code(live_code: LiveCode, actor: Staff | None, **changes: Any) -> LiveCode:
    """Change a live code's own settings: name, seats per new group (``group_capacity``),
    window of open groups, low watermark, expiry, auto-open, backup staff. Existing group
    slots keep their capacity (edit them one by one). Records ``live_code.updated``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if unknown := set(changes) - set(LIVE_CODE_SETTINGS):
        raise ValidationFailed(f"unknown field {sorted(unknown)[0]!r}", code="unknown_field")
    merged = {k: changes.get(k, getattr(live_code, k)) for k in ("group_capacity", "window_size", "low_watermark")}
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()[:100]
        if not changes["name"]:
            raise ValidationFailed("name must not be empty", code="name_required")
    if not 2 <= merged["group_capacity"] <= GROUP_CAPACITY_MAX:
        raise ValidationFailed(f"group capacity must be between 2 and {GROUP_CAPACITY_MAX} (the channel's group limit)",
                               code="invalid_capacity")
    if not 1 <= merged["window_size"] <= JOIN_WAY_MAX_GROUPS:
        raise ValidationFailed(f"window size must be between 1 and {JOIN_WAY_MAX_GROUPS} (a WeCom join way lists at most 5 groups)",
                               code="invalid_window")
    if not 0 <= merged["low_watermark"] <= merged["window_size"]:
        raise ValidationFailed("low watermark must be between 0 and the window size", code="invalid_window")
    backup = changes.get("backup_staff")
    if backup is not None and backup.workspace_id != live_code.workspace_id:
        raise NotFound("staff not found", code="staff_not_found")
    with transaction.atomic():
        before = {k: _plain(getattr(live_code, k)) for k in changes}
        for key, value in changes.items():
            setattr(live_code, key, value)
        live_code.save(update_fields=list(changes))
        record_audit(live_code.workspace, actor, "live_code.updated", target=live_code, before=before,
                     after={k: _plain(v) for k, v in changes.items()})
        if "window_size" in changes:
            request_code_sync(live_code)
    return live_code


# ---------------------------------------------------------------- staff ↔ channel user id


_USERID_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def do_map_staff_identity(account: ChannelAccount, staff: Staff, actor: Staff | None, *, userid: str) -> StaffChannelIdentity | None:
    """Record who ``staff`` is on a channel account (their WeCom ``userid``); an empty
    userid removes the mapping. The staff member's 「联系我」 codes on that account are
    then (re)synced. Records ``staff.channel_identity_set``."""
    require(actor, Perm.MANAGE_STAFF)
    if account.workspace_id != staff.workspace_id:
        raise NotFound("staff not found", code="staff_not_found")
    userid = (userid or "").strip()
    if userid and not _USERID_RE.match(userid):
        raise ValidationFailed("a userid has 1–64 letters, digits or _ . @ -", code="invalid_userid")
    with transaction.atomic():
        current = StaffChannelIdentity.objects.filter(account=account, staff=staff).first()
        before = {"userid": current.external_id if current else ""}
        if userid:
            taken = StaffChannelIdentity.objects.filter(account=account, external_id=userid).exclude(staff=staff).select_related("staff").first()
            if taken is not None:
                raise Conflict(f"userid {userid} already belongs to {taken.staff.display_name} on this account", code="userid_taken")
        if current is not None and current.external_id == userid:
            return current
        if not userid:
            if current is not None:
                current.delete()
            identity = None
        elif current is None:
            identity = StaffChannelIdentity.objects.create(workspace_id=staff.workspace_id, account=account, staff=staff, external_id=userid)
        else:
            current.external_id = userid
            current.save(update_fields=["external_id", "updated_at"])
            identity = current
        record_audit(staff.workspace, actor, "staff.channel_identity_set", target=staff, before=before,
                     after={"account": account.pk, "userid": userid})
        codes = LiveCode.objects.filter(channel_account=account, kind=LiveCodeKind.STAFF, staff_slots__staff=staff).distinct()
        LiveCodeStaff.objects.filter(live_code__in=codes, staff=staff).update(sync_status=SyncStatus.PENDING)
        for live_code in codes.select_related("channel_account"):
            request_code_sync(live_code)
    return identity


# ---------------------------------------------------------------- WeCom 「联系我」 / join way sync


def _on_wecom(live_code: LiveCode) -> bool:
    account = live_code.channel_account
    return account is not None and account.kind == ChannelKind.WECOM


def request_code_sync(live_code: LiveCode) -> None:
    """Once the caller's transaction commits, sync the code's WeCom 「联系我」/join way
    configs (a worker task: the API calls never run inside a web request's transaction)."""
    if not _on_wecom(live_code):
        return
    code_id = live_code.pk

    def schedule() -> None:
        from siyu.worker.tasks import sync_live_code_task

        sync_live_code_task(code_id)

    transaction.on_commit(schedule)


def _sync_failure(exc: Exception) -> str:
    from siyu.channels.wecom.client import WeComApiError

    if isinstance(exc, WeComApiError):
        return f"WeCom errcode {exc.errcode}: {exc.errmsg}"[:300]
    return f"{type(exc).__name__}: {exc}"[:300]


def _sync_staff_slot(client: Any, live_code: LiveCode, slot: LiveCodeStaff, now: dt.datetime) -> str:
    from siyu.channels.actions import do_create_staff_task

    account = live_code.channel_account
    assert account is not None
    identity = StaffChannelIdentity.objects.filter(account=account, staff_id=slot.staff_id).first()
    if identity is None:
        error = f"{slot.staff.display_name} has no WeCom userid on account {account.name}: map it first"
        LiveCodeStaff.objects.filter(pk=slot.pk).update(sync_status=SyncStatus.FAILED, sync_error=error[:300])
        do_create_staff_task(
            live_code.workspace_id, kind="staff_userid_missing", account=account, dedupe_key=f"userid:{account.pk}:{slot.staff_id}",
            title=f"请为员工「{slot.staff.display_name}」填写企业微信 userid（活码「{live_code.name}」需要）",
            detail={"staff": slot.staff_id, "live_code": live_code.pk, "code": live_code.code},
        )
        return SyncStatus.FAILED
    users = [identity.external_id]
    try:
        if slot.config_id:
            client.update_contact_way(slot.config_id, state=live_code.state, user=users)
        else:
            created = client.add_contact_way(type=1, scene=2, state=live_code.state, user=users)
            stored = LiveCodeStaff.objects.filter(pk=slot.pk, config_id="").update(
                config_id=created["config_id"], qr_url=created["qr_code"]
            )
            if not stored:
                # Another sync stored a config first (or the slot is gone): ours is a duplicate.
                client.del_contact_way(created["config_id"])
    except _sync_errors() as exc:  # shown on the slot; the periodic sweep retries it
        LiveCodeStaff.objects.filter(pk=slot.pk).update(sync_status=SyncStatus.FAILED, sync_error=_sync_failure(exc))
        return SyncStatus.FAILED
    LiveCodeStaff.objects.filter(pk=slot.pk).update(sync_status=SyncStatus.SYNCED, sync_error="", synced_at=now)
    return SyncStatus.SYNCED


def _sync_errors() -> tuple[type[Exception], ...]:
    from siyu.channels.wecom.account import WeComNotConfigured
    from siyu.channels.wecom.client import WeComApiError, WeComNetworkError

    return (WeComApiError, WeComNetworkError, WeComNotConfigured, ValidationFailed)


def join_way_chat_ids(live_code: LiveCode) -> list[str]:
    """The WeCom chat ids a group code's join way should list: the open groups of its
    window, in fill order, at most 5 (the join way's limit)."""
    size = min(live_code.window_size, JOIN_WAY_MAX_GROUPS)
    return list(
        LiveCodeGroup.objects.filter(live_code=live_code, filled_at__isnull=True, group__archived_at__isnull=True)
        .exclude(group__external_id="").order_by("position", "id").values_list("group__external_id", flat=True)[:size]
    )


def _sync_join_way(client: Any, live_code: LiveCode, now: dt.datetime) -> str:
    chat_ids = join_way_chat_ids(live_code)
    if not chat_ids:
        error = "no open group with a WeCom chat id: add a group to the code"
        LiveCode.objects.filter(pk=live_code.pk).update(sync_status=SyncStatus.FAILED, sync_error=error)
        return SyncStatus.FAILED
    try:
        if live_code.join_config_id:
            if chat_ids != live_code.join_chat_ids or live_code.sync_status != SyncStatus.SYNCED:
                client.update_join_way(live_code.join_config_id, scene=2, chat_id_list=chat_ids, state=live_code.state)
        else:
            config_id = client.add_join_way(scene=2, chat_id_list=chat_ids, state=live_code.state)
            if not LiveCode.objects.filter(pk=live_code.pk, join_config_id="").update(join_config_id=config_id):
                client.call("POST", "/externalcontact/groupchat/del_join_way", body={"config_id": config_id})
                live_code.refresh_from_db(fields=["join_config_id"])
            else:
                live_code.join_config_id = config_id
        if not live_code.join_qr_url:
            data = client.call("POST", "/externalcontact/groupchat/get_join_way", body={"config_id": live_code.join_config_id})
            qr_url = str((data.get("join_way") or {}).get("qr_code", ""))
            LiveCode.objects.filter(pk=live_code.pk).update(join_qr_url=qr_url)
    except _sync_errors() as exc:  # shown on the code; the periodic sweep retries it
        LiveCode.objects.filter(pk=live_code.pk).update(sync_status=SyncStatus.FAILED, sync_error=_sync_failure(exc))
        return SyncStatus.FAILED
    LiveCode.objects.filter(pk=live_code.pk).update(join_chat_ids=chat_ids, sync_status=SyncStatus.SYNCED, sync_error="", synced_at=now)
    return SyncStatus.SYNCED


def do_sync_live_code(live_code_id: int, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Bring a WeCom live code's platform configs in line with the code: one 「联系我」
    (``type=1, scene=2, user=[userid], state=lc:<code>``) per staff slot whose config id
    and QR are kept on the slot, or one join way over the open groups of the window (≤ 5
    chat ids) for a group code. Runs in the worker, outside any request transaction;
    idempotent (a config id, once stored, is updated, never created again; a config made
    by a losing concurrent sync is deleted). A failure (errcode, network, missing userid)
    leaves the slot/code ``failed`` with the error shown in the console; the periodic
    sweep retries it. Records ``live_code.synced`` when something changed state."""
    from siyu.channels.wecom.account import WeComNotConfigured, WeComSettings

    now = now or timezone.now()
    live_code = LiveCode.objects.select_related("channel_account", "workspace").filter(pk=live_code_id).first()
    if live_code is None or not _on_wecom(live_code):
        return {"synced": 0, "failed": 0}
    assert live_code.channel_account is not None
    try:
        client = WeComSettings.from_account(live_code.channel_account).client()
    except WeComNotConfigured as exc:
        error = _sync_failure(exc)
        if live_code.kind == LiveCodeKind.GROUP:
            LiveCode.objects.filter(pk=live_code.pk).update(sync_status=SyncStatus.FAILED, sync_error=error)
        else:
            LiveCodeStaff.objects.filter(live_code=live_code).update(sync_status=SyncStatus.FAILED, sync_error=error)
        return {"synced": 0, "failed": 1}
    outcomes: list[str] = []
    with client:
        if live_code.kind == LiveCodeKind.GROUP:
            outcomes.append(_sync_join_way(client, live_code, now))
        else:
            for slot in LiveCodeStaff.objects.filter(live_code=live_code).select_related("staff"):
                if slot.config_id and slot.sync_status == SyncStatus.SYNCED:
                    continue
                outcomes.append(_sync_staff_slot(client, live_code, slot, now))
    result = {"synced": outcomes.count(SyncStatus.SYNCED), "failed": outcomes.count(SyncStatus.FAILED)}
    if result["synced"]:
        record_audit(live_code.workspace, None, "live_code.synced", target=live_code, after=result,
                     summary=f"WeCom sync: {result['synced']} synced, {result['failed']} failed")
    return result


def do_delete_contact_way(account_id: int, config_id: str) -> bool:
    """Delete a 「联系我」 config of a removed staff slot on WeCom. Returns False (and logs)
    when WeCom refuses; an orphaned config routes nobody new through siyu."""
    import logging

    from siyu.channels.wecom.account import WeComSettings

    account = ChannelAccount.objects.filter(pk=account_id, kind=ChannelKind.WECOM).first()
    if account is None or not config_id:
        return False
    try:
        with WeComSettings.from_account(account).client() as client:
            client.del_contact_way(config_id)
    except _sync_errors() as exc:
        logging.getLogger(__name__).warning("del_contact_way %s on account %s failed: %s", config_id, account_id, _sync_failure(exc))
        return False
    return True


def sync_candidates() -> list[int]:
    """Live codes on WeCom with a target not yet synced (pending or failed)."""
    staff = LiveCodeStaff.objects.filter(live_code__channel_account__kind=ChannelKind.WECOM).exclude(
        sync_status=SyncStatus.SYNCED).values_list("live_code_id", flat=True)
    groups = LiveCode.objects.filter(channel_account__kind=ChannelKind.WECOM, kind=LiveCodeKind.GROUP).exclude(
        sync_status=SyncStatus.SYNCED).values_list("pk", flat=True)
    return sorted(set(staff) | set(groups))
