"""Contact export (客户导出) to CSV or XLSX.

Only the contacts the staff member may see are exported, phone numbers are masked unless
the role may see them, and every export is audited (an export is the easiest way for a
customer list to leave the company). The columns use the importer's field names, so an
unmasked export imports back unchanged.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Prefetch
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm, require
from siyu.contacts.models import Contact, ContactTag
from siyu.contacts.queries import filter_contacts, visible_contacts
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace

__all__ = ["COLUMNS", "CONTENT_TYPES", "FILTER_KEYS", "ExportResult", "export_contacts", "neutralize"]

COLUMNS = (
    "id", "name", "gender", "birthday", "region", "city", "phone", "owner", "stage",
    "source_channel", "source_campaign", "external_id", "tags", "created_at",
)
CONTENT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
FILTER_KEYS = ("tags_all", "tags_any", "tags_none", "stage", "owner_id", "channel", "q")
CHUNK = 2000

# A cell starting with one of these is run as a formula by Excel/WPS (=HYPERLINK(...),
# +cmd|...); tab and carriage return can hide such a prefix.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ExportResult:
    filename: str
    content_type: str
    content: bytes
    rows: int


def neutralize(value: str) -> str:
    """Make a text cell inert in a spreadsheet: prefix a formula-like start with ``'``."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def _clean_filters(filters: dict[str, Any] | None) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for key, value in (filters or {}).items():
        if key not in FILTER_KEYS:
            raise ValidationFailed(f"unknown filter {key!r}; use {', '.join(FILTER_KEYS)}", code="unknown_filter")
        if value in (None, "", [], ()):
            continue
        if key.startswith("tags_"):
            value = [value] if isinstance(value, str | int) else list(value)
        elif key == "owner_id":
            try:
                value = int(value)
            except (TypeError, ValueError) as exc:
                raise ValidationFailed(f"owner_id must be a number, got {value!r}", code="invalid_filter") from exc
        clean[key] = value
    return clean


def _rows(workspace: Workspace, contacts: Iterator[Contact], unmask: bool) -> Iterator[list[Any]]:
    tz = workspace.tz
    for contact in contacts:
        links = sorted(contact.tag_links.all(), key=lambda link: (link.tag.group_id, link.tag_id))
        yield [
            contact.pk,
            contact.name,
            contact.gender,
            contact.birthday.isoformat() if contact.birthday else "",
            contact.region,
            contact.city,
            contact.phone if unmask else contact.phone_masked,
            contact.owner.user.email if contact.owner else "",
            contact.lifecycle_stage,
            contact.source_channel,
            contact.source_campaign,
            contact.external_ref,
            "; ".join(f"{link.tag.group.name}/{link.tag.name}" for link in links),
            contact.created_at.astimezone(tz).isoformat(timespec="seconds"),
        ]


def _cells(row: list[Any]) -> list[Any]:
    return [neutralize(cell) if isinstance(cell, str) else cell for cell in row]


def _write_csv(rows: Iterator[list[Any]]) -> tuple[bytes, int]:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(_cells(row))
        count += 1
    # The BOM is what makes Excel read the file as UTF-8 instead of the ANSI code page.
    return buffer.getvalue().encode("utf-8-sig"), count


def _write_xlsx(rows: Iterator[list[Any]]) -> tuple[bytes, int]:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("contacts")
    sheet.append(list(COLUMNS))
    count = 0
    for row in rows:
        sheet.append(_cells(row))
        count += 1
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue(), count


def export_contacts(workspace: Workspace, staff: Staff | None, *, fmt: str = "csv", filters: dict[str, Any] | None = None) -> ExportResult:
    """Export the contacts ``staff`` may see, narrowed by ``filters`` (the contact list
    filters: tags_all, tags_any, tags_none, stage, owner_id, channel, q), as CSV (UTF-8
    with BOM) or XLSX. Phones are masked unless the role has ``contacts.view_pii``.
    Records ``contacts.exported`` with the format, row count, filters and whether PII
    was unmasked."""
    require(staff, Perm.EXPORT_CONTACTS)
    if fmt not in CONTENT_TYPES:
        raise ValidationFailed(f"unknown export format {fmt!r}; use csv or xlsx", code="invalid_format")
    clean = _clean_filters(filters)
    unmask = has_perm(staff, Perm.VIEW_PII)
    contacts = (
        filter_contacts(visible_contacts(workspace, staff), workspace, **clean)
        .select_related("owner__user")
        .prefetch_related(Prefetch("tag_links", queryset=ContactTag.objects.select_related("tag__group")))
        .order_by("pk")
        # With chunk_size, prefetch_related runs once per chunk: memory stays flat.
        .iterator(chunk_size=CHUNK)
    )
    rows = _rows(workspace, contacts, unmask)
    content, count = _write_csv(rows) if fmt == "csv" else _write_xlsx(rows)
    stamp = timezone.now().astimezone(workspace.tz).strftime("%Y%m%d-%H%M%S")
    with transaction.atomic():
        record_audit(
            workspace,
            staff,
            "contacts.exported",
            target_type="contact",
            summary=f"{count} contacts as {fmt}{' with phone numbers' if unmask else ''}",
            after={"format": fmt, "rows": count, "filters": clean, "pii_unmasked": unmask},
        )
    return ExportResult(filename=f"contacts-{workspace.slug}-{stamp}.{fmt}", content_type=CONTENT_TYPES[fmt], content=content, rows=count)
