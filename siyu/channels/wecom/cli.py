"""``siyu channels add-wecom``: connect a WeCom self-built app to a workspace.

``app`` is a typer sub-app meant to be mounted as ``siyu channels`` (``add_typer(app,
name="channels")``); :func:`add_wecom_account` is the plain function behind the command.
Credentials can come from the environment (``SIYU_WECOM_SECRET``, ``SIYU_WECOM_TOKEN``,
``SIYU_WECOM_AES_KEY``) so they stay out of shell history; the secret is never printed.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from siyu.cli.runtime import command, emit, setup_django

__all__ = ["add_wecom_account", "app"]

app = typer.Typer(help="Channel accounts (WeCom, Matrix, sandbox).", no_args_is_help=True)


@app.callback()
def channels() -> None:
    """Channel accounts (WeCom, Matrix, sandbox)."""


def callback_path(account_id: int) -> str:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("channels:wecom-callback", kwargs={"account_id": account_id})
    except NoReverseMatch:  # channel URLs not mounted in this URLconf
        return f"/channels/wecom/{account_id}/callback"


def add_wecom_account(
    workspace_slug: str,
    corp_id: str,
    agent_id: int,
    secret: str,
    token: str,
    aes_key: str,
    *,
    name: str = "",
    api_base: str | None = None,
) -> dict[str, Any]:
    """Connect the app (as the system actor) and return what the admin needs next:
    ``{"account_id", "callback_path", "workspace", "corp_id"}``."""
    setup_django()
    from siyu.accounts.actions import get_workspace
    from siyu.channels.wecom.actions import do_connect_wecom

    workspace = get_workspace(workspace_slug)
    account = do_connect_wecom(
        workspace,
        None,
        corp_id=corp_id,
        agent_id=agent_id,
        secret=secret,
        token=token,
        aes_key=aes_key,
        name=name,
        api_base=api_base,
    )
    return {
        "account_id": account.pk,
        "callback_path": callback_path(account.pk),
        "workspace": workspace.slug,
        "corp_id": account.external_id,
    }


@app.command("add-wecom")
def add_wecom(
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    corp_id: Annotated[str, typer.Option("--corp-id", help="企业ID (My Company → Company Info).")],
    agent_id: Annotated[int, typer.Option("--agent-id", help="AgentId of the self-built app.", min=1)],
    secret: Annotated[str, typer.Option(help="The app's Secret.", envvar="SIYU_WECOM_SECRET", show_envvar=True)],
    token: Annotated[str, typer.Option(help="Callback Token (接收消息 → Token).", envvar="SIYU_WECOM_TOKEN", show_envvar=True)],
    aes_key: Annotated[
        str,
        typer.Option("--aes-key", help="Callback EncodingAESKey (43 characters).", envvar="SIYU_WECOM_AES_KEY", show_envvar=True),
    ],
    name: Annotated[str, typer.Option(help="Display name of the account (default CORPID/AGENTID).")] = "",
    api_base: Annotated[str | None, typer.Option(help="API base URL, for an egress proxy (default qyapi.weixin.qq.com).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Connect a WeCom self-built app (自建应用) and print its callback URL path."""
    with command(json_out):
        info = add_wecom_account(workspace, corp_id, agent_id, secret, token, aes_key, name=name, api_base=api_base)
        text = (
            f"WeCom app {corp_id}/{agent_id} connected to {info['workspace']} as channel account {info['account_id']}\n"
            f"callback URL: https://<your host>{info['callback_path']}  (with the same Token and EncodingAESKey)"
        )
        emit(json_out, info, text)
