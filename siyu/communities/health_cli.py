"""``siyu group-health ...``: group health, heatmap, inferred roles, alerts and re-pull
from the command line (a typer sub-app mounted as ``group-health``).

    siyu group-health health --workspace acme --group 3 [--days 30] [--refresh] --json
    siyu group-health heatmap --workspace acme --group 3 [--days 30] --json
    siyu group-health roles --workspace acme --group 3 --json
    siyu group-health alerts --workspace acme [--state open|resolved|all] --json
    siyu group-health care --json
    siyu group-health repull --workspace acme --group 3 [--new-name N] [--keep-old] [--staff EMAIL] --json
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from siyu.cli.runtime import command, emit, staff_or_system, workspace_by_slug

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
GroupOpt = Annotated[int, typer.Option("--group", help="Group id.")]
DaysOpt = Annotated[int, typer.Option("--days", help="How many days back.")]

health_app = typer.Typer(help="Group health (社群健康度), heatmaps, member roles, alerts, re-pull.", no_args_is_help=True)
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _group(workspace_slug: str, group_id: int) -> Any:
    from siyu.communities.models import Group

    workspace = workspace_by_slug(workspace_slug)
    return Group.objects.select_related("workspace", "owner", "channel_account").get_in_workspace(workspace, pk=group_id)


def group_health(workspace_slug: str, group_id: int, *, days: int = 30, refresh: bool = False) -> dict[str, Any]:
    """The stored daily snapshots of a group (oldest first), optionally filled up first."""
    from siyu.communities.actions import do_refresh_group_health
    from siyu.communities.health import HealthFigures
    from siyu.communities.models import GroupHealthDay

    group = _group(workspace_slug, group_id)
    if refresh:
        do_refresh_group_health(group)
    rows = list(GroupHealthDay.objects.filter(group=group).order_by("-day")[:days])[::-1]
    names = [f for f in HealthFigures.__dataclass_fields__ if f not in ("day", "observed_days")]  # the stored figures
    out = [{"day": r.day.isoformat(), **{n: getattr(r, n) for n in names}} for r in rows]
    return {"group_id": group.pk, "group": group.name, "state": out[-1]["state"] if out else None, "days": out}


def group_heatmap_report(workspace_slug: str, group_id: int, *, days: int = 30) -> dict[str, Any]:
    from siyu.communities.heatmap import best_hours, group_heatmap

    group = _group(workspace_slug, group_id)
    grid = group_heatmap(group, days=days)
    return {"group_id": group.pk, "group": group.name, "days": days, "time_zone": group.workspace.time_zone, "grid": grid,
            "best_hours": best_hours(group, heatmap=grid)}


def group_roles(workspace_slug: str, group_id: int) -> list[dict[str, Any]]:
    from siyu.communities.models import Membership

    group = _group(workspace_slug, group_id)
    return [
        {"contact_id": m.contact_id, "name": m.contact.name, "role": m.role, "role_assigned": m.role_assigned,
         "reason": "set by hand" if m.role_assigned else m.role_reason, "candidate": m.role_candidate,
         "candidate_streak": m.role_candidate_streak}
        for m in Membership.objects.filter(group=group, left_at__isnull=True).select_related("contact").order_by("joined_at", "id")
    ]


def alert_list(workspace_slug: str, state: str = "open") -> list[dict[str, Any]]:
    from siyu.communities.models import Alert
    from siyu.core.errors import ValidationFailed

    qs = Alert.objects.in_workspace(workspace_by_slug(workspace_slug)).select_related("group").order_by("-created_at", "-id")
    if state == "open":
        qs = qs.filter(resolved_at__isnull=True)
    elif state == "resolved":
        qs = qs.filter(resolved_at__isnull=False)
    elif state != "all":
        raise ValidationFailed("state must be open, resolved or all", code="invalid_state")
    return [
        {"id": a.pk, "group_id": a.group_id, "group": a.group.name, "kind": a.kind, "day": a.day.isoformat(), "to_state": a.to_state,
         "message": a.message, "staff_task_id": a.staff_task_id, "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None}
        for a in qs
    ]


@health_app.command("health")
def health_command(workspace: WorkspaceOpt, group: GroupOpt, days: DaysOpt = 30,
                   refresh: Annotated[bool, typer.Option("--refresh", help="Fill missing days up to yesterday first.")] = False,
                   json_out: JsonFlag = False) -> None:
    """A group's daily health: messages, talkers, active ratio, retention, silence, ads, state."""
    with command(json_out):
        result = group_health(workspace, group, days=days, refresh=refresh)
        lines = [f"{result['group']}: {result['state'] or 'no snapshot yet'}"] + [
            f"{d['day']}  {d['state']:<8} msgs {d['messages']:>4}  talkers {d['talkers']:>3}/{d['members']:<4} silent {d['silence_days']}d"
            for d in result["days"]
        ]
        emit(json_out, result, "\n".join(lines))


