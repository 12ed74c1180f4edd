"""``siyu orders import FILE.csv --workspace SLUG [--dry-run] [--json]``.

``app`` is a typer app (registered by the ``siyu`` command as ``orders``);
:func:`run_import` is the same import as a plain function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from siyu.cli.runtime import UsageError, command, emit, staff_or_system, workspace_by_slug

app = typer.Typer(help="Orders: import from CSV.", no_args_is_help=True)


@app.callback()
def orders() -> None:
    """Orders: import from CSV."""
    # A callback keeps ``import`` a subcommand even while it is the only one.


def run_import(path: Path, workspace_slug: str, *, staff_email: str | None = None, dry_run: bool = False) -> Any:
    """Import an orders CSV into a workspace; returns the report (see
    :func:`siyu.commerce.importing.import_orders`)."""
    from siyu.commerce.importing import import_orders

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    workspace = workspace_by_slug(workspace_slug)
    return import_orders(workspace, staff_or_system(workspace, staff_email), data, dry_run=dry_run)


def _report_text(report: Any, path: Path) -> str:
    lines = [
        f"{path.name}: imported {report.imported}, updated {report.updated}, unchanged {report.unchanged} orders; "
        f"rejected {len(report.rejected)} rows  ({report.encoding}{', dry run: nothing written' if report.dry_run else ''})"
    ]
    if report.unknown_columns:
        lines.append(f"ignored columns: {', '.join(report.unknown_columns)}")
    if report.rejected:
        lines.append("rejected rows:")
        lines += [f"  row {error.row}: {error.reason}" for error in report.rejected]
    return "\n".join(lines)


@app.command("import")
def import_command(
    file: Annotated[Path, typer.Argument(help="CSV file (UTF-8 or GB18030), one row per order line.")],
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")],
    staff: Annotated[str | None, typer.Option("--staff", help="Act as this staff member; without it, as the system.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Check and count, write nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Import orders; importing the same file again changes nothing, and every row that
    is not imported is listed with the reason (e.g. an unknown customer)."""
    with command(json_out):
        report = run_import(file, workspace, staff_email=staff, dry_run=dry_run)
        emit(json_out, report.as_dict(), _report_text(report, file))
