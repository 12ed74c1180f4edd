"""Live code benchmark: drive the public ``/c/<code>`` endpoint of a real server.

    python bench/livecode.py --scans 20000 --concurrency 64 --json [--database-url URL]

Starts gunicorn (``config.wsgi:application``) on 127.0.0.1 with a fresh SIYU_HOME
(SQLite by default, or the given PostgreSQL database), migrates, seeds one group code
(capacity 200, groups opened on the sandbox channel as the window runs low) and one staff
code (4 staff with daily caps), then sends the scans from a pool of HTTP clients, half
to each code. Prints scans, seconds, scans_per_s, p50_ms, p99_ms, max_group_size,
capacity and cap_violations (groups routed past their capacity + staff routed past a
daily cap; must be 0). A 503 from the staff code once every cap is reached is expected
and counted as ``exhausted``, not as an error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CAPACITY = 200
STAFF_CAPS = (1500, 1500, 1000, 1000)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _django(env: dict[str, str], step: str, *args: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, step, *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{step} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def seed() -> dict[str, Any]:
    _setup()
    import secrets

    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from siyu.accounts.actions import do_create_staff, do_create_workspace
    from siyu.acquisition.actions import do_add_code_group, do_add_code_staff, do_create_channel, do_create_live_code
    from siyu.channels.actions import do_create_channel_account
    from siyu.communities.actions import do_create_group

    ws = do_create_workspace(slug=f"bench-{secrets.token_hex(3)}", name="livecode bench")
    account = do_create_channel_account(ws, None, kind="sandbox", name="bench")
    channel = do_create_channel(ws, None, key="parcel", name="包裹卡", kind="parcel_card", cost_model="per_add", cost_per_add="1.00")
    group_code = do_create_live_code(ws, None, channel=channel, name="进群", kind="group", channel_account=account, group_capacity=CAPACITY)
    do_add_code_group(group_code, None, group=do_create_group(ws, None, name="种子群", channel_account=account, external_id="seed"))
    staff_code = do_create_live_code(ws, None, channel=channel, name="加好友", kind="staff")
    for i, cap in enumerate(STAFF_CAPS):
        staff = do_create_staff(ws, None, email=f"bench{i}-{ws.slug}@example.com", display_name=f"导购{i}", role="agent")
        do_add_code_staff(staff_code, None, staff=staff, daily_cap=cap, weight=1 + i % 2)
    return {"group_code": group_code.code, "staff_code": staff_code.code}


def verify(group_code: str, staff_code: str) -> dict[str, Any]:
    _setup()
    from django.db.models import Count, F, Max

    from siyu.acquisition.models import LiveCodeGroup, LiveCodeStaff, Scan

    per_group = Scan.objects.filter(live_code__code=group_code, group__isnull=False).values("group").annotate(n=Count("id"))
    max_routed = max((row["n"] for row in per_group), default=0)
    slots = LiveCodeGroup.objects.filter(live_code__code=group_code)
    over_seats = slots.filter(seats_taken__gt=F("capacity")).count()
    over_routed = sum(1 for row in per_group if row["n"] > CAPACITY)
    over_staff = LiveCodeStaff.objects.filter(live_code__code=staff_code, daily_cap__gt=0, day_count__gt=F("daily_cap")).count()
    staff_routed = Scan.objects.filter(live_code__code=staff_code, staff__isnull=False).count()
    return {
        "max_group_size": max(max_routed, slots.aggregate(m=Max("seats_taken"))["m"] or 0),
        "groups": slots.count(),
        "staff_routed": staff_routed,
        "staff_cap_total": sum(STAFF_CAPS),
        "cap_violations": over_seats + over_routed + over_staff,
    }


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited early")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status in (200, 503):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer in time")


def run(scans: int = 20000, concurrency: int = 64, database_url: str = "", workers: int = 0, time_limit: float = 900) -> dict[str, Any]:
    """Run the benchmark and return its numbers (see the module docstring)."""
    home = tempfile.mkdtemp(prefix="siyu-bench-livecode-")
    env = {**os.environ, "SIYU_HOME": home, "DJANGO_SETTINGS_MODULE": "config.settings", "SIYU_LOG_LEVEL": "WARNING"}
    env.pop("SIYU_HUEY_IMMEDIATE", None)
    env.pop("SIYU_TESTING", None)
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env.pop("DATABASE_URL", None)
    codes = _django(env, "_seed")
    port = _free_port()
    # SQLite has one writer: one process whose threads take turns (see _write_gate in
    # siyu.acquisition.actions) beats processes fighting over the file lock.
    workers = workers or (min(8, os.cpu_count() or 2) if database_url else 1)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen(
        [str(gunicorn), "config.wsgi:application", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "gthread",
         "--threads", "16", "--log-level", "warning", "--timeout", "60"],
        # A file, not a pipe: nobody reads a pipe while the scans run, and a full pipe
        # would block the server on its next log line (every 503 is logged).
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(Path(home) / "gunicorn.log").open("wb"),
    )
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    local = threading.local()
    deadline = time.monotonic() + time_limit
    try:
        _wait_ready(port, proc)

        def one(i: int) -> None:
            if time.monotonic() > deadline:
                return
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            path = f"/c/{codes['group_code'] if i % 2 == 0 else codes['staff_code']}"
            started = time.perf_counter()
            try:
                local.conn.request("GET", path, headers={"User-Agent": "siyu-bench/1"})
                response = local.conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                local.conn.close()
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = 0
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(scans)))
        seconds = time.perf_counter() - started
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    checked = _django(env, "_verify", codes["group_code"], codes["staff_code"])
    ordered = sorted(latencies)
    done = len(ordered)
    return {
        "scans": done,
        "requested": scans,
        # the run stops at --time-limit; fewer scans than requested means it did
        "time_limited": done < scans,
        "seconds": round(seconds, 3),
        "scans_per_s": round(done / seconds, 1) if seconds else 0.0,
        "p50_ms": round(statistics.median(ordered), 2) if ordered else None,
        "p99_ms": round(ordered[min(done - 1, int(done * 0.99))], 2) if ordered else None,
        "max_group_size": checked["max_group_size"],
        "capacity": CAPACITY,
        "cap_violations": checked["cap_violations"],
        "groups_used": checked["groups"],
        "staff_routed": checked["staff_routed"],
        "staff_cap_total": checked["staff_cap_total"],
        "status_counts": {str(k): v for k, v in sorted(statuses.items())},
        "errors": statuses.get(0, 0) + statuses.get(500, 0),
        "concurrency": concurrency,
        "gunicorn_workers": workers,
        "database": "postgresql" if database_url else "sqlite",
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_seed":
        print(json.dumps(seed()))
        return 0
    if argv and argv[0] == "_verify":
        print(json.dumps(verify(argv[1], argv[2])))
        return 0
    # SIGTERM (timeout, kill) unwinds like Ctrl-C so that the server is stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=900)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.scans, args.concurrency, args.database_url, args.workers, args.time_limit)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result["cap_violations"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
