"""Contact import from CSV (客户导入): UTF-8 or GB18030 files as Excel and WPS save them,
with English or Chinese headers.

The import is idempotent: a row finds its contact by ``external_id`` (the brand's own
customer number), else by phone, and only fields that differ are written, so running the
same file twice changes nothing the second time. Nothing is rejected silently: every row
that is not written comes back with its line number and the reason.

A row is validated and planned first without writing (the plan decides created /
updated / unchanged), then written through the contact actions in its own savepoint.
A dry run stops after planning, so its counts are those of the real run.

Decisions worth knowing:

* An empty cell means "the file says nothing about this field": it never clears a value
  of an existing contact (clearing through a spreadsheet is too easy to do by accident).
* A row needs an ``external_id`` or a phone: a name-only row could not be found again, so a
  second import would duplicate it. Such rows are rejected, not created.
* Every contact and every key (external id, phone) is touched by at most one row of a
  file; a later row with the same key is rejected naming the first.
* First-touch attribution (``source_channel``/``source_campaign``) is set on creation
  only, as everywhere else; on existing contacts those columns are ignored.
* Tags are only added, never removed. Two tags of one exclusive group in one row are
  refused (the second would silently replace the first).
* A cell starting with ``'`` followed by ``=``, ``+``, ``-`` or ``@`` loses the ``'``: that
  is how the export neutralises formulas, so an unmasked export imports back unchanged.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import DatabaseError, transaction

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.contacts.actions import (
    check_profile_values,
    do_create_contact,
    do_get_or_create_tag,
    do_tag_contacts,
    do_update_contact,
)
from siyu.contacts.models import Contact, ContactTag, Gender, LifecycleStage, ProfileField, Tag, TagSource
from siyu.core import crypto
from siyu.core.errors import SiyuError, ValidationFailed
from siyu.core.models import Workspace
from siyu.core.phones import normalize_phone

__all__ = [
    "COMMIT_EVERY",
    "FIELD_ALIASES",
    "MAX_ROWS",
    "ImportReport",
    "InvalidColumns",
    "RowError",
    "UnreadableFile",
    "decode",
    "import_contacts",
]

#: More rows than this is almost certainly the wrong file (or should be split).
MAX_ROWS = 200_000

#: Column names recognised in a header, per field. Compared after lower-casing and
#: removing spaces, ``_``, ``-`` and ``.``, so "External ID" and "external_id" are one.
FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "姓名", "昵称", "客户姓名", "客户名称"),
    "phone": ("phone", "mobile", "手机", "手机号", "手机号码", "电话", "电话号码", "联系电话"),
    "gender": ("gender", "sex", "性别"),
    "birthday": ("birthday", "生日", "出生日期"),
    "region": ("region", "province", "省份", "省", "地区"),
    "city": ("city", "城市"),
    "external_id": ("external_id", "external_ref", "外部ID", "客户编号"),
    "owner_email": ("owner_email", "owner", "负责人", "归属员工"),
    "source_channel": ("source_channel", "来源渠道"),
    "source_campaign": ("source_campaign", "来源活动"),
    "stage": ("stage", "lifecycle_stage", "生命周期"),
    "tags": ("tags", "tag", "标签"),
}

#: Mapping targets that mean "skip this column".
_IGNORE = ("", "-", "ignore", "skip", "忽略")

_GENDERS = {
    "男": Gender.MALE, "男性": Gender.MALE, "male": Gender.MALE, "m": Gender.MALE,
    "女": Gender.FEMALE, "女性": Gender.FEMALE, "female": Gender.FEMALE, "f": Gender.FEMALE,
    "未知": Gender.UNKNOWN, "unknown": Gender.UNKNOWN,
}

_STAGE_WORDS = {
    LifecycleStage.NEW: ("新客", "新客户"),
    LifecycleStage.NURTURED: ("意向", "意向客户", "培育"),
    LifecycleStage.FIRST_PURCHASE: ("首购", "首单"),
    LifecycleStage.REPEAT: ("复购",),
    LifecycleStage.AT_RISK: ("流失风险", "预流失"),
    LifecycleStage.CHURNED: ("流失", "已流失"),
    LifecycleStage.RECALLED: ("召回", "已召回"),
}

_TAG_SEPARATORS = re.compile(r"[;；,，]")
_DATE = re.compile(r"^(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?$")
# Cells our own export escaped against formula injection ('=..., '+86...).
_ESCAPED = re.compile(r"^'[=+\-@\t\r]")
_LOOKUP_CHUNK = 500
#: Rows written per transaction (each row still in its own savepoint).
COMMIT_EVERY = 200


class UnreadableFile(ValidationFailed):
    """The bytes are not a CSV text we can read (empty, binary, XLSX, unknown encoding)."""

    code = "unreadable_file"


class InvalidColumns(ValidationFailed):
    """The header or the explicit mapping cannot be used (nothing known, a field twice...)."""

    code = "invalid_columns"


@dataclass
class RowError:
    row: int  # line number in the file, the header being line 1
    reason: str
    values: dict[str, str]


@dataclass
class ImportReport:
    imported: int
    updated: int
    unchanged: int
    rejected: list[RowError]
    dry_run: bool
    encoding: str
    #: header → field it was read as (``profile.<key>`` for custom fields)
    columns: dict[str, str] = field(default_factory=dict)
    #: headers that were not read, reported once instead of on every row
    unknown_columns: list[str] = field(default_factory=list)
    #: ``group/name`` of tags created (or, in a dry run, that would be created)
    created_tags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- reading the file


def _squash(text: str) -> str:
    return re.sub(r"[\s_\-.]+", "", text).lower()


_ALIAS_INDEX = {_squash(alias): name for name, aliases in FIELD_ALIASES.items() for alias in aliases}
_STAGE_INDEX = {
    **{_squash(value): value for value in LifecycleStage.values},
    **{_squash(word): stage for stage, words in _STAGE_WORDS.items() for word in words},
}


def decode(data: bytes) -> tuple[str, str]:
    """Return (text, encoding): UTF-8 (with or without BOM) first, then GB18030 (what
    Excel on Chinese Windows saves). Anything else is refused with the reason."""
    if not data.strip():
        raise UnreadableFile("the file is empty")
    if data.startswith(b"PK\x03\x04"):
        raise UnreadableFile("this is an Excel workbook (.xlsx), not CSV: save it as 'CSV UTF-8' and import that")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in data:
        raise UnreadableFile("the file is UTF-16 or binary, not CSV text: save it as 'CSV UTF-8' (or GB18030)")
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise UnreadableFile(f"the file starts like UTF-8 but byte {exc.start} is not UTF-8") from exc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"the file is neither UTF-8 nor GB18030 text (unreadable byte at offset {exc.start}); save it as 'CSV UTF-8'"
        ) from exc


@dataclass
class _Record:
    line: int
    cells: list[str]


def _read_records(text: str) -> tuple[list[str], list[_Record]]:
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header: list[str] | None = None
    records: list[_Record] = []
    last_line = 0
    try:
        for cells in reader:
            line = last_line + 1
            last_line = reader.line_num
            if header is None:
                if any(c.strip() for c in cells):
                    header = [c.strip() for c in cells]
                continue
            if not any(c.strip() for c in cells):
                continue  # blank lines are layout, not data
            records.append(_Record(line, cells))
            if len(records) > MAX_ROWS:
                raise UnreadableFile(f"the file has more than {MAX_ROWS} rows; split it")
    except csv.Error as exc:
        raise UnreadableFile(f"line {reader.line_num}: not valid CSV ({exc})") from exc
    if header is None:
        raise UnreadableFile("the file has no header row")
    return header, records


def _resolve_target(target: str, profile_keys: dict[str, str]) -> str | None:
    """A field name (or alias, or ``profile.<key>``); None for "skip"; raises if unknown."""
    text = target.strip()
    if text.lower() in _IGNORE:
        return None
    if text.lower().startswith("profile."):
        key = text[len("profile."):].strip()
        if key not in profile_keys.values():
            raise InvalidColumns(f"unknown profile field {key!r} in the column mapping", details={"field": text})
        return f"profile.{key}"
    name = _ALIAS_INDEX.get(_squash(text))
    if name is None:
        raise InvalidColumns(
            f"unknown field {text!r} in the column mapping; use one of {', '.join(FIELD_ALIASES)} or profile.<key>",
            details={"field": text},
        )
    return name


def _map_columns(header: list[str], mapping: dict[str, str] | None, profile_keys: dict[str, str]) -> tuple[list[str | None], list[str]]:
    """Field for each column (None when not read) and the unknown headers."""
    explicit: dict[int, str | None] = {}
    for column, wanted in (mapping or {}).items():
        matches = [i for i, h in enumerate(header) if h == column.strip()] or [
            i for i, h in enumerate(header) if _squash(h) == _squash(column)
        ]
        if not matches:
            raise InvalidColumns(
                f"the mapping names column {column!r}, which is not in the file (columns: {', '.join(header)})",
                details={"column": column},
            )
        for i in matches:
            explicit[i] = _resolve_target(wanted, profile_keys)
    fields: list[str | None] = []
    unknown: list[str] = []
    for i, head in enumerate(header):
        if i in explicit:
            fields.append(explicit[i])
            continue
        if head.lower().startswith("profile."):
            key = head[len("profile."):].strip()
            target = f"profile.{key}" if key in profile_keys.values() else None
        else:
            target = _ALIAS_INDEX.get(_squash(head))
            if target is None and head in profile_keys:
                target = f"profile.{profile_keys[head]}"
        fields.append(target)
        if target is None and head:
            unknown.append(head)
    seen: dict[str, str] = {}
    for head, read_as in zip(header, fields, strict=True):
        if read_as is None:
            continue
        if read_as in seen:
            raise InvalidColumns(
                f"columns {seen[read_as]!r} and {head!r} are both read as {read_as}; map one of them to 'ignore'",
                details={"field": read_as},
            )
        seen[read_as] = head
    if not seen:
        raise InvalidColumns(
            f"none of the columns is known ({', '.join(header)}); expected e.g. name/姓名, phone/手机, tags/标签",
        )
    if "external_id" not in seen and "phone" not in seen:
        raise InvalidColumns(
            "the file needs an external_id (客户编号) or phone (手机) column: without one a second import would duplicate every row"
        )
    return fields, unknown


# ---------------------------------------------------------------- parsing one row


class _Reject(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _parse_date(text: str) -> dt.date:
    match = _DATE.match(text)
    if match is None and re.fullmatch(r"\d{8}", text):
        match = re.match(r"(\d{4})(\d{2})(\d{2})", text)
    try:
        if match is None:
            raise ValueError(text)
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        raise _Reject(f"invalid date {text!r} (expected YYYY-MM-DD)") from None


def _limit(label: str, text: str, size: int) -> str:
    if len(text) > size:
        raise _Reject(f"{label} is longer than {size} characters")
    return text


@dataclass
class _TagRef:
    group: str
    name: str

    def __str__(self) -> str:
        return f"{self.group}/{self.name}"


@dataclass
class _Row:
    """A validated row: what the file says, in the form the actions take."""

    external_ref: str = ""
    phone: str = ""  # E.164
    name: str = ""
    fields: dict[str, Any] = field(default_factory=dict)  # gender, birthday, region, city, lifecycle_stage, owner
    source_channel: str = ""
    source_campaign: str = ""
    profile: dict[str, Any] = field(default_factory=dict)
    tags: list[_TagRef] = field(default_factory=list)


class _Tags:
    """The workspace's tags by ``group/name`` and by bare name, plus the ones this import
    creates (or, in a dry run, would create)."""

    def __init__(self, workspace: Workspace) -> None:
        self.by_key: dict[tuple[str, str], Tag | None] = {}
        self.by_name: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.exclusive: dict[str, bool] = {}
        for tag in Tag.objects.in_workspace(workspace).select_related("group"):
            self.add((tag.group.name, tag.name), tag, tag.group.exclusive)

    def add(self, key: tuple[str, str], tag: Tag | None, exclusive: bool = False) -> None:
        if key not in self.by_key:
            self.by_name[key[1]].append(key)
        self.by_key[key] = tag
        self.exclusive.setdefault(key[0], exclusive)

    def resolve(self, text: str, create: bool) -> _TagRef:
        if "/" in text:
            # Tag names cannot contain "/", group names can: split at the last one.
            group, _, name = text.rpartition("/")
            group, name = group.strip(), name.strip()
            if not group or not name:
                raise _Reject(f"invalid tag {text!r} (expected group/name)")
            if (group, name) not in self.by_key:
                if not create:
                    raise _Reject(f"unknown tag {text!r}")
                if len(group) > 50 or len(name) > 50:
                    raise _Reject(f"tag {text!r}: group and tag names are at most 50 characters")
            return _TagRef(group, name)
        found = self.by_name.get(text, [])
        if not found:
            hint = " (to create it, write it as group/name)" if create else ""
            raise _Reject(f"unknown tag {text!r}{hint}")
        if len(found) > 1:
            choices = ", ".join(f"{g}/{n}" for g, n in found)
            raise _Reject(f"tag name {text!r} is in several groups; write one of: {choices}")
        return _TagRef(*found[0])


class _Parser:
    def __init__(self, workspace: Workspace, header: list[str], fields: list[str | None], create_tags: bool) -> None:
        self.workspace = workspace
        self.header = header
        self.fields = fields
        self.create_tags = create_tags
        self.tags = _Tags(workspace)
        self.staff_by_email = {
            s.user.email.lower(): s for s in Staff.objects.in_workspace(workspace).filter(is_active=True).select_related("user")
        }
        self._phones: dict[str, str | _Reject] = {}

    def values(self, record: _Record) -> dict[str, str]:
        out = {head or f"column {i + 1}": (record.cells[i] if i < len(record.cells) else "") for i, head in enumerate(self.header)}
        for i in range(len(self.header), len(record.cells)):
            if record.cells[i].strip():
                out[f"column {i + 1}"] = record.cells[i]
        return out

    def cells(self, record: _Record) -> dict[str, str]:
        """Field → cleaned cell text, after checking the number of columns."""
        cells = record.cells
        extra = cells[len(self.header):]
        if len(cells) < len(self.header) or any(c.strip() for c in extra):
            raise _Reject(f"row has {len(cells)} columns, the header has {len(self.header)}")
        out: dict[str, str] = {}
        for target, cell in zip(self.fields, cells, strict=False):
            if target is None:
                continue
            text = cell.strip()
            if _ESCAPED.match(text):
                text = text[1:]
            out[target] = text
        return out

    def phone(self, raw: str) -> str:
        """E.164 for a cell, cached: the pre-scan and the row pass parse each number once."""
        if raw not in self._phones:
            if "*" in raw:
                self._phones[raw] = _Reject(f"phone {raw!r} is masked; export with permission to see phone numbers to re-import")
            else:
                try:
                    self._phones[raw] = normalize_phone(raw)
                except ValidationFailed as exc:
                    self._phones[raw] = _Reject(exc.message)
        value = self._phones[raw]
        if isinstance(value, _Reject):
            raise value
        return value

    def parse(self, cells: dict[str, str]) -> _Row:
        row = _Row()
        row.name = _limit("name", cells.get("name", ""), 100)
        for key in ("region", "city"):
            if cells.get(key):
                row.fields[key] = _limit(key, cells[key], 50)
        if cells.get("gender"):
            gender = _GENDERS.get(cells["gender"].lower())
            if gender is None:
                raise _Reject(f"unknown gender {cells['gender']!r} (expected 男/女/male/female/M/F)")
            row.fields["gender"] = gender.value
        if cells.get("birthday"):
            row.fields["birthday"] = _parse_date(cells["birthday"])
        if cells.get("stage"):
            stage = _STAGE_INDEX.get(_squash(cells["stage"]))
            if stage is None:
                raise _Reject(f"unknown lifecycle stage {cells['stage']!r} (expected one of {', '.join(LifecycleStage.values)})")
            row.fields["lifecycle_stage"] = stage
        if cells.get("owner_email"):
            staff = self.staff_by_email.get(cells["owner_email"].lower())
            if staff is None:
                raise _Reject(f"unknown owner {cells['owner_email']!r}: no active staff member with that email")
            row.fields["owner"] = staff
        row.source_channel = _limit("source_channel", cells.get("source_channel", ""), 64)
        row.source_campaign = _limit("source_campaign", cells.get("source_campaign", ""), 64)
        profile = {k.removeprefix("profile."): v for k, v in cells.items() if k.startswith("profile.") and v}
        if profile:
            try:
                row.profile = check_profile_values(self.workspace, profile)
            except ValidationFailed as exc:
                raise _Reject(exc.message) from None
        seen: set[tuple[str, str]] = set()
        for text in _TAG_SEPARATORS.split(cells.get("tags", "")):
            if not text.strip():
                continue
            ref = self.tags.resolve(text.strip(), self.create_tags)
            if (ref.group, ref.name) not in seen:
                seen.add((ref.group, ref.name))
                row.tags.append(ref)
        by_group: dict[str, _TagRef] = {}
        for ref in row.tags:
            if ref.group in by_group and self.tags.exclusive.get(ref.group, False):
                raise _Reject(f"tags {by_group[ref.group]} and {ref} are in the exclusive group {ref.group!r}; a contact holds one")
            by_group[ref.group] = ref
        return row


# ---------------------------------------------------------------- matching and planning


class _Existing:
    """Live contacts of the workspace that the file's keys point at, fetched once."""

    def __init__(self, workspace: Workspace, external_refs: set[str], phone_hashes: set[str]) -> None:
        self.by_ref: dict[str, list[Contact]] = defaultdict(list)
        self.by_phone: dict[str, list[Contact]] = defaultdict(list)
        self.tag_ids: dict[int, set[int]] = defaultdict(set)
        base = Contact.objects.in_workspace(workspace).filter(merged_into__isnull=True)
        contacts: dict[int, Contact] = {}
        for chunk in _chunks(sorted(external_refs)):
            contacts.update((c.pk, c) for c in base.filter(external_ref__in=chunk))
        for chunk in _chunks(sorted(phone_hashes)):
            contacts.update((c.pk, c) for c in base.filter(phone_hash__in=chunk))
        for contact in sorted(contacts.values(), key=lambda c: c.pk):
            contact.workspace = workspace  # the actions read it; spare a query per row
            if contact.external_ref:
                self.by_ref[contact.external_ref].append(contact)
            if contact.phone_hash:
                self.by_phone[contact.phone_hash].append(contact)
        for chunk in _chunks(sorted(contacts)):
            for cid, tid in ContactTag.objects.filter(contact_id__in=chunk).values_list("contact_id", "tag_id"):
                self.tag_ids[cid].add(tid)

    def match(self, row: _Row) -> Contact | None:
        phone_hash = crypto.lookup_hash(row.phone) if row.phone else ""
        contact = None
        if row.external_ref:
            contact = _one(self.by_ref.get(row.external_ref, []), f"external_id {row.external_ref!r}")
        if contact is None and phone_hash:
            contact = _one(self.by_phone.get(phone_hash, []), "this phone")
            if contact is not None and row.external_ref and contact.external_ref:
                raise _Reject(
                    f"this phone belongs to contact #{contact.pk}, whose external_id is {contact.external_ref!r}, not {row.external_ref!r}"
                )
        if contact is not None and phone_hash and contact.phone_hash != phone_hash:
            others = [c for c in self.by_phone.get(phone_hash, []) if c.pk != contact.pk]
            if others:
                raise _Reject(f"this phone already belongs to another contact (#{others[0].pk})")
        return contact


