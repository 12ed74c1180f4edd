"""``siyu groups ...``: group settings and keyword auto-replies from the command line.

    siyu groups settings 12 --workspace acme --json
    siyu groups auto-replies list --workspace acme --json
    siyu groups rebuild-activity --workspace acme --json
    siyu groups dismiss 12 --workspace acme --farewell "感谢陪伴，群将解散" --json
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from siyu.cli.runtime import command, emit, staff_or_system, workspace_by_slug

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]

groups_app = typer.Typer(help="Groups (社群): settings, auto-replies, activity.", no_args_is_help=True)
auto_replies_app = typer.Typer(help="Keyword auto-replies (关键词自动回复).", no_args_is_help=True)
groups_app.add_typer(auto_replies_app, name="auto-replies")


def group_settings(workspace_slug: str, group_id: int) -> dict[str, Any]:
    """A group's effective settings with the source of each value."""
    from siyu.communities.group_settings import effective
    from siyu.communities.models import Group

    group = Group.objects.get_in_workspace(workspace_by_slug(workspace_slug), pk=group_id)
    return {"group_id": group.pk, "group": group.name, "effective": effective(group).as_dict()}


def list_auto_replies(workspace_slug: str) -> list[dict[str, Any]]:
    from siyu.communities.models import AutoReplyRule

    return list(AutoReplyRule.objects.in_workspace(workspace_by_slug(workspace_slug)).values(
        "id", "group_id", "name", "match", "pattern", "reply", "cooldown_seconds", "priority", "is_active"))


@groups_app.command("settings")
def settings_command(group_id: int, workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """Show a group's effective settings and where each value comes from."""
    with command(json_out):
        result = group_settings(workspace, group_id)
        lines = [f"{k}: {v['value']!r} ({v['source']})" for k, v in result["effective"].items()]
        emit(json_out, result, "\n".join(lines))


@groups_app.command("dismiss")
def dismiss_command(
    group_id: int,
    workspace: WorkspaceOpt,
    farewell: Annotated[str, typer.Option("--farewell", help="Posted in the group before it ends.")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Shown to removed members where the channel shows one.")] = "",
    staff: Annotated[str | None, typer.Option("--staff", help="Act as this staff e-mail (default: the system).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Dismiss a group (解散群) on its channel — farewell, everyone out, the bot leaves; or a
    task for the owner where the channel cannot — and archive it."""
    from siyu.communities.actions import do_dismiss_group
    from siyu.communities.models import Group

    with command(json_out):
        ws = workspace_by_slug(workspace)
        group = Group.objects.get_in_workspace(ws, pk=group_id)
        queued = do_dismiss_group(group, staff_or_system(ws, staff), farewell_text=farewell, reason=reason)
        result = {"group_id": group.pk, "group": group.name, "archived_at": group.archived_at, "dismissed_at": group.dismissed_at,
                  "queued": queued}
        how = ("the owner has a task to dismiss it in the app" if any("staff_task" in q for q in queued)
               else "the channel dismisses it" if queued else "nothing to send (already dismissed, or on no channel)")
        emit(json_out, result, f"{group.name}: archived; {how}")


@groups_app.command("rebuild-activity")
def rebuild_activity_command(workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """Recompute the per-member per-day activity counters from stored messages."""
    from siyu.communities.actions import do_rebuild_activity

    with command(json_out):
        rows = do_rebuild_activity(workspace_by_slug(workspace))
        emit(json_out, {"rows": rows}, f"{rows} counter rows rebuilt")


@auto_replies_app.command("list")
def list_command(workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """List the workspace's keyword auto-replies."""
    with command(json_out):
        rows = list_auto_replies(workspace)
        emit(json_out, rows, "\n".join(f"#{r['id']} [{r['match']}] {r['pattern']} → {r['reply']}" for r in rows) or "no auto-replies")
