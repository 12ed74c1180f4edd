"""``siyu journeys ...`` and ``siyu playbooks ...``: typer sub-apps (mounted by
``siyu.cli.main``) and the plain functions behind them.

    siyu journeys apply nurture.yaml --workspace acme --publish --json
    siyu journeys list|show|runs --workspace acme --json
    siyu journeys tick --json
    siyu playbooks list --json
    siyu playbooks instantiate flash_sale --workspace acme --date 2026-12-12T20:00 --groups 3,4 --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from siyu.cli.runtime import UsageError, command, emit, workspace_by_slug

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]

journeys_app = typer.Typer(help="Journeys / SOP (旅程): define, publish, watch runs.", no_args_is_help=True)
playbooks_app = typer.Typer(help="Playbooks (运营剧本): flash sale, sharing session, Q&A clinic, nurture, VIP care, win-back.",
                            no_args_is_help=True)


def _summary(journey: Any) -> dict[str, Any]:
    return {
        "id": journey.pk, "name": journey.name, "status": journey.status, "trigger_kind": journey.trigger_kind,
        "version": journey.current_version.number if journey.current_version else None, "playbook": journey.playbook,
        "open_runs": getattr(journey, "open_runs", None), "total_runs": getattr(journey, "total_runs", None),
    }


def apply_file(workspace_slug: str, path: Path, *, publish: bool = False) -> dict[str, Any]:
    """Create the journey named in the file, or replace the draft of the one with that
    name; publish when asked (a new version only if the definition changed)."""
    from siyu.journeys.actions import check_definition, do_publish_journey, do_save_journey
    from siyu.journeys.definition import parse_text
    from siyu.journeys.models import Journey

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    workspace = workspace_by_slug(workspace_slug)
    clean = check_definition(workspace, parse_text(text))
    existing = Journey.objects.in_workspace(workspace).filter(name=clean["name"]).first()
    journey = do_save_journey(workspace, None, clean, journey=existing)
    version = do_publish_journey(journey, None) if publish else None
    journey.refresh_from_db()
    return {**_summary(journey), "created": existing is None, "published_version": version.number if version else None}


def list_journeys(workspace_slug: str) -> list[dict[str, Any]]:
    from siyu.journeys.queries import journeys

    return [_summary(j) for j in journeys(workspace_by_slug(workspace_slug))]


def show_journey(workspace_slug: str, journey_id: int) -> dict[str, Any]:
    from siyu.core.errors import NotFound
    from siyu.journeys.queries import journeys, run_summary, step_counts

    journey = journeys(workspace_by_slug(workspace_slug)).filter(pk=journey_id).first()
    if journey is None:
        raise NotFound("journey not found", code="journey_not_found")
    return {**_summary(journey), "runs_by_state": run_summary(journey), "steps": step_counts(journey),
            "definition": journey.current_version.definition if journey.current_version else journey.draft}


def journey_runs(workspace_slug: str, journey_id: int, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    from siyu.journeys.models import Journey
    from siyu.journeys.queries import describe_run, visible_runs

    workspace = workspace_by_slug(workspace_slug)
    journey = Journey.objects.get_in_workspace(workspace, pk=journey_id)
    runs = visible_runs(workspace, None).filter(journey=journey).order_by("-entered_at", "-id")
    if state:
        runs = runs.filter(state=state)
    return [describe_run(run) for run in runs[:limit]]


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param takes key=value (got {pair!r})")
        params[key.strip()] = value
    return params


def _parse_groups(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise UsageError(f"--groups takes group ids separated by commas (got {text!r})") from exc


@journeys_app.command("apply")
def apply_command(
    file: Annotated[Path, typer.Argument(help="Journey definition (YAML or JSON).")],
    workspace: WorkspaceOpt,
    publish: Annotated[bool, typer.Option("--publish", help="Publish it as a new version.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Create or update a journey from a YAML/JSON file (by its name)."""
    with command(json_out):
        result = apply_file(workspace, file, publish=publish)
        verb = "created" if result["created"] else "updated"
        extra = f", published version {result['published_version']}" if result["published_version"] else " (draft)"
        emit(json_out, result, f"journey #{result['id']} {result['name']!r} {verb}{extra}")


