"""``siyu channels add-matrix`` and ``siyu channels run-matrix`` (a typer sub-app; the
``siyu`` command mounts it under ``channels``).

The commands are thin: :func:`add_matrix_account` and :func:`run_listeners` do the work
and can be called from anywhere (``siyu up`` starts ``run-matrix`` as a child process
when Matrix accounts exist).
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated, Any

import typer

__all__ = ["add_matrix_account", "app", "run_listeners"]

app = typer.Typer(help="Channels: connect the Matrix bot and run its listener.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def add_matrix_account(
    workspace_slug: str, *, homeserver: str, user_id: str, password: str | None = None, access_token: str | None = None,
    name: str = "",
) -> dict[str, Any]:
    """Connect a Matrix bot to a workspace (as the system actor) and describe the account."""
    from siyu.accounts.actions import get_workspace
    from siyu.channels.matrix.actions import do_connect_matrix_account

    workspace = get_workspace(workspace_slug)
    account, created = do_connect_matrix_account(
        workspace, None, homeserver=homeserver, user_id=user_id, password=password, access_token=access_token, name=name,
    )
    return {
        "account_id": account.pk, "user_id": account.external_id, "name": account.name, "workspace": workspace.slug,
        "homeserver": account.config["homeserver"], "device_id": account.config.get("device_id", ""), "created": created,
    }


def run_listeners(workspace_slug: str | None = None, stop_event: threading.Event | None = None, *, once: bool = False,
                  poll_timeout_ms: int = 30_000) -> dict[str, Any]:
    """Run the listener of every active Matrix account (of one workspace, or all), one
    thread each, until ``stop_event`` is set (or one sync each with ``once``). Answers
    how many accounts were served and the ids of those whose listener failed (with
    ``once``, a failed sync; otherwise the loop retries and never fails)."""
    from siyu.channels.matrix.listener import active_accounts, run_listener

    stop = stop_event or threading.Event()
    accounts = list(active_accounts(workspace_slug))
    failed: list[int] = []

    def serve(account: Any) -> None:
        try:
            run_listener(account, stop, once=once, poll_timeout_ms=poll_timeout_ms)
        except Exception:
            logging.getLogger(__name__).exception("matrix listener of account %s failed", account.pk)
            failed.append(account.pk)

    threads = [threading.Thread(target=serve, args=(account,), name=f"matrix-{account.pk}", daemon=True) for account in accounts]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        for thread in threads:
            thread.join(timeout=0.5)
    return {"accounts": len(accounts), "failed": sorted(failed)}


@app.command("add-matrix")
def add_matrix(
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")],
    homeserver: Annotated[str, typer.Option("--homeserver", help="Homeserver base URL, e.g. https://matrix.example.com")],
    user_id: Annotated[str, typer.Option("--user-id", help="The bot's Matrix user id, e.g. @siyu-bot:example.com")],
    password: Annotated[
        str | None, typer.Option("--password", envvar="SIYU_MATRIX_PASSWORD", help="Log in with this password (or env SIYU_MATRIX_PASSWORD).")
    ] = None,
    access_token: Annotated[
        str | None,
        typer.Option("--access-token", envvar="SIYU_MATRIX_ACCESS_TOKEN", help="Use this access token (or env SIYU_MATRIX_ACCESS_TOKEN)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Account name in siyu (default: the user id).")] = "",
    json_out: JsonFlag = False,
) -> None:
    """Connect the workspace's Matrix bot: log in (or check the token) and store the token encrypted."""
    from siyu.cli.runtime import command, emit

    with command(json_out):
        info = add_matrix_account(workspace, homeserver=homeserver, user_id=user_id, password=password,
                                  access_token=access_token, name=name)
        verb = "connected" if info["created"] else "updated"
        emit(json_out, {"account_id": info["account_id"], "user_id": info["user_id"], "created": info["created"]},
             f"{verb} Matrix account {info['account_id']}: {info['user_id']} on {info['homeserver']} (workspace {info['workspace']})\n"
             "next: invite the bot to a room and give it power level 50 (or 100), then run `siyu channels run-matrix`")


@app.command("run-matrix")
def run_matrix(
    workspace: Annotated[str | None, typer.Option("--workspace", help="Only this workspace's accounts.")] = None,
    once: Annotated[bool, typer.Option("--once", help="One sync per account, then exit.")] = False,
    json_out: JsonFlag = False,
) -> None:
    """Run the Matrix listener (the bot) until Ctrl-C or SIGTERM."""
    from siyu.cli.runtime import command, emit

    with command(json_out):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        stop = threading.Event()
        if not once:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
        outcome = run_listeners(workspace, stop, once=once)
        text = f"matrix listener: served {outcome['accounts']} account(s)"
        if outcome["failed"]:
            text += f"; failed: {', '.join(map(str, outcome['failed']))}"
        emit(json_out, outcome, text)
        if outcome["failed"]:
            raise typer.Exit(1)
