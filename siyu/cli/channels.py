"""``siyu channels``: connect channel accounts and run their listeners; ``siyu sandbox``:
talk into the in-process sandbox channel as if a member had."""

from __future__ import annotations

from typing import Annotated

import typer

from siyu.channels.matrix import cli as matrix_cli
from siyu.channels.wecom import cli as wecom_cli
from siyu.cli.admin import JsonFlag
from siyu.cli.runtime import command, emit

channels_app = typer.Typer(help="Channel accounts: WeCom, Matrix, sandbox.", no_args_is_help=True)
channels_app.command("add-wecom")(wecom_cli.add_wecom)
channels_app.command("add-matrix")(matrix_cli.add_matrix)
channels_app.command("run-matrix")(matrix_cli.run_matrix)


@channels_app.command("list")
def list_accounts(
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")],
    json_out: JsonFlag = False,
) -> None:
    """The workspace's channel accounts with their capabilities and inbox/outbox counts."""
    with command(json_out):
        from siyu.accounts.actions import get_workspace
        from siyu.channels.queries import account_overview

        rows = account_overview(get_workspace(workspace))
        text = "\n".join(
            f"{r['id']:>4}  {r['kind']:<8} {r['name']:<20} inbox {r['inbox_pending']} pending/{r['inbox_failed']} failed  "
            f"outbox {r['outbox_pending']} pending/{r['outbox_failed']} failed  {', '.join(r['capabilities'])}"
            for r in rows
        ) or "no channel accounts"
        emit(json_out, rows, text)


sandbox_app = typer.Typer(help="The in-process sandbox channel (demo, tests, benchmarks).", no_args_is_help=True)


@sandbox_app.command("say")
def say(
    text: Annotated[str, typer.Argument(help="What the member says.")],
    group: Annotated[str, typer.Option("--group", help="Group id, channel id or name.")],
    member: Annotated[str, typer.Option("--member", help="The member's sandbox id (e.g. sbx_u_000123).")],
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")] = "demo",
    name: Annotated[str, typer.Option("--name", help="Display name when the member is new.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Inject a group message as if it arrived from the channel; prints the verdict."""
    with command(json_out):
        from siyu.accounts.actions import get_workspace
        from siyu.channels.sandbox.inject import say as inject_say

        result = inject_say(get_workspace(workspace), group=group, member=member, text=text, member_name=name)
        reasons = "; ".join(f"{r['detector']}: {r['evidence']}" for r in result["reasons"])
        emit(json_out, result, f"{result['status']}: {result['verdict']}" + (f" ({reasons})" if reasons else ""))


@sandbox_app.command("join")
def join(
    group: Annotated[str, typer.Option("--group", help="Group id, channel id or name.")],
    member: Annotated[str, typer.Option("--member", help="The member's sandbox id.")],
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")] = "demo",
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    json_out: JsonFlag = False,
) -> None:
    """A member joins a sandbox group (the group's welcome message is posted)."""
    with command(json_out):
        from siyu.accounts.actions import get_workspace
        from siyu.channels.sandbox.inject import join as inject_join

        result = inject_join(get_workspace(workspace), group=group, member=member, member_name=name)
        emit(json_out, result, f"{result['status']}")
