"""A real Huey consumer is killed (SIGKILL) in the middle of 1,000 outbound sends and
started again: every send is delivered exactly once (the sandbox channel counts
deliveries per idempotency key, like a platform recognising a repeated txnId)."""

import datetime as dt
import signal
import subprocess
import time

import pytest
from django.utils import timezone

from siyu.channels.actions import do_create_channel_account
from siyu.channels.base import Command, CommandKind
from siyu.channels.models import OutboxMessage, OutboxStatus, SandboxDelivery
from siyu.channels.outbox import do_enqueue
from siyu.core.testing import make_workspace, start_consumer, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SENDS = 1000


def test_killed_worker_restarts_and_delivers_each_send_exactly_once(tmp_path):
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    later = timezone.now() + dt.timedelta(hours=1)  # not delivered by this process...
    for i in range(SENDS):
        do_enqueue(account, Command(CommandKind.SEND_MESSAGE, f"batch:{i}", "room", {"to": "group", "text": f"第{i}条"}), not_before=later)
    OutboxMessage.objects.update(next_attempt_at=timezone.now())  # ...but due now for the consumer's startup sweep

    first = start_consumer(tmp_path, SIYU_OUTBOX_LEASE_SECONDS="2", SIYU_WORKERS="2")
    try:
        wait_for(lambda: SandboxDelivery.objects.count() >= 200, 60, "the first 200 deliveries")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    delivered_at_kill = SandboxDelivery.objects.count()
    assert delivered_at_kill < SENDS, "the worker finished before it could be killed: the test proves nothing"
    time.sleep(2.5)  # the dead worker's leases run out

    second = start_consumer(tmp_path, SIYU_OUTBOX_LEASE_SECONDS="2", SIYU_WORKERS="2")
    try:
        wait_for(lambda: OutboxMessage.objects.filter(status=OutboxStatus.SENT).count() == SENDS, 120, "all sends marked sent")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(15)
        except subprocess.TimeoutExpired:
            second.kill()

    assert SandboxDelivery.objects.count() == SENDS
    assert set(SandboxDelivery.objects.values_list("idempotency_key", flat=True)) == {f"batch:{i}" for i in range(SENDS)}
    assert OutboxMessage.objects.exclude(status=OutboxStatus.SENT).count() == 0
