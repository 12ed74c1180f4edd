"""The runner: steps execute once, waits are rows, branches follow conditions and events,
runs keep their version, re-entry rules hold."""

import datetime as dt

import pytest
from django.utils import timezone

from siyu.channels.models import OutboxMessage
from siyu.contacts.actions import do_record_event, do_tag_contacts
from siyu.core.testing import make_tag
from siyu.journeys import engine
from siyu.journeys.actions import do_enrol_contact, do_exit_run, do_publish_journey, do_save_journey
from siyu.journeys.models import JourneyRun, JourneyStepLog, RunState
from siyu.journeys.queries import describe_run, step_counts
from siyu.journeys.triggers import on_contact_events
from siyu.outreach.actions import do_send_due_deliveries
from siyu.outreach.models import Delivery

pytestmark = pytest.mark.django_db

TWO_MESSAGES = """
name: 两条
trigger: {kind: manual}
steps:
  - {id: hello, type: send, message_class: service, content: "你好 {name}", next: pause}
  - {id: pause, type: wait, duration: 1d, next: again}
  - {id: again, type: send, message_class: service, content: "第二条"}
"""


def enrolled(result):
    run, why = result
    assert run is not None, why
    return run


def tick(at):
    """The minute sweep at ``at``: due runs advance, then due deliveries go out."""
    counts = engine.run_due(at)
    do_send_due_deliveries(at)
    return counts


def _texts(contact):
    return [m.payload["text"] for m in OutboxMessage.objects.filter(target=f"ext-{contact.pk}").order_by("id")]


def test_a_run_sends_waits_as_a_row_and_continues_when_due(publish, reachable, commit):
    # given a published two-message journey and an enrolled contact
    journey = publish(TWO_MESSAGES)
    alice = reachable("Alice")
    start = timezone.now()
    with commit():
        run, why = do_enrol_contact(journey, alice, trigger_key="manual:1", now=start)
    assert run is not None
    # then the first message went out and the run waits a day, as a row
    run.refresh_from_db()
    assert (why, run.state, run.current_step) == ("", RunState.WAITING, "pause")
    assert run.wake_at is not None and abs((run.wake_at - start).total_seconds() - 86400) < 60
    assert _texts(alice) == ["你好 Alice"]
    # when the runner looks before the wait is over, nothing happens
    assert tick(start + dt.timedelta(hours=23)) == {}
    # when it looks after
    assert tick(run.wake_at) == {"completed": 1}
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    assert _texts(alice) == ["你好 Alice", "第二条"]
    assert [(r.step_id, r.outcome) for r in run.log.all()] == [
        # the second send was asked for at a simulated future moment: queued for it, then sent
        ("hello", "sent"), ("pause", "waiting"), ("pause", "waited"), ("again", "queued"),
    ]


def test_each_step_executes_exactly_once_under_repeated_and_duplicate_advances(publish, reachable, commit):
    journey = publish(TWO_MESSAGES)
    alice = reachable("Alice")
    with commit():
        run = enrolled(do_enrol_contact(journey, alice, trigger_key="manual:1"))
    run.refresh_from_db()
    wake = run.wake_at
    # when the worker is asked again and again (retries, a duplicate task, the sweep)
    for _ in range(3):
        engine.advance(run.pk)
        engine.advance(run.pk, now=wake)
        tick(wake + dt.timedelta(minutes=5))
    # then every step ran once and every message went out once
    assert _texts(alice) == ["你好 Alice", "第二条"]
    assert Delivery.objects.filter(contact=alice).count() == 2
    assert JourneyStepLog.objects.filter(run=run).count() == 4


