"""``siyu moderation check``: the verdict for a text (and/or an image) without writing."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from siyu.cli.runtime import UsageError, command, emit, workspace_by_slug

moderation_app = typer.Typer(help="Moderation: check texts and images against the policy.", no_args_is_help=True)


@moderation_app.callback()
def _group() -> None:
    """Keeps ``check`` a sub-command even while it is the only one."""


def check(text: str = "", *, workspace: str | None = None, group: int | None = None, image: bytes | None = None) -> dict[str, Any]:
    """The verdict as ``{"verdict": ..., "reasons": [{"detector", "evidence"}]}`` (plain
    function: the CLI and tests call it). With a workspace (and group) their stored
    policy and word lists apply, else the built-in defaults."""
    from siyu.moderation.actions import check_message

    workspace_id = None
    if workspace:
        ws = workspace_by_slug(workspace)
        workspace_id = ws.pk
        if group is not None:
            from siyu.communities.models import Group

            Group.objects.get_in_workspace(ws, pk=group)
    return check_message(text, workspace_id=workspace_id, group_id=group, image=image).as_dict()


@moderation_app.command("check")
def check_command(
    text: Annotated[str, typer.Argument(help="The message text.")] = "",
    workspace: Annotated[str | None, typer.Option("--workspace", help="Workspace slug (its policy and word lists).")] = None,
    group: Annotated[int | None, typer.Option("--group", help="Group id (its own policy).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="An image file checked for QR codes.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Print the verdict (allow/warn/delete/remove/blacklist) and the reasons."""
    with command(json_out):
        if not text and image is None:
            raise UsageError("give a TEXT or --image FILE")
        try:
            data = image.read_bytes() if image is not None else None
        except OSError as exc:
            raise UsageError(f"cannot read {image}: {exc.strerror or exc}") from exc
        result = check(text, workspace=workspace, group=group, image=data)
        lines = [result["verdict"]] + [f"  {r['detector']}: {r['evidence']}" for r in result["reasons"]]
        emit(json_out, result, "\n".join(lines))
