"""``GET /healthz``: 200 with the database and queue status when both answer, 503 when one
does not. The in-process test sees the test settings (Huey in immediate mode); the others
start a fresh process with the environment an operator sets, so they see the real switch
of Huey to Redis by ``REDIS_URL``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("REDIS_URL", "")

PROBE = """
import json, django
django.setup()
from django.test import Client
response = Client().get("/healthz")
print(json.dumps({"status_code": response.status_code, "body": response.json()}))
"""


def _healthz_in_fresh_process(home: Path, redis_url: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "SIYU_HUEY_IMMEDIATE"}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "SIYU_HOME": str(home), "REDIS_URL": redis_url})
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.django_db
def test_healthz_reports_database_and_queue():
    # given the test settings (Huey immediate, in memory)
    # when
    response = Client().get("/healthz")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "database": {"ok": True, "engine": connection.vendor},
        "queue": {"ok": True, "backend": "MemoryHuey", "pending": 0, "immediate": True},
    }


@pytest.mark.slow
@pytest.mark.skipif(not REDIS_URL, reason="needs REDIS_URL: `make test` starts Redis with scripts/services.sh")
def test_healthz_reports_the_redis_queue_when_redis_url_is_set(tmp_path: Path):
    # given an operator's environment: REDIS_URL set, DATABASE_URL as the run has it
    # when
    answer = _healthz_in_fresh_process(tmp_path, REDIS_URL)
    # then
    body = answer["body"]
    assert answer["status_code"] == 200
    assert (body["status"], body["database"]) == ("ok", {"ok": True, "engine": connection.vendor})
    assert (body["queue"]["ok"], body["queue"]["backend"], body["queue"]["immediate"]) == (True, "PriorityRedisHuey", False)
    assert isinstance(body["queue"]["pending"], int)


@pytest.mark.slow
def test_healthz_answers_503_when_redis_is_unreachable(tmp_path: Path):
    # given REDIS_URL pointing at a port nothing listens on
    # when
    answer = _healthz_in_fresh_process(tmp_path, f"redis://127.0.0.1:{_closed_port()}/0")
    # then
    body = answer["body"]
    assert answer["status_code"] == 503
    assert (body["status"], body["database"]["ok"]) == ("degraded", True)
    assert (body["queue"]["ok"], body["queue"]["backend"]) == (False, "PriorityRedisHuey")
    assert "Connection refused" in body["queue"]["error"] or "Error 111" in body["queue"]["error"]