def test_a_run_held_by_a_dead_worker_is_picked_up_once_its_lease_runs_out(publish, reachable, commit):
    journey = publish(TWO_MESSAGES)
    alice = reachable("Alice")
    with commit():
        run = enrolled(do_enrol_contact(journey, alice, trigger_key="manual:1"))
    run.refresh_from_db()
    # given a worker claimed the due run and died without giving the lease back
    JourneyRun.objects.filter(pk=run.pk).update(lease_until=timezone.now() + dt.timedelta(minutes=2))
    assert engine.due_run_ids(run.wake_at) == []
    assert engine.advance(run.pk, now=run.wake_at) == "skipped"
    # when the lease has run out
    JourneyRun.objects.filter(pk=run.pk).update(lease_until=timezone.now() - dt.timedelta(seconds=1))
    assert engine.due_run_ids(run.wake_at) == [run.pk]
    assert engine.advance(run.pk, now=run.wake_at) == "completed"
    do_send_due_deliveries(run.wake_at)
    assert _texts(alice) == ["你好 Alice", "第二条"]


WAIT_FOR_ORDER = """
name: 等下单
trigger: {kind: manual}
steps:
  - {id: wait_order, type: wait, event: {kind: order, timeout: 3d}, next: {event: thanks, timeout: nudge}}
  - {id: thanks, type: send, message_class: service, content: 谢谢下单}
  - {id: nudge, type: send, message_class: service, content: 还在考虑吗}
"""


def test_wait_for_an_event_takes_the_event_edge_when_it_arrives(publish, reachable, commit):
    journey = publish(WAIT_FOR_ORDER)
    alice = reachable("Alice")
    with commit():
        run = enrolled(do_enrol_contact(journey, alice, trigger_key="manual:1"))
    run.refresh_from_db()
    assert (run.state, run.waiting_for["kind"]) == (RunState.WAITING, "order")
    # when the contact orders (a timeline event, handed to the journey consumer)
    event, _ = do_record_event(alice, "order", idempotency_key="order:1", data={"order_id": 1})
    with commit():
        on_contact_events([event])
    run.refresh_from_db()
    assert run.state == RunState.COMPLETED
    assert _texts(alice) == ["谢谢下单"]
    assert [(r.step_id, r.outcome) for r in run.log.all()] == [("wait_order", "waiting"), ("wait_order", "event"), ("thanks", "sent")]


def test_wait_for_an_event_takes_the_timeout_edge_without_it(publish, reachable, commit):
    journey = publish(WAIT_FOR_ORDER)
    alice = reachable("Alice")
    with commit():
        run = enrolled(do_enrol_contact(journey, alice, trigger_key="manual:1"))
    run.refresh_from_db()
    event, _ = do_record_event(alice, "message", idempotency_key="msg:1")  # not the awaited kind
    with commit():
        on_contact_events([event])
    assert tick(run.wake_at) == {"completed": 1}
    assert _texts(alice) == ["还在考虑吗"]
    assert JourneyStepLog.objects.get(run=run, outcome="timeout").reason == "no matching event before the timeout"


BRANCH = """
name: 分支
trigger: {kind: manual}
steps:
  - {id: vip, type: condition, if: {tags: {any: [会员/VIP]}}, next: {yes: vip_hi, no: hi}}
  - {id: vip_hi, type: send, message_class: service, content: 尊贵的会员}
  - {id: hi, type: send, message_class: service, content: 你好}
"""


def test_a_condition_branches_on_the_segment_language(workspace, publish, reachable, commit):
    vip_tag = make_tag(workspace, "VIP", group="会员")
    journey = publish(BRANCH)
    alice, bob = reachable("Alice"), reachable("Bob")
    do_tag_contacts(workspace, None, [alice], [vip_tag])
    with commit():
        do_enrol_contact(journey, alice, trigger_key="a")
    with commit():
        do_enrol_contact(journey, bob, trigger_key="b")
    assert (_texts(alice), _texts(bob)) == (["尊贵的会员"], ["你好"])
    assert {c["id"]: c["outcomes"] for c in step_counts(journey)} == {
        "vip": {"no": 1, "yes": 1}, "vip_hi": {"sent": 1}, "hi": {"sent": 1},
    }


