"""Running siyu: first-start set-up and the supervisor behind ``siyu up``.

``siyu up`` is the one-machine deployment: the web server (gunicorn) and the Huey
consumer (which also runs the periodic tasks, i.e. the scheduler) as two children in
one process group of their own, so that a terminal's Ctrl-C reaches the supervisor
only and the supervisor decides how each child stops.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

#: How long children get to finish in-flight requests and tasks before being killed.
GRACE_SECONDS = 25.0
POLL_SECONDS = 0.2

# The signal that means "finish what you are doing, then exit" differs: gunicorn treats
# SIGINT as a quick (non-graceful) shutdown, the Huey consumer treats SIGTERM as an
# immediate one. So a stop request becomes SIGTERM for the web server, SIGINT for the worker.
GRACEFUL = {"web": signal.SIGTERM, "worker": signal.SIGINT}


def run_init() -> dict[str, Any]:
    """Create the data directories and bring the database schema up to date."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder
    from huey.contrib.djhuey import HUEY

    home = settings.SIYU_HOME
    # Keys are created (mode 0700) by the settings themselves; media is for uploads.
    (home / "media").mkdir(parents=True, exist_ok=True)
    before = len(MigrationRecorder(connection).applied_migrations())
    call_command("migrate", interactive=False, verbosity=0, stdout=io.StringIO())
    after = len(MigrationRecorder(connection).applied_migrations())
    name = settings.DATABASES["default"]["NAME"]
    return {
        "home": str(home),
        "database": {"engine": connection.vendor, "name": str(name) if connection.vendor == "sqlite" else name},
        "applied_migrations": after - before,
        "queue": type(HUEY).__name__,
    }


def demo_login() -> dict[str, str] | None:
    """The demo workspace's login, when the demo module provides one and the workspace
    has been seeded (``siyu demo``)."""
    try:
        from siyu.demo import seed
    except ImportError:
        return None
    email = getattr(seed, "DEMO_OWNER_EMAIL", None)
    password = getattr(seed, "DEMO_PASSWORD", None)
    slug = getattr(seed, "DEMO_SLUG", "demo")
    if not (email and password):
        return None
    from siyu.core.models import Workspace

    if not Workspace.objects.filter(slug=slug).exists():
        return None
    return {"workspace": slug, "email": str(email), "password": str(password)}


def child_env() -> dict[str, str]:
    from django.conf import settings

    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")
    # Absolute, so that both children use this data directory whatever their cwd.
    env["SIYU_HOME"] = str(settings.SIYU_HOME)
    return env


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def web_command(host: str, port: int, workers: int, threads: int = 4) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "config.wsgi:application",
        "--bind", bind_address(host, port),
        "--workers", str(workers),
        "--worker-class", "gthread",
        "--threads", str(threads),
        "--graceful-timeout", str(int(GRACE_SECONDS) - 5),
        "--access-logfile", "-",
    ]


def worker_command() -> list[str]:
    return [sys.executable, "-m", "django", "run_huey"]


def matrix_command() -> list[str]:
    return [sys.executable, "-m", "siyu.cli", "channels", "run-matrix"]


def has_matrix_accounts() -> bool:
    """The Matrix bot listener runs beside the web server when any workspace has a bot."""
    from siyu.channels.models import ChannelAccount, ChannelKind

    return ChannelAccount.objects.filter(kind=ChannelKind.MATRIX, is_active=True).exists()


def _die_with_supervisor() -> None:
    """Runs in the child before exec: on Linux, get SIGTERM when the supervisor dies, even
    by SIGKILL, so a killed ``siyu up`` never leaves a server holding the port."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def supervise(commands: Sequence[tuple[str, list[str]]], env: dict[str, str], log: Callable[[str], None]) -> int:
    """Start the commands in one new process group and wait. A SIGINT/SIGTERM to the
    supervisor stops every child gracefully (a second one kills them); a child that
    exits on its own stops the others. Returns 0 after a requested stop, else non-zero."""
    requests: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        requests.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    try:
        for name, argv in commands:
            group = children[0].process.pid if children else 0
            try:
                # Children log to stderr: stdout is the supervisor's report (one JSON line with --json).
                process = subprocess.Popen(argv, env=env, process_group=group, stdout=2, preexec_fn=_die_with_supervisor)
            except (OSError, subprocess.SubprocessError) as exc:
                log(f"siyu: cannot start {name}: {exc}")
                _stop(children, log)
                return 1
            children.append(Child(name, process))
            log(f"siyu: {name} started (pid {process.pid})")
        exit_code = 0
        while not requests:
            dead = next((c for c in children if c.process.poll() is not None), None)
            if dead is not None:
                log(f"siyu: {dead.name} exited with code {dead.process.returncode}; stopping the rest")
                # A child killed by a signal has a negative code: report plain failure.
                exit_code = dead.process.returncode if dead.process.returncode > 0 else 1
                break
            time.sleep(POLL_SECONDS)
        if requests:
            log(f"siyu: {signal.Signals(requests[0]).name} received; stopping")
        _stop(children, log, requests)
        return exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stop(children: list[Child], log: Callable[[str], None], requests: list[int] | None = None) -> None:
    """Ask every child to stop gracefully; kill the whole group after the grace period or
    on a further stop request."""
    if not children:
        return
    seen = len(requests) if requests is not None else 0
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(GRACEFUL.get(child.name, signal.SIGTERM))
    deadline = time.monotonic() + GRACE_SECONDS
    while any(c.process.poll() is None for c in children):
        impatient = requests is not None and len(requests) > seen
        if time.monotonic() > deadline or impatient:
            log("siyu: killing what is left")
            # The group, not just the children: gunicorn's own workers are in it too.
            try:
                os.killpg(children[0].process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        time.sleep(POLL_SECONDS)
    for child in children:
        child.process.wait()
