"""``siyu contacts import`` and ``siyu contacts export``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from siyu.cli.runtime import UsageError, command, emit, staff_or_system, workspace_by_slug

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
StaffOpt = Annotated[
    str | None, typer.Option("--staff", help="Act as this staff member (their permissions); without it, as the system.")
]

contacts_app = typer.Typer(help="Contacts: import and export.", no_args_is_help=True)


def _parse_mapping(pairs: list[str]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs:
        # Field names never contain "=", column names might: split at the last one.
        column, sep, target = pair.rpartition("=")
        if not sep or not column.strip():
            raise UsageError(f"--map expects COLUMN=FIELD, got {pair!r}")
        mapping[column.strip()] = target.strip()
    return mapping


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _report_text(report: Any, path: Path) -> str:
    lines = [
        f"{path.name}: imported {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
        f"rejected {len(report.rejected)}  ({report.encoding}{', dry run: nothing written' if report.dry_run else ''})"
    ]
    if report.unknown_columns:
        lines.append(f"ignored columns: {', '.join(report.unknown_columns)}")
    if report.created_tags:
        lines.append(f"{'would create' if report.dry_run else 'created'} tags: {', '.join(report.created_tags)}")
    if report.rejected:
        lines.append("rejected rows:")
        lines += [f"  row {error.row}: {error.reason}" for error in report.rejected]
    return "\n".join(lines)


@contacts_app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8 or GB18030) with a header row.")],
    workspace: WorkspaceOpt,
    staff: StaffOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and count, write nothing.")] = False,
    mapping: Annotated[
        list[str] | None, typer.Option("--map", help="COLUMN=FIELD, repeatable; FIELD may be 'ignore' or profile.<key>.")
    ] = None,
    create_tags: Annotated[bool, typer.Option("--create-tags", help="Create unknown group/name tags instead of rejecting the row.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Import contacts from CSV; rows that cannot be imported are listed with the reason.
    Importing the same file again changes nothing."""
    with command(json_out):
        from siyu.contacts.importing import import_contacts

        columns = _parse_mapping(mapping or [])
        data = _read(file)
        ws = workspace_by_slug(workspace)
        actor = staff_or_system(ws, staff)
        report = import_contacts(ws, actor, data, mapping=columns or None, dry_run=dry_run, create_tags=create_tags)
        emit(json_out, report.as_dict(), _report_text(report, file))


@contacts_app.command("export")
def export_command(
    workspace: WorkspaceOpt,
    fmt: Annotated[Literal["csv", "xlsx"], typer.Option("--format", help="csv (UTF-8 with BOM, opens in Excel) or xlsx.")] = "csv",
    out: Annotated[
        Path | None, typer.Option("--out", help="File to write, or a directory (default: the current one).")
    ] = None,
    staff: StaffOpt = None,
    tags: Annotated[list[str] | None, typer.Option("--tag", help="Only contacts with this tag (group/name); repeatable, all must hold.")] = None,
    any_tags: Annotated[list[str] | None, typer.Option("--any-tag", help="Only contacts with at least one of these tags.")] = None,
    without_tags: Annotated[list[str] | None, typer.Option("--without-tag", help="Leave out contacts with this tag.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this lifecycle stage.")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this source channel.")] = None,
    query: Annotated[str | None, typer.Option("--query", help="Name, city, external id or phone.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Export contacts to CSV or XLSX (phones masked unless the staff member may see them)."""
    with command(json_out):
        from siyu.accounts.permissions import Perm, has_perm
        from siyu.contacts.exporting import export_contacts

        ws = workspace_by_slug(workspace)
        actor = staff_or_system(ws, staff)
        filters = {
            "tags_all": tags or [], "tags_any": any_tags or [], "tags_none": without_tags or [],
            "stage": stage, "channel": channel, "q": query,
        }
        target = out or Path.cwd()
        result = export_contacts(ws, actor, fmt=fmt, filters=filters)
        path = target / result.filename if target.is_dir() else target
        try:
            # Exports carry personal data: readable by the owner only.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(result.content)
        except OSError as exc:
            raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        unmasked = has_perm(actor, Perm.VIEW_PII)
        emit(
            json_out,
            {"file": str(path), "rows": result.rows, "format": fmt, "content_type": result.content_type, "pii_unmasked": unmasked},
            f"{result.rows} contacts written to {path}{'' if unmasked else ' (phone numbers masked)'}",
        )