def test_running_contacts_stay_on_their_version_and_new_ones_get_the_new_one(workspace, publish, reachable, commit):
    journey = publish(TWO_MESSAGES)
    alice, bob = reachable("Alice"), reachable("Bob")
    with commit():
        run_a = enrolled(do_enrol_contact(journey, alice, trigger_key="a"))
    # when the journey is changed and published again while Alice waits
    do_save_journey(workspace, None, TWO_MESSAGES.replace("第二条", "改过的第二条"), journey=journey)
    v2 = do_publish_journey(journey, None)
    with commit():
        run_b = enrolled(do_enrol_contact(journey, bob, trigger_key="b"))
    later = timezone.now() + dt.timedelta(days=2)
    tick(later)
    # then Alice finishes version 1, Bob runs version 2
    run_a.refresh_from_db()
    assert (run_a.version.number, v2.number, run_b.version_id) == (1, 2, v2.pk)
    assert _texts(alice) == ["你好 Alice", "第二条"]
    assert _texts(bob) == ["你好 Bob", "改过的第二条"]


def test_publishing_an_unchanged_draft_makes_no_new_version(publish):
    journey = publish(TWO_MESSAGES)
    assert do_publish_journey(journey, None).number == 1
    assert journey.versions.count() == 1


@pytest.mark.parametrize(
    ("reentry", "expected"),
    [
        ("once", ["", "entered before (re-entry: once)", "entered before (re-entry: once)"]),
        ("{mode: every, days: 10}", ["", "entered less than 10 days ago (re-entry: every 10 days)", ""]),
        ("always", ["", "", ""]),
    ],
)
def test_reentry_rules(publish, reachable, reentry, expected, commit):
    journey = publish(f"name: r\ntrigger: {{kind: manual}}\nreentry: {reentry}\nsteps:\n  - {{id: a, type: exit}}\n")
    alice = reachable("Alice")
    now = timezone.now()
    answers = []
    for i, days in enumerate([0, 5, 11]):
        with commit():
            answers.append(do_enrol_contact(journey, alice, trigger_key=f"k{i}", now=now + dt.timedelta(days=days))[1])
    assert answers == expected


def test_a_contact_is_never_in_two_open_runs_of_one_journey_and_a_trigger_starts_one_run(publish, reachable, commit):
    journey = publish(TWO_MESSAGES.replace("trigger: {kind: manual}", "trigger: {kind: manual}\nreentry: always"))
    alice = reachable("Alice")
    with commit():
        first = enrolled(do_enrol_contact(journey, alice, trigger_key="k1"))
    assert do_enrol_contact(journey, alice, trigger_key="k2") == (None, "already in this journey")
    do_exit_run(first, None, reason="测试")
    assert do_enrol_contact(journey, alice, trigger_key="k1") == (None, "already started for this trigger")
    assert do_enrol_contact(journey, alice, trigger_key="k3")[1] == ""


def test_describe_run_says_where_and_why(publish, reachable, commit):
    journey = publish(TWO_MESSAGES)
    alice = reachable("Alice")
    with commit():
        run = enrolled(do_enrol_contact(journey, alice, trigger_key="manual:1"))
    run.refresh_from_db()
    described = describe_run(run)
    assert (described["state"], described["current_step"], described["current_step_type"]) == ("waiting", "pause", "wait")
    assert [(p["step"], p["outcome"], p["reason"]) for p in described["path"]] == [
        ("hello", "sent", ""), ("pause", "waiting", f"until {run.wake_at.isoformat()}"),
    ]


def test_a_marketing_send_without_consent_is_recorded_as_skipped_with_the_ledger_reason(workspace, publish, sandbox, commit):
    from siyu.contacts.actions import do_add_identity
    from siyu.core.testing import make_contact

    journey = publish("name: m\ntrigger: {kind: manual}\nsteps:\n  - {id: promo, type: send, content: 大促}\n")
    carol = make_contact(workspace, "Carol")
    do_add_identity(carol, None, account=sandbox, external_id="ext-carol")
    with commit():
        run = enrolled(do_enrol_contact(journey, carol, trigger_key="k"))
    log = JourneyStepLog.objects.get(run=run)
    assert (log.outcome, log.reason) == ("skipped", "no marketing consent from this contact")
