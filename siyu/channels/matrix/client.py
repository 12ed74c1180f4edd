"""A small synchronous client for the Matrix client-server API (v3), on httpx.

Only the dozen endpoints the adapter and the listener use. It is synchronous because its
callers are: the outbox delivers one command per worker task, and the listener is one
long-poll loop per account. Errors come back as :class:`MatrixError` with the
homeserver's ``errcode``; network failures as :class:`MatrixUnavailable`.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["API", "MatrixClient", "MatrixError", "MatrixUnavailable"]

API = "/_matrix/client/v3"


class MatrixError(Exception):
    """The homeserver answered with an error (``{"errcode", "error"}``)."""

    def __init__(self, status: int, errcode: str, message: str, *, retry_after_ms: int | None = None) -> None:
        super().__init__(f"{status} {errcode}: {message}")
        self.status = status
        self.errcode = errcode
        self.message = message
        self.retry_after_ms = retry_after_ms

    @property
    def transient(self) -> bool:
        """Worth retrying as it is: rate limited, server trouble or no answer at all."""
        return self.status == 429 or self.status >= 500 or self.status == 0


class MatrixUnavailable(MatrixError):
    """No HTTP answer: connection refused, timeout, DNS."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "M_UNAVAILABLE", message)


def _q(value: str) -> str:
    return quote(value, safe="")


class MatrixClient:
    """One homeserver, one access token. ``transport`` swaps the network for tests
    (``httpx.MockTransport``)."""

    def __init__(
        self, homeserver: str, access_token: str = "", *, transport: httpx.BaseTransport | None = None, timeout: float = 30.0
    ) -> None:
        self.homeserver = homeserver.rstrip("/")
        self.access_token = access_token
        self.timeout = timeout
        # No redirects: a homeserver that redirects API calls is misconfigured, and a
        # redirect must not carry the bearer token somewhere else.
        self._http = httpx.Client(base_url=self.homeserver, transport=transport, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MatrixClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------
    def call(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, timeout: float | None = None,
        auth: bool = True,
    ) -> Any:
        """One request; the decoded JSON answer (an object, or a list for a few endpoints)."""
        headers = {"Authorization": f"Bearer {self.access_token}"} if auth and self.access_token else {}
        try:
            response = self._http.request(
                method, path, json=body, params=params, headers=headers, timeout=timeout if timeout is not None else self.timeout
            )
        except httpx.TransportError as exc:
            raise MatrixUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            data = response.json() if response.content else {}
        except ValueError:
            data = None
        if response.status_code >= 400 or data is None:
            error = data if isinstance(data, dict) else {}
            retry_after = error.get("retry_after_ms")
            if retry_after is None and response.headers.get("Retry-After", "").isdigit():
                retry_after = int(response.headers["Retry-After"]) * 1000
            raise MatrixError(
                response.status_code, str(error.get("errcode") or f"HTTP_{response.status_code}"),
                str(error.get("error") or response.reason_phrase or "unreadable answer"),
                retry_after_ms=int(retry_after) if isinstance(retry_after, int | float) else None,
            )
        return data

    def request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, Any] | None = None, timeout: float | None = None,
        auth: bool = True,
    ) -> dict[str, Any]:
        """Like :meth:`call`, for the endpoints that answer a JSON object."""
        data = self.call(method, path, body=body, params=params, timeout=timeout, auth=auth)
        return data if isinstance(data, dict) else {}

    # -- account ------------------------------------------------------------------------
    def login_password(self, user_id: str, password: str, *, device_name: str = "siyu") -> dict[str, Any]:
        """``POST /login``: answers ``user_id``, ``access_token``, ``device_id``."""
        return self.request("POST", f"{API}/login", auth=False, body={
            "type": "m.login.password", "identifier": {"type": "m.id.user", "user": user_id}, "password": password,
            "initial_device_display_name": device_name,
        })

    def whoami(self) -> dict[str, Any]:
        return self.request("GET", f"{API}/account/whoami")

    # -- sync ---------------------------------------------------------------------------
    def sync(self, since: str | None, *, timeout_ms: int, sync_filter: dict[str, Any] | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"timeout": timeout_ms}
        if since:
            params["since"] = since
        if sync_filter is not None:
            params["filter"] = json.dumps(sync_filter, separators=(",", ":"))
        return self.request("GET", f"{API}/sync", params=params, timeout=self.timeout + timeout_ms / 1000)

    def messages(self, room_id: str, *, from_token: str, to_token: str | None = None, direction: str = "b", limit: int = 100) -> dict[str, Any]:
        params: dict[str, Any] = {"from": from_token, "dir": direction, "limit": limit}
        if to_token:
            params["to"] = to_token
        return self.request("GET", f"{API}/rooms/{_q(room_id)}/messages", params=params)

    # -- rooms --------------------------------------------------------------------------
    def join(self, room_id: str) -> str:
        return str(self.request("POST", f"{API}/rooms/{_q(room_id)}/join", body={})["room_id"])

    def leave(self, room_id: str, reason: str = "") -> None:
        self.request("POST", f"{API}/rooms/{_q(room_id)}/leave", body={"reason": reason} if reason else {})

    def create_room(self, body: dict[str, Any]) -> str:
        return str(self.request("POST", f"{API}/createRoom", body=body)["room_id"])

    def resolve_alias(self, alias: str) -> str | None:
        try:
            return str(self.request("GET", f"{API}/directory/room/{_q(alias)}")["room_id"])
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise

    def room_state(self, room_id: str) -> list[dict[str, Any]]:
        """The room's full current state (the endpoint answers a JSON list)."""
        events = self.call("GET", f"{API}/rooms/{_q(room_id)}/state")
        return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []

    def state_event(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any] | None:
        """The content of one state event, or None when the room has none."""
        try:
            return self.request("GET", f"{API}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}")
        except MatrixError as exc:
            if exc.status == 404:
                return None
            raise

    def put_state(self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = "") -> str:
        return str(self.request("PUT", f"{API}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}", body=content)["event_id"])

    # -- sends (a txn_id makes a retried request the same event) ------------------------
    def send_event(self, room_id: str, event_type: str, content: dict[str, Any], txn_id: str) -> str:
        return str(self.request("PUT", f"{API}/rooms/{_q(room_id)}/send/{_q(event_type)}/{_q(txn_id)}", body=content)["event_id"])

    def redact(self, room_id: str, event_id: str, txn_id: str, reason: str = "") -> str:
        body = {"reason": reason} if reason else {}
        return str(self.request("PUT", f"{API}/rooms/{_q(room_id)}/redact/{_q(event_id)}/{_q(txn_id)}", body=body).get("event_id", ""))

    # -- membership ---------------------------------------------------------------------
    def _membership(self, action: str, room_id: str, user_id: str, reason: str) -> None:
        body = {"user_id": user_id, **({"reason": reason} if reason else {})}
        self.request("POST", f"{API}/rooms/{_q(room_id)}/{action}", body=body)

    def kick(self, room_id: str, user_id: str, reason: str = "") -> None:
        self._membership("kick", room_id, user_id, reason)

    def ban(self, room_id: str, user_id: str, reason: str = "") -> None:
        self._membership("ban", room_id, user_id, reason)

    def invite(self, room_id: str, user_id: str, reason: str = "") -> None:
        self._membership("invite", room_id, user_id, reason)

    def membership_of(self, room_id: str, user_id: str) -> str:
        """``join``, ``leave``, ``ban``, ``invite``... or ``""`` when the user never was in the room."""
        content = self.state_event(room_id, "m.room.member", user_id)
        return str((content or {}).get("membership", ""))
