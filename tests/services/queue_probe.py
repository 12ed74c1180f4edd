"""A Huey application on Redis for test_redis_queue.py.

The test enqueues from its own process; a real ``huey_consumer`` process imports this
module by its dotted name and runs the task. Both build the queue with :func:`build`, so
the task is registered under the same name on both sides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huey import RedisHuey


def _write_receipt(path: str, text: str) -> str:
    Path(path).write_text(f"{text}\n{os.getpid()}\n", encoding="utf-8")
    return text.upper()


def build(name: str, url: str) -> tuple[RedisHuey, Any]:
    queue = RedisHuey(name, url=url)
    return queue, queue.task(name="write_receipt")(_write_receipt)


# What `huey_consumer <this module>.huey` runs; the test passes its queue name in the environment.
huey, write_receipt = build(
    os.environ.get("SIYU_QUEUE_PROBE_NAME", "siyu-queue-probe"), os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
)