@journeys_app.command("list")
def list_command(workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """Journeys of the workspace with their status and runs."""
    with command(json_out):
        rows = list_journeys(workspace)
        emit(json_out, rows, "\n".join(
            f"#{r['id']} {r['name']} [{r['status']} v{r['version'] or '-'}] {r['trigger_kind']} open={r['open_runs']}" for r in rows
        ) or "no journeys")


@journeys_app.command("show")
def show_command(journey_id: Annotated[int, typer.Argument(help="Journey id.")], workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """One journey: its steps with per-step counts."""
    with command(json_out):
        data = show_journey(workspace, journey_id)
        lines = [f"#{data['id']} {data['name']} [{data['status']} v{data['version'] or '-'}]"]
        lines += [f"  {s['id']} ({s['type']}): here={s['now_here']} {s['outcomes']}" for s in data["steps"]]
        emit(json_out, data, "\n".join(lines))


@journeys_app.command("runs")
def runs_command(
    journey_id: Annotated[int, typer.Argument(help="Journey id.")],
    workspace: WorkspaceOpt,
    state: Annotated[str | None, typer.Option("--state", help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000)] = 50,
    json_out: JsonFlag = False,
) -> None:
    """Runs of a journey: where each contact or group is, and the path it took."""
    with command(json_out):
        rows = journey_runs(workspace, journey_id, state, limit)
        emit(json_out, rows, "\n".join(
            f"run #{r['id']} contact={r['contact_id']} group={r['group_id']} {r['state']} at {r['current_step']}"
            + (f" until {r['wake_at']:%Y-%m-%d %H:%M}" if r["wake_at"] else "") for r in rows
        ) or "no runs")


@journeys_app.command("tick")
def tick_command(json_out: JsonFlag = False) -> None:
    """Advance every due run now (what the worker's minute sweep does)."""
    with command(json_out):
        from siyu.journeys.engine import run_due

        counts = run_due()
        emit(json_out, counts, ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing due")


@playbooks_app.command("list")
def playbooks_list_command(json_out: JsonFlag = False) -> None:
    """The shipped playbooks and what they need."""
    with command(json_out):
        from siyu.journeys.playbooks import list_playbooks

        rows = list_playbooks()
        emit(json_out, rows, "\n".join(f"{r['name']}: {r['title']} (needs: {', '.join(r['needs']) or '-'})" for r in rows))


@playbooks_app.command("instantiate")
def playbooks_instantiate_command(
    name: Annotated[str, typer.Argument(help="Playbook name (siyu playbooks list).")],
    workspace: WorkspaceOpt,
    date: Annotated[str | None, typer.Option("--date", help="Event time, local: 2026-12-12T20:00.")] = None,
    groups: Annotated[str, typer.Option("--groups", help="Group ids, comma-separated.")] = "",
    group_set: Annotated[int | None, typer.Option("--group-set", help="A group set id.")] = None,
    time_zone: Annotated[str | None, typer.Option("--time-zone", help="Default: the workspace's.")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="key=value, repeatable.")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create and publish a playbook's journeys (and its group runs and sale group)."""
    with command(json_out):
        from siyu.journeys.playbooks import do_instantiate_playbook

        result = do_instantiate_playbook(
            workspace_by_slug(workspace), None, name, event_at=date, group_ids=_parse_groups(groups), group_set_id=group_set,
            time_zone=time_zone, params=_parse_params(param or []),
        )
        lines = [f"{j['name']} (#{j['id']}, v{j['version']})" for j in result["journeys"]]
        for journey in result["journeys"]:
            lines += [f"  {s['at'] or '-'}  {s['text']}" for s in journey.get("schedule", [])]
        emit(json_out, result, "\n".join(lines))
