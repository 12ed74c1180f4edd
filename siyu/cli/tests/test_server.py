"""``siyu init`` and ``siyu up`` as real processes on a fresh SIYU_HOME."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

STARTUP_SECONDS = 90


def siyu_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SIYU_HUEY_IMMEDIATE", "DATABASE_URL", "REDIS_URL")}
    env.update(SIYU_HOME=str(home), DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
    return env


def siyu(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "siyu.cli.main", *args], env=siyu_env(home), capture_output=True, text=True, timeout=120, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int, process: subprocess.Popen[bytes]) -> dict:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        assert process.poll() is None, f"siyu up exited early with {process.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return json.loads(response.read())
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"/healthz did not answer 200 within {STARTUP_SECONDS}s")


def child_pids(stderr_path: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"siyu: (\w+) started \(pid (\d+)\)", stderr_path.read_text())}


def gone(pid: int, within: float = 10) -> bool:
    """The process has exited (a zombie waiting for a reaper that is not ours counts)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            status = Path(f"/proc/{pid}/status")
            if status.exists() and re.search(r"^State:\s+Z", status.read_text(), re.M):
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.1)
    return False


def test_init_creates_the_database_once(tmp_path: Path):
    first = siyu(tmp_path, "init", "--json")
    second = siyu(tmp_path, "init", "--json")

    assert first.returncode == 0, first.stderr
    info, again = json.loads(first.stdout), json.loads(second.stdout)
    assert info["home"] == str(tmp_path)
    assert info["database"] == {"engine": "sqlite", "name": str(tmp_path / "siyu.sqlite3")}
    assert info["queue"] == "SqliteHuey"
    assert info["applied_migrations"] > 0 and again["applied_migrations"] == 0
    assert (tmp_path / "siyu.sqlite3").exists() and (tmp_path / "media").is_dir()


def start_up(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, Path, Path]:
    port = free_port()
    out, err = tmp_path / "up.out", tmp_path / "up.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "siyu.cli.main", "up", "--port", str(port), "--workers", "1", "--json"],
            env=siyu_env(tmp_path / "home"), stdout=stdout, stderr=stderr,
        )
    return process, port, out, err


@pytest.mark.slow
def test_up_serves_health_and_stops_cleanly_on_sigterm(tmp_path: Path):
    # given a home where the demo was seeded, and siyu up on it
    seeded = siyu(tmp_path / "home", "demo", "--contacts", "30", "--json")
    assert seeded.returncode == 0, seeded.stderr
    demo = json.loads(seeded.stdout)
    process, port, out, err = start_up(tmp_path)
    try:
        # when it is healthy
        health = wait_healthy(port, process)

        # then the web server answers with the real queue behind it, and the console URL was printed
        assert health["status"] == "ok"
        assert (health["queue"]["backend"], health["queue"]["immediate"]) == ("SqliteHuey", False)
        # stdout holds the report only (one JSON line); the children log to stderr
        [line] = out.read_text().splitlines()
        banner = json.loads(line)
        assert banner["url"] == f"http://127.0.0.1:{port}/console/"
        assert banner["demo"] == {"workspace": demo["workspace"], "email": demo["owner_email"], "password": demo["password"]}
        pids = child_pids(err)
        assert set(pids) == {"web", "worker"}
        # both children share one process group of their own
        assert os.getpgid(pids["web"]) == os.getpgid(pids["worker"]) == pids["web"] != os.getpgid(process.pid)

        # when it is asked to stop
        process.send_signal(signal.SIGTERM)

        # then it stops its children and exits 0
        assert process.wait(timeout=60) == 0
        assert gone(pids["web"]) and gone(pids["worker"])
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_up_exits_non_zero_when_a_child_dies(tmp_path: Path):
    process, port, _out, err = start_up(tmp_path)
    try:
        wait_healthy(port, process)
        pids = child_pids(err)

        # when the worker dies
        os.kill(pids["worker"], signal.SIGKILL)

        # then siyu up stops the web server too and reports the failure
        assert process.wait(timeout=60) != 0
        assert gone(pids["web"])
        assert "worker exited with code -9; stopping the rest" in err.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_children_do_not_outlive_a_killed_supervisor(tmp_path: Path):
    process, port, _out, err = start_up(tmp_path)
    try:
        wait_healthy(port, process)
        pids = child_pids(err)

        # when the supervisor itself is killed (no chance to stop its children)
        process.kill()
        process.wait()

        # then the children go too: nothing keeps holding the port
        assert gone(pids["web"], within=30) and gone(pids["worker"], within=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
