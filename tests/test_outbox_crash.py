"""A real Huey consumer is killed (SIGKILL) in the middle of 1,000 outbound sends and
started again: every send is delivered exactly once (the sandbox channel counts
deliveries per idempotency key, like a platform recognising a repeated txnId)."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from siyu.channels.actions import do_create_channel_account
from siyu.channels.base import Command, CommandKind
from siyu.channels.models import OutboxMessage, OutboxStatus, SandboxDelivery
from siyu.channels.outbox import do_enqueue
from siyu.core.testing import make_workspace

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent
SENDS = 1000


def _consumer(huey_home: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SIYU_SQLITE_PATH": str(connection.settings_dict["NAME"]),
        "SIYU_HOME": str(huey_home),
        "SIYU_OUTBOX_LEASE_SECONDS": "2",
        "SIYU_WORKERS": "2",
    }
    env.pop("SIYU_HUEY_IMMEDIATE", None)
    env.pop("DATABASE_URL", None)
    # the PII key must match the test process's, which lives in its SIYU_HOME
    env["SIYU_PII_KEY"] = __import__("django.conf").conf.settings.SIYU_PII_KEY
    log = open(huey_home / "consumer.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "django", "run_huey"], cwd=ROOT, env=env, stdout=log, stderr=log)


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the consumer subprocess is pointed at the SQLite test file")
def test_killed_worker_restarts_and_delivers_each_send_exactly_once(tmp_path):
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    later = timezone.now() + dt.timedelta(hours=1)  # not delivered by this process...
    for i in range(SENDS):
        do_enqueue(account, Command(CommandKind.SEND_MESSAGE, f"batch:{i}", "room", {"to": "group", "text": f"第{i}条"}), not_before=later)
    OutboxMessage.objects.update(next_attempt_at=timezone.now())  # ...but due now for the consumer's startup sweep

    first = _consumer(tmp_path)
    try:
        _wait_for(lambda: SandboxDelivery.objects.count() >= 200, 60, "the first 200 deliveries")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    delivered_at_kill = SandboxDelivery.objects.count()
    assert delivered_at_kill < SENDS, "the worker finished before it could be killed: the test proves nothing"
    time.sleep(2.5)  # the dead worker's leases run out

    second = _consumer(tmp_path)
    try:
        _wait_for(lambda: OutboxMessage.objects.filter(status=OutboxStatus.SENT).count() == SENDS, 120, "all sends marked sent")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(15)
        except subprocess.TimeoutExpired:
            second.kill()

    assert SandboxDelivery.objects.count() == SENDS
    assert set(SandboxDelivery.objects.values_list("idempotency_key", flat=True)) == {f"batch:{i}" for i in range(SENDS)}
    assert OutboxMessage.objects.exclude(status=OutboxStatus.SENT).count() == 0
