"""A journey run survives a worker restart mid-wait and continues exactly once: a real
Huey consumer sends the first message and is killed (SIGKILL) while the runs wait; a
second consumer wakes them and each contact gets the second message exactly once."""

import datetime as dt
import signal
import subprocess
import time

import pytest
from django.utils import timezone

from siyu.channels.actions import do_create_channel_account
from siyu.channels.models import SandboxDelivery
from siyu.contacts.actions import do_add_identity
from siyu.core.testing import make_contact, make_workspace, start_consumer, wait_for
from siyu.journeys.actions import do_enrol_contact, do_publish_journey, do_save_journey
from siyu.journeys.models import JourneyRun, JourneyStepLog, RunState

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CONTACTS = 20
WAIT_SECONDS = 6

JOURNEY = f"""
name: 重启测试
trigger: {{kind: manual}}
steps:
  - {{id: hello, type: send, message_class: service, content: 第一条, next: pause}}
  - {{id: pause, type: wait, duration: {WAIT_SECONDS}s, next: again}}
  - {{id: again, type: send, message_class: service, content: 第二条}}
"""


def _texts(text: str) -> int:
    return sum(1 for p in SandboxDelivery.objects.values_list("payload", flat=True) if p.get("text") == text)


def test_a_run_survives_a_worker_restart_mid_wait_and_continues_exactly_once(tmp_path):
    # given a published journey (message, 6 s wait, message) and 20 contacts on the sandbox channel
    ws = make_workspace()
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    journey = do_save_journey(ws, None, JOURNEY)
    do_publish_journey(journey, None)
    journey.refresh_from_db()
    later = timezone.now() + dt.timedelta(hours=1)  # not started by this (immediate-mode) process...
    for i in range(CONTACTS):
        contact = make_contact(ws, f"客户{i}")
        do_add_identity(contact, None, account=account, external_id=f"ext-{i}")
        do_enrol_contact(journey, contact, trigger_key=f"manual:{i}", start_at=later, run_now=False)
    JourneyRun.objects.update(wake_at=timezone.now())  # ...but due for the consumer's startup sweep

    # when a real consumer starts them and is killed while they wait
    first = start_consumer(tmp_path, SIYU_JOURNEY_LEASE_SECONDS="2", SIYU_OUTBOX_LEASE_SECONDS="2", SIYU_WORKERS="2")
    try:
        wait_for(lambda: JourneyRun.objects.filter(state=RunState.WAITING).count() == CONTACTS and _texts("第一条") == CONTACTS,
                  60, "every run sent its first message and waits")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    assert _texts("第二条") == 0, "the wait ended before the worker was killed: the test proves nothing"
    assert JourneyRun.objects.filter(state=RunState.WAITING, wake_at__gt=timezone.now()).count() == CONTACTS
    time.sleep(WAIT_SECONDS + 2.5)  # the waits end while no worker runs; any lease runs out

    # and a second consumer starts
    second = start_consumer(tmp_path, SIYU_JOURNEY_LEASE_SECONDS="2", SIYU_OUTBOX_LEASE_SECONDS="2", SIYU_WORKERS="2")
    try:
        wait_for(lambda: JourneyRun.objects.filter(state=RunState.COMPLETED).count() == CONTACTS and _texts("第二条") == CONTACTS,
                  90, "every run completed")
        time.sleep(1.5)  # the first consumer's delayed wake-ups also fire now: they must find nothing to do
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(15)
        except subprocess.TimeoutExpired:
            second.kill()

    # then each contact got each message exactly once and each step ran once
    per_target: dict[str, list[str]] = {}
    for target, payload in SandboxDelivery.objects.order_by("id").values_list("target", "payload"):
        per_target.setdefault(target, []).append(payload["text"])
    assert per_target == {f"ext-{i}": ["第一条", "第二条"] for i in range(CONTACTS)}
    assert set(JourneyStepLog.objects.values_list("step_id", "outcome")) == {
        ("again", "sent"), ("hello", "sent"), ("pause", "waited"), ("pause", "waiting"),
    }
    assert JourneyStepLog.objects.count() == 4 * CONTACTS
