"""Triggers: timeline events start runs of matching published journeys (once per event,
re-entry rules apply, never across workspaces); birthdays and "N days since" start daily."""

import datetime as dt

import pytest
from django.utils import timezone

from siyu.contacts.actions import do_record_event, do_tag_contacts
from siyu.contacts.models import ContactEvent
from siyu.core.testing import make_contact, make_tag, make_workspace
from siyu.journeys.actions import do_publish_journey, do_save_journey, do_set_journey_status
from siyu.journeys.models import JourneyRun
from siyu.journeys.triggers import on_contact_events, run_scheduled_triggers

from .conftest import shanghai

pytestmark = pytest.mark.django_db

TAGGED = "name: 咖啡爱好者\ntrigger: {kind: tag_added, tag: 兴趣/咖啡}\nreentry: always\nsteps:\n  - {id: bye, type: exit}\n"


def test_a_matching_event_starts_one_run_per_event_even_when_handed_over_twice(workspace, publish):
    coffee, tea = make_tag(workspace, "咖啡"), make_tag(workspace, "茶")
    journey = publish(TAGGED)
    alice = make_contact(workspace, "Alice")
    do_tag_contacts(workspace, None, [alice], [coffee, tea])
    events = list(ContactEvent.objects.filter(contact=alice, kind="tagged").order_by("id"))
    on_contact_events(events)
    on_contact_events(events)  # a retried worker task
    coffee_event = next(e for e in events if e.data["tag_id"] == coffee.pk)
    assert list(JourneyRun.objects.filter(journey=journey).values_list("trigger_key", flat=True)) == [f"event:{coffee_event.pk}"]


def test_paused_journeys_and_other_workspaces_start_nothing(workspace, publish):
    coffee = make_tag(workspace, "咖啡")
    journey = publish(TAGGED)
    other = make_workspace()
    other_coffee = make_tag(other, "咖啡")
    stranger = make_contact(other, "Stranger")
    do_tag_contacts(other, None, [stranger], [other_coffee])
    on_contact_events(list(ContactEvent.objects.filter(contact=stranger, kind="tagged")))
    assert JourneyRun.objects.count() == 0
    do_set_journey_status(journey, None, status="paused")
    alice = make_contact(workspace, "Alice")
    do_tag_contacts(workspace, None, [alice], [coffee])
    on_contact_events(list(ContactEvent.objects.filter(contact=alice, kind="tagged")))
    assert JourneyRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_event_reaches_journeys_through_the_worker_fan_out_after_commit(reachable, workspace):
    # given a published contact_added journey (fan-out after commit, worker in immediate mode)
    journey = do_save_journey(workspace, None, "name: 欢迎\ntrigger: {kind: contact_added}\nsteps:\n"
                              "  - {id: hi, type: send, message_class: service, content: 欢迎}\n")
    do_publish_journey(journey, None)
    # when a contact is added
    alice = make_contact(workspace, "Alice")
    # then the run started and ran (its send was refused: Alice has no channel yet, with the reason)
    run = JourneyRun.objects.get(journey=journey, contact=alice)
    assert (run.state, list(run.log.values_list("step_id", "outcome", "reason"))) == (
        "completed", [("hi", "skipped", "the contact has no identity on an active channel")],
    )


def test_birthdays_start_at_the_trigger_time_once_a_year(workspace, publish):
    journey = publish("name: 生日\ntrigger: {kind: birthday, at: \"09:00\"}\nreentry: always\nsteps:\n  - {id: bye, type: exit}\n")
    alice = make_contact(workspace, "Alice", birthday=dt.date(1990, 12, 12))
    make_contact(workspace, "Bob", birthday=dt.date(1990, 12, 13))
    now = shanghai(2026, 12, 12, 0, 30)
    assert run_scheduled_triggers(now) == {"enrolled": 1, "skipped": 0}
    assert run_scheduled_triggers(now + dt.timedelta(hours=1)) == {"enrolled": 0, "skipped": 1}
    run = JourneyRun.objects.get(journey=journey)
    assert (run.contact_id, run.trigger_key, run.wake_at) == (alice.pk, f"birthday:2026:{alice.pk}", shanghai(2026, 12, 12, 9, 0))


def test_days_since_the_last_event(workspace, publish):
    journey = publish("name: 召回\ntrigger: {kind: days_since, event: order, days: 60}\nsteps:\n  - {id: bye, type: exit}\n")
    alice, bob = make_contact(workspace, "Alice"), make_contact(workspace, "Bob")
    do_record_event(alice, "order", idempotency_key="a1", occurred_at=shanghai(2026, 10, 13, 15, 0))
    do_record_event(bob, "order", idempotency_key="b1", occurred_at=shanghai(2026, 10, 13, 15, 0))
    do_record_event(bob, "order", idempotency_key="b2", occurred_at=shanghai(2026, 11, 1, 15, 0))  # ordered again since
    assert run_scheduled_triggers(shanghai(2026, 12, 12, 1, 0)) == {"enrolled": 1, "skipped": 0}
    assert list(JourneyRun.objects.filter(journey=journey).values_list("contact__name", flat=True)) == ["Alice"]
    assert timezone.is_aware(JourneyRun.objects.get().entered_at)


def test_entering_a_segment_starts_the_journey_that_waits_for_it(workspace, commit):
    from siyu.segments.actions import do_build_segment, do_create_segment

    vip = make_tag(workspace, "VIP", group="会员")
    segment = do_create_segment(workspace, None, name="VIP 客户", definition={"tags": {"any": ["会员/VIP"]}})
    journey = do_save_journey(workspace, None, f"name: 欢迎 VIP\ntrigger: {{kind: segment_entered, segment: {segment.pk}}}\n"
                              "steps:\n  - {id: bye, type: exit}\n")
    do_publish_journey(journey, None)
    alice, bob = make_contact(workspace, "Alice"), make_contact(workspace, "Bob")
    do_tag_contacts(workspace, None, [alice], [vip])
    do_build_segment(segment)
    entered = list(ContactEvent.objects.filter(kind="segment_entered"))
    assert [e.contact_id for e in entered] == [alice.pk]
    with commit():
        on_contact_events(entered)
    assert list(JourneyRun.objects.filter(journey=journey).values_list("contact__name", "state")) == [("Alice", "exited")]
    assert JourneyRun.objects.filter(contact=bob).count() == 0
