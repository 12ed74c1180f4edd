"""A fake WeCom server for tests: it answers with the recorded fixtures in
``fixtures/api/`` (shaped exactly like the documented JSON) and records every request.

Use it as an httpx transport (``fake.transport()``) or as a real HTTP server on
127.0.0.1 (``with fake.serve() as api_base:``) when the code under test builds its own
client from an account's ``api_base`` — the inbound pipeline, the outbox worker. It never
touches the internet.

The fake keeps WeCom's token rules: ``gettoken`` hands out the current token, and any
other call made with a token that is not current is answered 42001 (expired), so token
refresh is exercised for real (:meth:`FakeWeCom.expire_token`). One-off answers (errors,
rate limits) are queued per path with :meth:`FakeWeCom.script`.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx

from siyu.channels.wecom.crypto import WeComCrypto

__all__ = ["FIXTURES", "FakeWeCom", "RecordedRequest", "api_fixture", "callback_xml", "encrypted_callback"]

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@cache
def _load(name: str) -> str:
    return (FIXTURES / "api" / f"{name}.json").read_text(encoding="utf-8")


def api_fixture(name: str) -> dict[str, Any]:
    """One recorded API exchange: doc, method, path, query, request, response."""
    return dict(json.loads(_load(name)))


def api_fixture_names() -> list[str]:
    return sorted(p.stem for p in (FIXTURES / "api").glob("*.json"))


def callback_xml(name: str) -> str:
    """A documented callback event (decrypted XML) from ``fixtures/callbacks/``."""
    return (FIXTURES / "callbacks" / f"{name}.xml").read_text(encoding="utf-8")


def encrypted_callback(
    crypto: WeComCrypto, plaintext: str, *, timestamp: str, nonce: str, agent_id: str = "1000002"
) -> tuple[dict[str, str], bytes]:
    """What WeCom POSTs for ``plaintext``: the query parameters and the XML envelope."""
    encrypted = crypto.encrypt(plaintext)
    body = (
        f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName>"
        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[{agent_id}]]></AgentID></xml>"
    ).encode()
    params = {"msg_signature": crypto.signature(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    return params, body


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any


class FakeWeCom:
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._routes: dict[tuple[str, str], dict[str, Any]] = {}
        for name in api_fixture_names():
            fixture = api_fixture(name)
            self._routes[(fixture["method"], fixture["path"])] = fixture["response"]
        self._scripted: dict[str, deque[dict[str, Any]]] = {}
        self._token_serial = 1
        self._lock = threading.Lock()

    @property
    def token(self) -> str:
        return f"accesstoken{self._token_serial:06d}"

    def expire_token(self) -> None:
        """WeCom may invalidate a token early; calls with the old one now get 42001."""
        with self._lock:
            self._token_serial += 1

    def script(self, path: str, *responses: dict[str, Any]) -> None:
        """Answer the next calls of ``path`` (e.g. ``/cgi-bin/externalcontact/send_welcome_msg``)
        with these bodies, in order, before falling back to the fixture."""
        with self._lock:
            self._scripted.setdefault(path, deque()).extend(responses)

    def calls(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def respond(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, query, body))
            if path == "/cgi-bin/gettoken":
                return 200, {"errcode": 0, "errmsg": "ok", "access_token": self.token, "expires_in": 7200}
            if query.get("access_token") != self.token:
                return 200, {"errcode": 42001, "errmsg": "access_token expired"}
            scripted = self._scripted.get(path)
            if scripted:
                return 200, scripted.popleft()
            response = self._routes.get((method, path))
        if response is None:
            return 404, {"errcode": 404, "errmsg": f"fake wecom has no fixture for {method} {path}"}
        return 200, response

    # ------------------------------------------------------------ as an httpx transport

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content) if request.content else None
            status, data = self.respond(request.method, request.url.path, dict(request.url.params), body)
            return httpx.Response(status, json=data)

        return httpx.MockTransport(handle)

    # ------------------------------------------------------------ as a loopback HTTP server

    @contextmanager
    def serve(self) -> Iterator[str]:
        """Run on 127.0.0.1 (a free port) and yield the API base URL to configure."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, data = fake.respond(self.command, url.path, dict(parse_qsl(url.query)), json.loads(raw) if raw else None)
                payload = json.dumps(data, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = _answer
            do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="fake-wecom", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/cgi-bin"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