def _one(found: Sequence[Contact], what: str) -> Contact | None:
    if len(found) > 1:
        ids = ", ".join(f"#{c.pk}" for c in found)
        raise _Reject(f"{what} matches {len(found)} contacts ({ids}); merge them first")
    return found[0] if found else None


def _chunks(items: Sequence[Any], size: int = _LOOKUP_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _changes(contact: Contact, row: _Row) -> dict[str, Any]:
    """The fields (for do_update_contact) in which the row differs from the contact."""
    changes: dict[str, Any] = {}
    if row.name and row.name != contact.name:
        changes["name"] = row.name
    if row.external_ref and row.external_ref != contact.external_ref:
        changes["external_ref"] = row.external_ref
    if row.phone and crypto.lookup_hash(row.phone) != contact.phone_hash:
        changes["phone"] = row.phone
    for key, value in row.fields.items():
        if key == "owner":
            if value.pk != contact.owner_id:
                changes["owner"] = value
        elif getattr(contact, key) != value:
            changes[key] = value
    profile = {k: v for k, v in row.profile.items() if contact.profile.get(k) != v}
    if profile:
        changes["profile"] = profile
    return changes


# ---------------------------------------------------------------- the import


def import_contacts(
    workspace: Workspace,
    actor: Staff | None,
    data: bytes,
    *,
    mapping: dict[str, str] | None = None,
    dry_run: bool = False,
    create_tags: bool = False,
) -> ImportReport:
    """Import contacts from CSV bytes (客户导入): create new contacts, update the fields
    that differ on matched ones, add tags with source ``import``, and report every
    rejected row with its line number and reason. Each row is written in its own
    savepoint (committed every ``COMMIT_EVERY`` rows), so one bad row never undoes
    another. Records ``contacts.imported`` with the counts (not for a dry run, which
    writes nothing).

    ``mapping`` maps file columns to fields (``name``, ``phone``, ``tags``,
    ``profile.<key>``..., or ``ignore``) and overrides the header recognition.
    ``create_tags`` creates unknown ``group/name`` tags instead of rejecting the row.
    Raises :class:`UnreadableFile` or :class:`InvalidColumns` when the file as a whole
    cannot be imported."""
    require(actor, Perm.IMPORT_CONTACTS)
    if create_tags:
        require(actor, Perm.MANAGE_TAGS)
    text, encoding = decode(data)
    header, records = _read_records(text)
    profile_keys = {f.label.strip(): f.key for f in ProfileField.objects.in_workspace(workspace)}
    profile_keys.update({f: f for f in profile_keys.values()})
    fields, unknown = _map_columns(header, mapping, profile_keys)
    report = ImportReport(
        imported=0, updated=0, unchanged=0, rejected=[], dry_run=dry_run, encoding=encoding,
        columns={head: target for head, target in zip(header, fields, strict=True) if target is not None},
        unknown_columns=unknown,
    )
    parser = _Parser(workspace, header, fields, create_tags)

    # Pre-scan the keys so that existing contacts come in a few queries, not one per row.
    refs: set[str] = set()
    hashes: set[str] = set()
    for record in records:
        try:
            cells = parser.cells(record)
            if cells.get("external_id"):
                refs.add(cells["external_id"])
            if cells.get("phone"):
                hashes.add(crypto.lookup_hash(parser.phone(cells["phone"])))
        except _Reject:
            continue  # reported in the row pass
    existing = _Existing(workspace, refs, hashes)

    first_row_of_key: dict[str, int] = {}
    first_row_of_contact: dict[int, int] = {}
    for batch in _chunks(records, COMMIT_EVERY):
        # A commit per row costs more than the row itself on SQLite; a transaction per
        # batch with a savepoint per row keeps rows independent and commits rarely. A
        # crash loses at most one batch, which re-running the (idempotent) import redoes.
        # A dry run takes no write lock at all.
        with nullcontext() if dry_run else transaction.atomic():
            for record in batch:
                try:
                    outcome = _import_row(workspace, actor, record, parser, existing, first_row_of_key, first_row_of_contact, report)
                except _Reject as rejection:
                    report.rejected.append(RowError(record.line, rejection.reason, parser.values(record)))
                    continue
                if outcome == "created":
                    report.imported += 1
                elif outcome == "updated":
                    report.updated += 1
                else:
                    report.unchanged += 1

    if not dry_run:
        with transaction.atomic():
            record_audit(
                workspace,
                actor,
                "contacts.imported",
                target_type="contact",
                summary=(
                    f"imported {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
                    f"rejected {len(report.rejected)} ({encoding})"
                ),
                after={
                    "imported": report.imported,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "rejected": len(report.rejected),
                    "rows": len(records),
                    "encoding": encoding,
                    "created_tags": report.created_tags,
                },
            )
    return report


def _import_row(
    workspace: Workspace,
    actor: Staff | None,
    record: _Record,
    parser: _Parser,
    existing: _Existing,
    first_row_of_key: dict[str, int],
    first_row_of_contact: dict[int, int],
    report: ImportReport,
) -> str:
    """Validate, plan and (unless dry run) write one row; returns created/updated/unchanged
    or raises _Reject."""
    cells = parser.cells(record)
    external_ref = _limit("external_id", cells.get("external_id", ""), 100)
    phone_error: _Reject | None = None
    phone = ""
    if cells.get("phone"):
        try:
            phone = parser.phone(cells["phone"])
        except _Reject as exc:
            phone_error = exc
    keys: dict[str, str] = {}
    if external_ref:
        keys[f"external_id {external_ref!r}"] = f"ref:{external_ref}"
    if phone:
        keys["phone"] = f"phone:{crypto.lookup_hash(phone)}"
    for label, value in keys.items():
        first = first_row_of_key.get(value)
        if first is not None:
            raise _Reject(f"duplicate: same {label} as row {first}")
    for value in keys.values():
        first_row_of_key[value] = record.line
    if phone_error is not None:
        raise phone_error
    if not keys:
        raise _Reject("needs external_id or phone to be re-importable")

    row = parser.parse(cells)
    row.external_ref, row.phone = external_ref, phone
    contact = existing.match(row)
    if contact is not None:
        first = first_row_of_contact.get(contact.pk)
        if first is not None:
            raise _Reject(f"duplicate: row {first} already matched the same contact (#{contact.pk})")
        first_row_of_contact[contact.pk] = record.line
    elif not row.name:
        raise _Reject("name is empty (needed to create a new contact)")

    # Pending (dry-run) tags are in by_key with None: report each new tag once.
    new_tags = [ref for ref in row.tags if (ref.group, ref.name) not in parser.tags.by_key]
    if contact is None:
        changes: dict[str, Any] = {}
        outcome = "created"
    else:
        changes = _changes(contact, row)
        held = existing.tag_ids[contact.pk]
        added = [ref for ref in row.tags if (tag := parser.tags.by_key.get((ref.group, ref.name))) is None or tag.pk not in held]
        outcome = "updated" if changes or added else "unchanged"
    if outcome == "unchanged":
        return outcome

    if not report.dry_run:
        try:
            with transaction.atomic():
                tags = _tags_for(workspace, actor, row.tags, parser.tags)
                if contact is None:
                    do_create_contact(
                        workspace,
                        actor,
                        name=row.name,
                        source_channel=row.source_channel,
                        source_campaign=row.source_campaign,
                        profile=row.profile,
                        tags=tags,
                        tag_source=TagSource.IMPORT,
                        external_ref=row.external_ref,
                        phone=row.phone,
                        **row.fields,
                    )
                else:
                    if changes:
                        do_update_contact(contact, actor, **changes)
                    held = existing.tag_ids[contact.pk]
                    missing = [t for t in tags if t.pk not in held]
                    if missing:
                        do_tag_contacts(workspace, actor, [contact], missing, source=TagSource.IMPORT)
        except SiyuError as exc:
            raise _Reject(exc.message) from None
        except DatabaseError as exc:
            # Validation above mirrors the actions; this catches what only the database
            # can tell (a concurrent writer, a constraint).
            raise _Reject(_database_reason(exc)) from None
        for ref, tag in zip(row.tags, tags, strict=True):
            parser.tags.add((ref.group, ref.name), tag, tag.group.exclusive)
    else:
        for ref in new_tags:
            parser.tags.add((ref.group, ref.name), None)
    report.created_tags.extend(str(ref) for ref in new_tags)
    return outcome


def _database_reason(exc: DatabaseError) -> str:
    """The database's own one-line reason: PostgreSQL's primary message (without the
    DETAIL and CONTEXT lines psycopg adds to the text), SQLite's message."""
    primary = getattr(getattr(exc.__cause__, "diag", None), "message_primary", None)
    return str(primary or next(iter(str(exc).splitlines()), "") or type(exc).__name__)


def _tags_for(workspace: Workspace, actor: Staff | None, refs: Sequence[_TagRef], known: _Tags) -> list[Tag]:
    tags = []
    for ref in refs:
        tag = known.by_key.get((ref.group, ref.name))
        if tag is None:
            tag = do_get_or_create_tag(workspace, actor, group_name=ref.group, name=ref.name)
        tags.append(tag)
    return tags
