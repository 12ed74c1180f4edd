"""``siyu groups ...``: group settings and keyword auto-replies from the command line.

    siyu groups settings 12 --workspace acme --json
    siyu groups auto-replies list --workspace acme --json
    siyu groups rebuild-activity --workspace acme --json
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from siyu.cli.runtime import command, emit, workspace_by_slug

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
