"""A real Synapse homeserver on loopback for the end-to-end tests: SQLite, one client
listener on 127.0.0.1, no federation, registration only through the shared-secret admin
API. Synapse lives in its own virtualenv (``scripts/synapse.sh`` makes ``.venv-synapse``);
it is started as a subprocess and never imported into the app's interpreter."""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[2]
SERVER_NAME = "localhost"


def find_synapse_python() -> Path | None:
    """The interpreter of a Synapse install: ``SIYU_SYNAPSE_PYTHON``, then the project's
    ``.venv-synapse``, then the developer's scratch install in /tmp/synapse-venv."""
    override = os.environ.get("SIYU_SYNAPSE_PYTHON")
    if override:
        return Path(override)
    for candidate in (ROOT / ".venv-synapse" / "bin" / "python", Path("/tmp/synapse-venv/bin/python")):
        if candidate.exists() and _has_synapse(candidate):
            return candidate
    return None


def _has_synapse(python: Path) -> bool:
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; m.version('matrix-synapse')"],
        capture_output=True, timeout=30, check=False,
    )
    return probe.returncode == 0


def _die_with_parent() -> None:
    """Runs in the child before exec: a test run killed outright (no teardown) must not
    leave a homeserver behind."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class MatrixUser:
    user_id: str
    access_token: str
    device_id: str
    password: str


class SynapseError(RuntimeError):
    pass


class SynapseServer:
    """One Synapse process in ``workdir``. ``start()`` returns once the client API
    answers; ``stop()`` terminates it (and kills it if it will not go)."""

    def __init__(self, python: Path, workdir: Path) -> None:
        self.python = python
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.shared_secret = secrets.token_hex(32)
        self.log_path = workdir / "synapse.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._out: IO[bytes] | None = None

    # -- configuration ----------------------------------------------------------------
    def _generate(self) -> Path:
        generated = self.workdir / "homeserver.yaml"
        subprocess.run(
            [str(self.python), "-m", "synapse.app.homeserver", "--server-name", SERVER_NAME, "--config-path", str(generated),
             "--data-directory", str(self.workdir), "--generate-config", "--report-stats=no"],
            cwd=self.workdir, check=True, capture_output=True, timeout=120,
        )
        return generated

    def _overrides(self) -> Path:
        """Synapse merges the config files it is given, later keys winning, so the test
        settings go in a second file (JSON is YAML) instead of editing the generated one."""
        fast = {"per_second": 1000, "burst_count": 1000}
        log_config = self.workdir / "log.json"
        log_config.write_text(json.dumps({
            "version": 1,
            "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "plain", "filename": str(self.log_path)}},
            "root": {"level": "WARNING", "handlers": ["file"]},
            "disable_existing_loggers": False,
        }))
        overrides = {
            "server_name": SERVER_NAME,
            "public_baseurl": self.base_url + "/",
            "pid_file": str(self.workdir / "homeserver.pid"),
            "listeners": [{
                "port": self.port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False, "x_forwarded": False,
                # client API only: no federation listener
                "resources": [{"names": ["client"], "compress": False}],
            }],
            "database": {"name": "sqlite3", "args": {"database": str(self.workdir / "homeserver.db")}},
            "log_config": str(log_config),
            "media_store_path": str(self.workdir / "media_store"),
            "enable_registration": False,
            "registration_shared_secret": self.shared_secret,
            "report_stats": False,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "presence": {"enabled": False},
            "federation_domain_whitelist": [],
            "url_preview_enabled": False,
            "bcrypt_rounds": 4,  # test passwords: hashing them slowly buys nothing here
            "rc_message": fast,
            "rc_registration": fast,
            "rc_login": {"address": fast, "account": fast, "failed_attempts": fast},
            "rc_joins": {"local": fast, "remote": fast},
            "rc_joins_per_room": fast,
            "rc_invites": {"per_room": fast, "per_user": fast, "per_issuer": fast},
            "rc_admin_redaction": fast,
            "rc_room_creation": fast,
            "rc_3pid_validation": fast,
            "rc_presence": {"per_user": fast},
        }
        path = self.workdir / "overrides.yaml"
        path.write_text(json.dumps(overrides, indent=2))
        return path

    # -- lifecycle --------------------------------------------------------------------
    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        generated = self._generate()
        overrides = self._overrides()
        # the server's own output stays in the work directory for a failing test to show
        self._out = log = open(self.workdir / "synapse.out", "wb")
        self.process = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "-c", str(generated), "-c", str(overrides)],
            cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SynapseError(f"synapse exited with {self.process.returncode} while starting:\n{self.output_tail()}")
            try:
                if httpx.get(f"{self.base_url}/_matrix/client/versions", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SynapseError(f"synapse did not answer on {self.base_url} within {timeout:.0f}s:\n{self.output_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        if self._out is not None:
            self._out.close()
            self._out = None

    def output_tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.workdir / "synapse.out", self.log_path):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    # -- users ------------------------------------------------------------------------
    def register(self, username: str, *, admin: bool = False) -> MatrixUser:
        """Create a user through ``/_synapse/admin/v1/register`` (HMAC of the shared
        secret over nonce, user, password and admin flag) and return its login."""
        url = f"{self.base_url}/_synapse/admin/v1/register"
        nonce = httpx.get(url, timeout=10).json()["nonce"]
        password = secrets.token_urlsafe(16)
        mac = hmac.new(self.shared_secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), username.encode(), password.encode(), b"admin" if admin else b"notadmin"]))
        response = httpx.post(url, json={
            "nonce": nonce, "username": username, "password": password, "admin": admin, "mac": mac.hexdigest(),
        }, timeout=30)
        if response.status_code != 200:
            raise SynapseError(f"register {username}: {response.status_code} {response.text}")
        body = response.json()
        return MatrixUser(user_id=body["user_id"], access_token=body["access_token"], device_id=body["device_id"], password=password)
