"""Writes for Matrix accounts: connecting the bot, and the listener's sync position."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx
from django.db import transaction

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.channels.actions import do_create_channel_account
from siyu.channels.matrix.client import MatrixClient, MatrixError, MatrixUnavailable
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.core import crypto
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace

_USER_ID = re.compile(r"^@[a-z0-9._=\-/+]+:[A-Za-z0-9.\-]+(:\d{1,5})?$")


def check_homeserver(url: str) -> str:
    """The homeserver base URL without a trailing slash (http or https, no path)."""
    parts = urlsplit((url or "").strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationFailed(f"homeserver must be an http(s) URL such as https://matrix.example.com, got {url!r}",
                               code="invalid_homeserver")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValidationFailed("homeserver URL must not have a path, query or fragment", code="invalid_homeserver")
    return f"{parts.scheme}://{parts.netloc}"


def check_user_id(user_id: str) -> str:
    user_id = (user_id or "").strip()
    if not _USER_ID.match(user_id):
        raise ValidationFailed(f"not a Matrix user id (expected @name:server): {user_id!r}", code="invalid_user_id")
    return user_id


def _login(homeserver: str, user_id: str, password: str | None, access_token: str | None,
           transport: httpx.BaseTransport | None) -> dict[str, Any]:
    """Log in (password) or check the token (whoami); answers user_id, access_token, device_id."""
    try:
        with MatrixClient(homeserver, access_token or "", transport=transport) as client:
            if password:
                answer = client.login_password(user_id, password)
                return {"user_id": answer["user_id"], "access_token": answer["access_token"], "device_id": answer.get("device_id", "")}
            answer = client.whoami()
            return {"user_id": answer["user_id"], "access_token": access_token, "device_id": answer.get("device_id", "")}
    except MatrixUnavailable as exc:
        raise ValidationFailed(f"cannot reach the homeserver {homeserver}: {exc.message}", code="matrix_unreachable") from exc
    except MatrixError as exc:
        what = "login" if password else "access token check"
        raise ValidationFailed(f"Matrix {what} failed for {user_id}: {exc.errcode} {exc.message}", code="matrix_login_failed",
                               details={"errcode": exc.errcode, "status": exc.status}) from exc


def do_connect_matrix_account(
    workspace: Workspace,
    actor: Staff | None,
    *,
    homeserver: str,
    user_id: str,
    password: str | None = None,
    access_token: str | None = None,
    name: str = "",
    transport: httpx.BaseTransport | None = None,
) -> tuple[ChannelAccount, bool]:
    """Connect the workspace's Matrix bot: log in with the password (or verify the access
    token) and store the token encrypted. Connecting an account of the same name again
    replaces its credentials. Returns (account, created); records
    ``channel_account.created`` or ``channel_account.credentials_updated`` (never the token)."""
    require(actor, Perm.MANAGE_WORKSPACE)
    homeserver = check_homeserver(homeserver)
    user_id = check_user_id(user_id)
    if bool(password) == bool(access_token):
        raise ValidationFailed("give either a password or an access token", code="credentials_required")
    login = _login(homeserver, user_id, password, access_token, transport)
    if login["user_id"] != user_id:
        raise ValidationFailed(f"the access token belongs to {login['user_id']}, not {user_id}", code="matrix_wrong_user")
    name = (name or user_id)[:100]
    config = {"homeserver": homeserver, "user_id": user_id, "access_token": crypto.encrypt(str(login["access_token"])),
              "device_id": str(login["device_id"] or "")}
    with transaction.atomic():
        existing = ChannelAccount.objects.in_workspace(workspace).select_for_update().filter(kind=ChannelKind.MATRIX, name=name).first()
        if existing is None:
            account = do_create_channel_account(workspace, actor, kind=ChannelKind.MATRIX, name=name, external_id=user_id, config=config)
            return account, True
        before = {k: (existing.config or {}).get(k) for k in ("homeserver", "user_id", "device_id")}
        if before["user_id"] == user_id and before["homeserver"] == homeserver and (existing.config or {}).get("since"):
            config["since"] = existing.config["since"]  # same bot on the same server: carry on where the listener was
        existing.config = {**(existing.config or {}), **config}
        if "since" not in config:
            existing.config.pop("since", None)
        existing.external_id = user_id
        existing.is_active = True
        existing.save(update_fields=["config", "external_id", "is_active"])
        record_audit(workspace, actor, "channel_account.credentials_updated", target=existing, before=before,
                     after={"homeserver": homeserver, "user_id": user_id, "device_id": config["device_id"]})
    return existing, False


def do_save_sync_position(account: ChannelAccount, since: str) -> None:
    """Remember where the listener's ``/sync`` got to (``config["since"]``), so that a
    restart continues there; call it in the transaction that stores the events of that
    sync. Not audited: it is a cursor that moves every few seconds, not a change anybody
    made (the events it covers are in the inbox)."""
    with transaction.atomic():
        fresh = ChannelAccount.objects.select_for_update().get(pk=account.pk)
        config = dict(fresh.config or {})
        config["since"] = since
        fresh.config = config
        fresh.save(update_fields=["config"])
    account.config = config
