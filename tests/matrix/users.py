"""The people in the end-to-end tests talk to Synapse with plain httpx, independently
of siyu's own Matrix client, so that a bug in siyu's client cannot hide itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from tests.matrix.synapse import MatrixUser

T = TypeVar("T")
API = "/_matrix/client/v3"


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll ``probe`` until it answers something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _q(value: str) -> str:
    return quote(value, safe="")


class UserClient:
    def __init__(self, base_url: str, user: MatrixUser) -> None:
        self.user = user
        self.user_id = user.user_id
        self.http = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {user.access_token}"}, timeout=30)

    def close(self) -> None:
        self.http.close()

    def _ok(self, response: httpx.Response) -> Any:
        assert response.status_code == 200, f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        return response.json()

    def set_displayname(self, name: str) -> None:
        self._ok(self.http.put(f"{API}/profile/{_q(self.user_id)}/displayname", json={"displayname": name}))

    def create_room(self, name: str, **body: Any) -> str:
        return str(self._ok(self.http.post(f"{API}/createRoom", json={"name": name, "preset": "private_chat", **body}))["room_id"])

    def invite(self, room_id: str, user_id: str) -> None:
        self._ok(self.http.post(f"{API}/rooms/{_q(room_id)}/invite", json={"user_id": user_id}))

    def join(self, room_id: str) -> None:
        self._ok(self.http.post(f"{API}/rooms/{_q(room_id)}/join", json={}))

    def send_text(self, room_id: str, text: str) -> str:
        path = f"{API}/rooms/{_q(room_id)}/send/m.room.message/{uuid.uuid4().hex}"
        return str(self._ok(self.http.put(path, json={"msgtype": "m.text", "body": text}))["event_id"])

    def state(self, room_id: str) -> list[dict[str, Any]]:
        return list(self._ok(self.http.get(f"{API}/rooms/{_q(room_id)}/state")))

    def state_content(self, room_id: str, event_type: str, state_key: str = "") -> dict[str, Any]:
        return dict(self._ok(self.http.get(f"{API}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}")))

    def put_state(self, room_id: str, event_type: str, content: dict[str, Any], state_key: str = "") -> None:
        self._ok(self.http.put(f"{API}/rooms/{_q(room_id)}/state/{_q(event_type)}/{_q(state_key)}", json=content))

    def grant_power(self, room_id: str, user_id: str, level: int) -> None:
        levels = self.state_content(room_id, "m.room.power_levels")
        levels.setdefault("users", {})[user_id] = level
        self.put_state(room_id, "m.room.power_levels", levels)

    def membership(self, room_id: str, user_id: str) -> dict[str, Any] | None:
        """The member's current ``m.room.member`` state event (with its sender)."""
        for event in self.state(room_id):
            if event.get("type") == "m.room.member" and event.get("state_key") == user_id:
                return event
        return None

    def messages(self, room_id: str) -> list[dict[str, Any]]:
        """The room's latest timeline events (newest first) as this user may see them."""
        body = self._ok(self.http.get(f"{API}/rooms/{_q(room_id)}/messages", params={"dir": "b", "limit": 100}))
        return list(body.get("chunk") or [])

    def texts_from(self, room_id: str, sender: str) -> list[dict[str, Any]]:
        return [e for e in self.messages(room_id) if e.get("type") == "m.room.message" and e.get("sender") == sender]

    def event(self, room_id: str, event_id: str) -> dict[str, Any]:
        return dict(self._ok(self.http.get(f"{API}/rooms/{_q(room_id)}/event/{_q(event_id)}")))
