"""Huey on Redis with a real consumer process: the path a fleet takes (``REDIS_URL`` set,
``siyu worker`` on several machines). Skips only when ``REDIS_URL`` is unset; `make test`
always starts Redis and sets it, so this runs in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from . import queue_probe

REDIS_URL = os.environ.get("REDIS_URL", "")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL: `make test` starts Redis with scripts/services.sh"),
]


def _consumer(queue_name: str, log: Path) -> subprocess.Popen[bytes]:
    # The consumer imports the probe by the same dotted name the test imported it under,
    # from the directory that makes that name importable.
    module = queue_probe.__name__
    import_root = Path(queue_probe.__file__).resolve().parents[module.count(".")]
    env = {**os.environ, "SIYU_QUEUE_PROBE_NAME": queue_name, "PYTHONPATH": str(import_root)}
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "huey.bin.huey_consumer", f"{module}.huey", "--workers", "1", "--worker-type", "thread"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=import_root,
        )


def test_a_consumer_process_runs_a_task_enqueued_on_redis(tmp_path: Path):
    # given a task waiting in Redis before any consumer runs
    name = f"siyu-probe-{uuid.uuid4().hex[:12]}"
    queue, write_receipt = queue_probe.build(name, REDIS_URL)
    receipt = tmp_path / "receipt.txt"
    result = write_receipt(str(receipt), "你好 siyu")
    assert queue.pending_count() == 1
    # when a consumer process starts on the same queue
    log = tmp_path / "consumer.log"
    consumer = _consumer(name, log)
    try:
        value = result.get(blocking=True, timeout=30)
    finally:
        consumer.send_signal(signal.SIGINT)  # huey: SIGINT is the graceful stop
        try:
            consumer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait()
        queue.flush()
    # then the other process ran it and the result came back through Redis
    assert value == "你好 SIYU", log.read_text()
    text, pid = receipt.read_text(encoding="utf-8").splitlines()
    assert (text, int(pid)) == ("你好 siyu", consumer.pid)
    assert consumer.returncode == 0, log.read_text()
