"""``siyu segments ...``: list, show, build and preview segments (人群包).

    siyu segments list --workspace acme --json
    siyu segments show --workspace acme --segment 3 --json
    siyu segments build --workspace acme --segment 3 --json
    siyu segments preview --workspace acme --definition '{"tags": {"any": ["VIP"]}}' --json
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from siyu.cli.runtime import command, emit, workspace_by_slug

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
SegmentOpt = Annotated[int, typer.Option("--segment", help="Segment id.")]

segments_app = typer.Typer(help="Segments (人群包): stored audiences with incremental updates.", no_args_is_help=True)


def _row(segment: Any) -> dict[str, Any]:
    return {"id": segment.pk, "name": segment.name, "kind": segment.kind, "size": segment.size,
            "last_built_at": segment.last_built_at, "last_build_ms": segment.last_build_ms, "definition": segment.definition}


def list_segments(workspace_slug: str) -> list[dict[str, Any]]:
    from siyu.segments.models import Segment

    return [_row(s) for s in Segment.objects.in_workspace(workspace_by_slug(workspace_slug)).order_by("name", "id")]


def show_segment(workspace_slug: str, segment_id: int) -> dict[str, Any]:
    from siyu.segments.models import Segment
    from siyu.segments.queries import segment_history

    workspace = workspace_by_slug(workspace_slug)
    segment = Segment.objects.get_in_workspace(workspace, pk=segment_id)
    builds = [{"mode": b.mode, "started_at": b.started_at, "duration_ms": b.duration_ms, "size": b.size, "entered": b.entered,
               "left": b.left} for b in segment_history(workspace, segment, limit=20)]
    return {**_row(segment), "builds": builds}


def build_segment(workspace_slug: str, segment_id: int) -> dict[str, Any]:
    from siyu.segments.actions import do_build_segment
    from siyu.segments.models import Segment

    segment = Segment.objects.select_related("workspace").get_in_workspace(workspace_by_slug(workspace_slug), pk=segment_id)
    build = do_build_segment(segment)
    return {"segment": segment.pk, "mode": build.mode, "duration_ms": build.duration_ms, "size": build.size,
            "entered": build.entered, "left": build.left}


def preview_definition(workspace_slug: str, definition: str) -> dict[str, Any]:
    from siyu.core.errors import ValidationFailed
    from siyu.segments.queries import preview

    try:
        parsed = json.loads(definition)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"the definition is not JSON: {exc.msg} at {exc.pos}", code="invalid_definition") from exc
    result = preview(workspace_by_slug(workspace_slug), None, parsed)
    # The CLI acts as the system: masked phones all the same (terminals end up in logs).
    return {"count": result.count, "definition": result.definition,
            "sample": [{"id": c.pk, "name": c.name, "phone": c.phone_masked} for c in result.sample]}


@segments_app.command("list")
def list_command(workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """Every segment with its size and last build."""
    with command(json_out):
        rows = list_segments(workspace)
        text = "\n".join(f"{r['id']:>5}  {r['kind']:<7}  {r['size']:>8}  {r['name']}" for r in rows) or "no segments"
        emit(json_out, rows, text)


@segments_app.command("show")
def show_command(workspace: WorkspaceOpt, segment: SegmentOpt, json_out: JsonFlag = False) -> None:
    """One segment: definition, size and recent builds."""
    with command(json_out):
        row = show_segment(workspace, segment)
        lines = [f"{row['name']} ({row['kind']}): {row['size']} members", json.dumps(row["definition"], ensure_ascii=False)]
        lines += [f"  {b['started_at']:%Y-%m-%d %H:%M}  {b['mode']:<11} {b['duration_ms']:>6} ms  size {b['size']}  "
                  f"+{b['entered']} −{b['left']}" for b in row["builds"]]
        emit(json_out, row, "\n".join(lines))


@segments_app.command("build")
def build_command(workspace: WorkspaceOpt, segment: SegmentOpt, json_out: JsonFlag = False) -> None:
    """Rebuild a dynamic segment now (full)."""
    with command(json_out):
        row = build_segment(workspace, segment)
        emit(json_out, row, f"size {row['size']} (+{row['entered']} −{row['left']}) in {row['duration_ms']} ms")


@segments_app.command("preview")
def preview_command(
    workspace: WorkspaceOpt,
    definition: Annotated[str, typer.Option("--definition", help="The definition as JSON.")],
    json_out: JsonFlag = False,
) -> None:
    """Count (and a sample of) the contacts a definition matches; stores nothing."""
    with command(json_out):
        row = preview_definition(workspace, definition)
        emit(json_out, row, f"{row['count']} contacts")
