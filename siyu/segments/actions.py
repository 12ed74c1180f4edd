"""The only writers of segments (人群包): create / update / delete, builds (full,
incremental, scheduled) and static membership (CSV upload or a selection).

Every stay that opens or closes also becomes a ``segment_entered`` / ``segment_left``
timeline event (bulk-inserted, keyed by the stay so a replay is a no-op) and is handed
to the event consumers after commit — that is how journeys hear about it.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.contacts.events import EventKind, schedule_event_fanout
from siyu.contacts.models import ChannelIdentity, Contact, ContactEvent
from siyu.core import crypto
from siyu.core.errors import Conflict, ValidationFailed
from siyu.core.models import Workspace
from siyu.core.oncommit import on_commit_batched
from siyu.core.phones import normalize_phone
from siyu.segments.conditions import evaluate, referenced_segments, validate_definition
from siyu.segments.models import BuildMode, Segment, SegmentBuild, SegmentKind, SegmentMembership

CHUNK = 5000
MAX_STATIC_ROWS = 200_000


def _clean_name(workspace: Workspace, name: str, *, exclude: int | None = None) -> str:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed("a segment needs a name of 1–100 characters", code="invalid_name")
    clash = Segment.objects.in_workspace(workspace).filter(name=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise Conflict(f"a segment named {name!r} already exists", code="segment_name_taken")
    return name


def schedule_build(segment: Segment, mode: str = BuildMode.FULL) -> None:
    """After commit, rebuild the segment in the worker (once per transaction)."""

    def _run(_: set[Any]) -> None:
        from siyu.worker.tasks import build_segment_task

        build_segment_task(segment.pk, mode)

    on_commit_batched("segment_build", segment.pk, (), _run)


def do_create_segment(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    kind: str = SegmentKind.DYNAMIC,
    definition: Any = None,
    description: str = "",
) -> Segment:
    """Create a segment. A dynamic one needs a valid definition and is built in the
    worker right after commit; a static one starts empty (fill it with
    :func:`do_set_static_members` or :func:`do_import_static_csv`). Records
    ``segment.created``."""
    require(actor, Perm.MANAGE_SEGMENTS)
    if kind not in SegmentKind.values:
        raise ValidationFailed(f"unknown segment kind {kind!r}; use dynamic or static", code="invalid_kind")
    clean_name = _clean_name(workspace, name)
    clean: dict[str, Any] = {}
    if kind == SegmentKind.DYNAMIC:
        # A new segment cannot be referenced yet, so no cycle is possible here.
        clean = validate_definition(workspace, definition)
    elif definition:
        raise ValidationFailed("a static segment has no definition", code="invalid_definition")
    now = timezone.now()
    with transaction.atomic():
        segment = Segment.objects.create(
            workspace=workspace, name=clean_name, description=(description or "")[:2000], kind=kind, definition=clean,
            created_by=actor, created_at=now, updated_at=now,
        )
        record_audit(workspace, actor, "segment.created", target=segment, after={"name": clean_name, "kind": kind, "definition": clean})
        if kind == SegmentKind.DYNAMIC:
            schedule_build(segment)
    return segment


def do_update_segment(
    segment: Segment, actor: Staff | None, *, name: str | None = None, description: str | None = None, definition: Any = None
) -> Segment:
    """Rename, describe or redefine a segment. A new definition is re-validated (cycles
    through other segments refused) and triggers a full rebuild after commit. Records
    ``segment.updated``."""
    require(actor, Perm.MANAGE_SEGMENTS)
    workspace = segment.workspace
    before = {"name": segment.name, "description": segment.description, "definition": segment.definition}
    fields: list[str] = []
    if name is not None and name.strip() != segment.name:
        segment.name = _clean_name(workspace, name, exclude=segment.pk)
        fields.append("name")
    if description is not None and description != segment.description:
        segment.description = description[:2000]
        fields.append("description")
    redefined = False
    if definition is not None:
        if not segment.is_dynamic:
            raise ValidationFailed("a static segment has no definition", code="invalid_definition")
        clean = validate_definition(workspace, definition, for_segment=segment.pk)
        if clean != segment.definition:
            segment.definition = clean
            fields.append("definition")
            redefined = True
    if not fields:
        return segment
    segment.updated_at = timezone.now()
    with transaction.atomic():
        segment.save(update_fields=[*fields, "updated_at"])
        record_audit(workspace, actor, "segment.updated", target=segment, before=before,
                     after={"name": segment.name, "description": segment.description, "definition": segment.definition})
        if redefined:
            schedule_build(segment)
    return segment


def do_delete_segment(segment: Segment, actor: Staff | None) -> None:
    """Delete a segment and its membership history. Refused while another segment's
    definition reads it. Records ``segment.deleted``."""
    require(actor, Perm.MANAGE_SEGMENTS)
    users = [
        name for name, definition in Segment.objects.in_workspace(segment.workspace_id).exclude(pk=segment.pk).values_list("name", "definition")
        if segment.pk in referenced_segments(definition)
    ]
    if users:
        raise Conflict(f"segment {segment.name!r} is used by: {', '.join(sorted(users))}", code="segment_in_use")
    with transaction.atomic():
        record_audit(segment.workspace, actor, "segment.deleted", target=segment, before={"name": segment.name, "size": segment.size})
        segment.delete()


@dataclass
class Changes:
    entered: int = 0
    left: int = 0
    size: int = 0
    build: SegmentBuild | None = None


def _open_contacts(segment: Segment, scope: list[int] | None) -> set[int]:
    stays = SegmentMembership.objects.filter(segment=segment, left_at__isnull=True)
    if scope is None:
        return set(stays.values_list("contact_id", flat=True))
    found: set[int] = set()
    for start in range(0, len(scope), CHUNK):
        found |= set(stays.filter(contact_id__in=scope[start:start + CHUNK]).values_list("contact_id", flat=True))
    return found


def _apply(
    segment: Segment, target: set[int], *, scope: list[int] | None, mode: str, actor: Staff | None, started: float,
    record_unchanged: bool,
) -> Changes:
    """Make the open stays within ``scope`` (None: all) equal ``target``: close the stays
    of those who left, open stays for those who entered, one timeline event each."""
    now = timezone.now()
    with transaction.atomic():
        # Serialises concurrent builds of one segment (the open-stay constraint would
        # otherwise turn a race into an IntegrityError).
        locked = Segment.objects.select_for_update().get(pk=segment.pk)
        current = _open_contacts(locked, scope)
        entering = sorted(target - current)
        leaving = sorted(current - target)
        payload = {"segment_id": locked.pk, "segment": locked.name}
        events: list[ContactEvent] = []
        for start in range(0, len(leaving), CHUNK):
            chunk = leaving[start:start + CHUNK]
            stays = SegmentMembership.objects.filter(segment=locked, left_at__isnull=True, contact_id__in=chunk)
            pairs = list(stays.values_list("pk", "contact_id"))
            stays.update(left_at=now)
            events += [
                ContactEvent(workspace_id=locked.workspace_id, contact_id=cid, kind=EventKind.SEGMENT_LEFT, occurred_at=now,
                             data=payload, idempotency_key=f"segment-left:{pk}")
                for pk, cid in pairs
            ]
        for start in range(0, len(entering), CHUNK):
            created = SegmentMembership.objects.bulk_create([
                SegmentMembership(workspace_id=locked.workspace_id, segment=locked, contact_id=cid, entered_at=now)
                for cid in entering[start:start + CHUNK]
            ])
            events += [
                ContactEvent(workspace_id=locked.workspace_id, contact_id=stay.contact_id, kind=EventKind.SEGMENT_ENTERED, occurred_at=now,
                             data=payload, idempotency_key=f"segment-entered:{stay.pk}")
                for stay in created
            ]
        changes = Changes(entered=len(entering), left=len(leaving))
        if events:
            ContactEvent.objects.bulk_create(events, batch_size=2000)
            schedule_event_fanout([e.pk for e in events])
        changed = bool(entering or leaving)
        if not changed and not record_unchanged:
            changes.size = locked.size
            return changes
        changes.size = len(target) if scope is None else SegmentMembership.objects.filter(segment=locked, left_at__isnull=True).count()
        duration_ms = int((time.perf_counter() - started) * 1000)
        fields = ["size", "updated_at"]
        locked.size, locked.updated_at = changes.size, now
        if mode != BuildMode.INCREMENTAL:
            locked.last_built_at, locked.last_build_ms = now, duration_ms
            fields += ["last_built_at", "last_build_ms"]
        locked.save(update_fields=fields)
        segment.size, segment.last_built_at, segment.last_build_ms = locked.size, locked.last_built_at, locked.last_build_ms
        changes.build = SegmentBuild.objects.create(
            workspace_id=locked.workspace_id, segment=locked, mode=mode, started_at=now, duration_ms=duration_ms,
            size=changes.size, entered=changes.entered, left=changes.left, actor=actor,
        )
    return changes


def do_build_segment(segment: Segment, *, actor: Staff | None = None, mode: str = BuildMode.FULL) -> SegmentBuild:
    """Recompute a dynamic segment over the whole workspace and bring its stored
    membership in line (bulk enter/leave with timeline events). ``mode`` is ``full``
    (on demand) or ``scheduled`` (the periodic pass for time-relative conditions).
    Records a :class:`SegmentBuild`; a build asked for by a person also records
    ``segment.built``."""
    require(actor, Perm.MANAGE_SEGMENTS)
    if not segment.is_dynamic:
        raise ValidationFailed("a static segment is changed by upload or selection, not built", code="static_segment")
    started = time.perf_counter()
    target = evaluate(segment.workspace, segment.definition)
    changes = _apply(segment, target, scope=None, mode=mode, actor=actor, started=started, record_unchanged=True)
    assert changes.build is not None
    if actor is not None:
        record_audit(segment.workspace, actor, "segment.built", target=segment,
                     after={"size": changes.size, "entered": changes.entered, "left": changes.left})
    return changes.build


def do_update_memberships(segment: Segment, contact_ids: Iterable[int]) -> Changes:
    """Incremental update: re-evaluate only ``contact_ids`` against a dynamic segment and
    enter/leave them. Records a ``incremental`` :class:`SegmentBuild` only when something
    changed (the size history would drown in no-op rows otherwise)."""
    if not segment.is_dynamic:
        return Changes(size=segment.size)
    started = time.perf_counter()
    scope = sorted(set(contact_ids))
    if not scope:
        return Changes(size=segment.size)
    target = evaluate(segment.workspace, segment.definition, scope)
    return _apply(segment, target, scope=scope, mode=BuildMode.INCREMENTAL, actor=None, started=started, record_unchanged=False)


def do_set_static_members(segment: Segment, actor: Staff | None, contact_ids: Iterable[int], *, replace: bool = True) -> Changes:
    """Set (or, with ``replace=False``, add to) a static segment's members from a
    selection of contact ids of the workspace. Unknown ids are refused with the first
    few named. Records a ``static`` build and ``segment.members_set``."""
    require(actor, Perm.MANAGE_SEGMENTS)
    if segment.is_dynamic:
        raise ValidationFailed("a dynamic segment's members come from its definition", code="dynamic_segment")
    wanted = {int(c) for c in contact_ids}
    known: set[int] = set()
    ordered = sorted(wanted)
    for start in range(0, len(ordered), CHUNK):
        known |= set(
            Contact.objects.in_workspace(segment.workspace_id).filter(pk__in=ordered[start:start + CHUNK], merged_into__isnull=True)
            .values_list("pk", flat=True)
        )
    unknown = sorted(wanted - known)
    if unknown:
        shown = ", ".join(str(i) for i in unknown[:10])
        raise ValidationFailed(f"unknown contacts: {shown}" + (" …" if len(unknown) > 10 else ""), code="unknown_contacts",
                               details={"unknown": unknown[:100]})
    started = time.perf_counter()
    target = known if replace else known | _open_contacts(segment, None)
    changes = _apply(segment, target, scope=None, mode=BuildMode.STATIC, actor=actor, started=started, record_unchanged=True)
    record_audit(segment.workspace, actor, "segment.members_set", target=segment,
                 after={"size": changes.size, "entered": changes.entered, "left": changes.left, "replace": replace})
    return changes


@dataclass
class StaticImport:
    rows: int = 0
    matched: int = 0
    unknown_rows: list[dict[str, Any]] = field(default_factory=list)
    changes: Changes | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "matched": self.matched, "unknown_rows": self.unknown_rows,
            "entered": self.changes.entered if self.changes else 0, "left": self.changes.left if self.changes else 0,
            "size": self.changes.size if self.changes else 0,
        }


_COLUMNS = {
    "contact_id": "contact_id", "id": "contact_id", "客户id": "contact_id",
    "phone": "phone", "mobile": "phone", "手机": "phone", "手机号": "phone", "电话": "phone",
    "external_id": "external_id", "externalid": "external_id", "external_userid": "external_id", "外部id": "external_id",
    "external_ref": "external_id",
}


def do_import_static_csv(segment: Segment, actor: Staff | None, data: bytes, *, replace: bool = True) -> StaticImport:
    """Fill a static segment from a CSV with one identifying column — ``contact_id``,
    ``phone`` or ``external_id`` (a channel identity's external id or the brand's own
    ``external_ref``). Rows that match nobody are reported by row number (the header
    is row 1); the matched contacts become the members (see
    :func:`do_set_static_members`)."""
    from siyu.contacts.importing import decode

    require(actor, Perm.MANAGE_SEGMENTS)
    text, _ = decode(data)
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    columns = [_COLUMNS.get(h.strip().lower().replace(" ", "")) for h in header]
    usable = [(i, c) for i, c in enumerate(columns) if c]
    if not usable:
        raise ValidationFailed("the CSV needs a contact_id, phone or external_id column", code="invalid_columns")
    index, column = usable[0]
    report = StaticImport()
    values: list[tuple[int, str]] = []
    for row_number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        report.rows += 1
        if report.rows > MAX_STATIC_ROWS:
            raise ValidationFailed(f"at most {MAX_STATIC_ROWS} rows per upload", code="too_many_rows")
        values.append((row_number, row[index].strip() if index < len(row) else ""))
    found = _match(segment.workspace_id, column, [v for _, v in values])
    ids: set[int] = set()
    for row_number, value in values:
        contact_id = found.get(value)
        if contact_id is None:
            report.unknown_rows.append({"row": row_number, "value": _shown(column, value)})
        else:
            ids.add(contact_id)
    report.matched = report.rows - len(report.unknown_rows)
    report.changes = do_set_static_members(segment, actor, ids, replace=replace)
    return report


def _shown(column: str, value: str) -> str:
    # Do not echo full phone numbers back into reports and logs.
    if column == "phone" and len(value) > 7:
        return value[:3] + "****" + value[-4:]
    return value


def _match(workspace_id: int, column: str, values: list[str]) -> dict[str, int]:
    live = Contact.objects.in_workspace(workspace_id).filter(merged_into__isnull=True)
    out: dict[str, int] = {}
    if column == "contact_id":
        numbers = sorted({int(v) for v in values if v.isdigit()})
        for start in range(0, len(numbers), CHUNK):
            for pk in live.filter(pk__in=numbers[start:start + CHUNK]).values_list("pk", flat=True):
                out[str(pk)] = pk
        return out
    if column == "phone":
        by_hash: dict[str, list[str]] = {}
        for value in values:
            try:
                e164 = normalize_phone(value)
            except ValidationFailed:
                continue
            if e164:
                by_hash.setdefault(crypto.lookup_hash(e164), []).append(value)
        hashes = sorted(by_hash)
        for start in range(0, len(hashes), CHUNK):
            for pk, phone_hash in live.filter(phone_hash__in=hashes[start:start + CHUNK]).values_list("pk", "phone_hash"):
                for value in by_hash[phone_hash]:
                    out[value] = pk
        return out
    wanted = sorted(set(values) - {""})
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start:start + CHUNK]
        for pk, ref in live.filter(external_ref__in=chunk).values_list("pk", "external_ref"):
            out.setdefault(ref, pk)
        identities = ChannelIdentity.objects.in_workspace(workspace_id).filter(external_id__in=chunk, contact__merged_into__isnull=True)
        for pk, ext in identities.values_list("contact_id", "external_id"):
            out[ext] = pk
    return out