@health_app.command("heatmap")
def heatmap_command(workspace: WorkspaceOpt, group: GroupOpt, days: DaysOpt = 30, json_out: JsonFlag = False) -> None:
    """Messages per weekday × local hour (7×24) and the best hours to post."""
    with command(json_out):
        result = group_heatmap_report(workspace, group, days=days)
        rows = ["     " + " ".join(f"{h:>3}" for h in range(24))]
        rows += [f"{WEEKDAYS[i]}  " + " ".join(f"{n:>3}" for n in row) for i, row in enumerate(result["grid"])]
        rows.append("best hours: " + (", ".join(f"{h:02d}:00" for h in result["best_hours"]) or "—"))
        emit(json_out, result, "\n".join(rows))


@health_app.command("roles")
def roles_command(workspace: WorkspaceOpt, group: GroupOpt, json_out: JsonFlag = False) -> None:
    """Open members with their role (hand-set or inferred) and why."""
    with command(json_out):
        result = group_roles(workspace, group)
        emit(json_out, result, "\n".join(f"{r['name']}: {r['role']}{' (hand-set)' if r['role_assigned'] else ''} — {r['reason']}" for r in result))


@health_app.command("alerts")
def alerts_command(workspace: WorkspaceOpt, state: Annotated[str, typer.Option("--state", help="open, resolved or all")] = "open",
                   json_out: JsonFlag = False) -> None:
    """Group alerts (fading / silent)."""
    with command(json_out):
        result = alert_list(workspace, state)
        emit(json_out, result, "\n".join(f"#{a['id']} {a['day']} {a['message']}" for a in result) or "no alerts")


@health_app.command("care")
def care_command(json_out: JsonFlag = False) -> None:
    """Run the daily pass now: health snapshots up to yesterday and inferred roles, every group."""
    with command(json_out):
        from siyu.communities.actions import do_daily_group_care

        result = do_daily_group_care()
        emit(json_out, result, ", ".join(f"{k}: {v}" for k, v in result.items()))


@health_app.command("repull")
def repull_command(
    workspace: WorkspaceOpt,
    group: GroupOpt,
    new_name: Annotated[str | None, typer.Option("--new-name", help="Name of the fresh group.")] = None,
    farewell: Annotated[str | None, typer.Option("--farewell", help="Farewell posted in the old group.")] = None,
    min_messages: Annotated[int, typer.Option("--min-messages", help="Messages in the window to count as active.")] = 1,
    window_days: Annotated[int, typer.Option("--window-days")] = 30,
    keep_old: Annotated[bool, typer.Option("--keep-old", help="Do not archive the old group.")] = False,
    staff: Annotated[str | None, typer.Option("--staff", help="Act as this staff e-mail (default: the system).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Re-pull (重新拉群): invite the active members into a fresh group, say farewell, archive."""
    with command(json_out):
        from siyu.communities.actions import do_repull_group

        old = _group(workspace, group)
        repull = do_repull_group(old.workspace, old, actor=staff_or_system(old.workspace, staff), new_name=new_name, farewell_text=farewell,
                                 min_messages=min_messages, window_days=window_days, archive_old=not keep_old)
        result = {"id": repull.pk, "old_group_id": repull.old_group_id, "new_group_id": repull.new_group_id,
                  "new_group": repull.new_group.name, "status": repull.status, "invited": repull.invited}
        emit(json_out, result, f"{len(repull.invited)} members invited to {repull.new_group.name} ({repull.status})")
