from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from siyu.accounts.models import AuditEntry, Role
from siyu.contacts.actions import do_merge_contacts, do_tag_contacts, do_untag_contacts
from siyu.contacts.events import EventKind, record_timeline
from siyu.contacts.models import ContactEvent
from siyu.core.errors import Conflict, Forbidden, ValidationFailed
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace
from siyu.segments.actions import (
    do_build_segment,
    do_create_segment,
    do_delete_segment,
    do_import_static_csv,
    do_set_static_members,
    do_update_segment,
)
from siyu.segments.conditions import evaluate
from siyu.segments.incremental import on_contact_events, scheduled_pass
from siyu.segments.models import BuildMode, SegmentBuild, SegmentMembership
from siyu.segments.queries import segment_member_ids

pytestmark = pytest.mark.django_db

VIP_NOT_BLOCKED = {"all": [{"tags": {"any": ["VIP"]}}, {"not": {"tags": {"any": ["黑名单"]}}}]}


def _members(segment) -> set[int]:
    return set(segment_member_ids(segment.workspace, segment))


def _new_events_since(last_id: int) -> list[ContactEvent]:
    return list(ContactEvent.objects.filter(pk__gt=last_id).order_by("pk"))


def _last_event_id() -> int:
    last = ContactEvent.objects.order_by("-pk").first()
    return last.pk if last else 0


@pytest.fixture
def ws():
    return make_workspace("seg")


@pytest.fixture
def tags(ws):
    return {"vip": make_tag(ws, "VIP"), "blocked": make_tag(ws, "黑名单", group="风控")}


def test_create_builds_after_commit_with_entered_events(ws, tags, django_capture_on_commit_callbacks):
    # given two VIPs, one blocked
    a, b, c = make_contact(ws, "A"), make_contact(ws, "B"), make_contact(ws, "C")
    do_tag_contacts(ws, None, [a, b], [tags["vip"]])
    do_tag_contacts(ws, None, [b], [tags["blocked"]])

    # when a dynamic segment is created
    with django_capture_on_commit_callbacks(execute=True):
        segment = do_create_segment(ws, None, name="VIP 未拉黑", definition=VIP_NOT_BLOCKED)

    # then it is built once, with a timeline event for the one who entered
    segment.refresh_from_db()
    assert _members(segment) == {a.pk}
    assert segment.size == 1
    assert segment.last_built_at is not None
    assert list(SegmentBuild.objects.filter(segment=segment).values_list("mode", "size", "entered", "left")) == [("full", 1, 1, 0)]
    entered = ContactEvent.objects.get(kind=EventKind.SEGMENT_ENTERED)
    assert (entered.contact_id, entered.data) == (a.pk, {"segment_id": segment.pk, "segment": "VIP 未拉黑"})
    assert c.pk not in _members(segment)


def test_full_build_diffs_and_keeps_history(ws, tags):
    a, b = make_contact(ws, "A"), make_contact(ws, "B")
    do_tag_contacts(ws, None, [a], [tags["vip"]])
    segment = do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    do_build_segment(segment)

    # when a leaves and b enters, then a comes back
    do_untag_contacts(ws, None, [a], [tags["vip"]])
    do_tag_contacts(ws, None, [b], [tags["vip"]])
    second = do_build_segment(segment)
    do_tag_contacts(ws, None, [a], [tags["vip"]])
    third = do_build_segment(segment)

    # then a has two stays (the first closed), b one open stay
    assert (second.entered, second.left, second.size) == (1, 1, 1)
    assert (third.entered, third.left, third.size) == (1, 0, 2)
    stays = list(SegmentMembership.objects.filter(segment=segment, contact=a).order_by("pk").values_list("left_at", flat=True))
    assert len(stays) == 2 and stays[0] is not None and stays[1] is None
    kinds = list(ContactEvent.objects.filter(contact=a, kind__startswith="segment_").order_by("pk").values_list("kind", flat=True))
    assert kinds == ["segment_entered", "segment_left", "segment_entered"]
    assert _members(segment) == {a.pk, b.pk}


def test_rebuild_with_unchanged_facts_changes_nothing(ws, tags):
    a = make_contact(ws, "A")
    do_tag_contacts(ws, None, [a], [tags["vip"]])
    segment = do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    do_build_segment(segment)
    events = ContactEvent.objects.filter(kind__startswith="segment_").count()

    build = do_build_segment(segment)

    assert (build.entered, build.left, build.size) == (0, 0, 1)
    assert ContactEvent.objects.filter(kind__startswith="segment_").count() == events


def test_incremental_update_touches_only_affected_segments(ws, tags):
    a, b = make_contact(ws, "A"), make_contact(ws, "B")
    vip = do_create_segment(ws, None, name="VIP", definition=VIP_NOT_BLOCKED)
    buyers = do_create_segment(ws, None, name="Buyers", definition={"event": {"kind": "order", "min": 1}})
    do_build_segment(vip)
    do_build_segment(buyers)
    last = _last_event_id()

    # when a is tagged VIP (only the VIP segment depends on tags)
    do_tag_contacts(ws, None, [a], [tags["vip"]])
    on_contact_events(_new_events_since(last))

    assert _members(vip) == {a.pk}
    assert _members(buyers) == set()
    assert SegmentBuild.objects.filter(segment=vip, mode=BuildMode.INCREMENTAL).count() == 1
    assert SegmentBuild.objects.filter(segment=buyers, mode=BuildMode.INCREMENTAL).count() == 0

    # when b orders and a gets blocked
    last = _last_event_id()
    record_timeline(b, EventKind.ORDER, idempotency_key="order:1")
    do_tag_contacts(ws, None, [a], [tags["blocked"]])
    on_contact_events(_new_events_since(last))

    assert _members(vip) == set()
    assert _members(buyers) == {b.pk}
    vip.refresh_from_db()
    assert vip.size == 0


@pytest.mark.django_db(transaction=True)
def test_segment_of_segment_follows_stored_membership():
    # Real commits: the after-commit fan-out and the worker (immediate mode) run as in production.
    ws = make_workspace("chain")
    vip_tag = make_tag(ws, "VIP")
    a = make_contact(ws, "A")
    vip = do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    vip_buyers = do_create_segment(ws, None, name="VIP buyers",
                                   definition={"all": [{"segment": vip.pk}, {"event": {"kind": "order", "min": 1}}]})
    record_timeline(a, EventKind.ORDER, idempotency_key="order:a")
    assert _members(vip_buyers) == set()

    # when a becomes VIP
    do_tag_contacts(ws, None, [a], [vip_tag])

    # then a enters VIP, and that entry brings a into the dependent segment
    assert _members(vip) == {a.pk}
    assert _members(vip_buyers) == {a.pk}
    assert SegmentBuild.objects.filter(segment=vip_buyers, mode=BuildMode.INCREMENTAL).values_list("entered", flat=True).get() == 1


def test_cycles_are_refused(ws, tags):
    first = do_create_segment(ws, None, name="first", definition={"tags": {"any": ["VIP"]}})
    second = do_create_segment(ws, None, name="second", definition={"segment": first.pk})

    with pytest.raises(ValidationFailed) as err:
        do_update_segment(first, None, definition={"any": [{"tags": {"any": ["VIP"]}}, {"segment": second.pk}]})
    with pytest.raises(ValidationFailed):
        do_update_segment(first, None, definition={"segment": first.pk})

    assert err.value.code == "segment_cycle"
    first.refresh_from_db()
    assert first.definition == {"tags": {"all": [], "any": [tags["vip"].pk], "none": []}}


def test_delete_refused_while_referenced(ws, tags):
    first = do_create_segment(ws, None, name="first", definition={"tags": {"any": ["VIP"]}})
    do_create_segment(ws, None, name="second", definition={"segment": first.pk})

    with pytest.raises(Conflict) as err:
        do_delete_segment(first, None)

    assert err.value.message == "segment 'first' is used by: second"


def test_names_are_unique_and_permissions_checked(ws, tags):
    do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    agent = make_staff(ws, Role.AGENT)

    with pytest.raises(Conflict):
        do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    with pytest.raises(Forbidden):
        do_create_segment(ws, agent, name="mine", definition={"tags": {"any": ["VIP"]}})


@pytest.mark.django_db(transaction=True)
def test_update_definition_rebuilds():
    ws = make_workspace("upd")
    a, b = make_contact(ws, "A", city="上海"), make_contact(ws, "B", city="北京")
    segment = do_create_segment(ws, None, name="城市", definition={"field": "city", "op": "eq", "value": "上海"})
    assert _members(segment) == {a.pk}

    do_update_segment(segment, None, definition={"field": "city", "op": "eq", "value": "北京"})

    assert _members(segment) == {b.pk}
    assert AuditEntry.objects.filter(action="segment.updated").count() == 1


def test_static_segment_from_selection_and_csv(ws):
    a = make_contact(ws, "A", phone="13812345678")
    b = make_contact(ws, "B", external_ref="crm-9")
    c = make_contact(ws, "C")
    segment = do_create_segment(ws, None, name="名单", kind="static")

    do_set_static_members(segment, None, [a.pk, c.pk])
    assert _members(segment) == {a.pk, c.pk}

    with pytest.raises(ValidationFailed) as err:
        do_set_static_members(segment, None, [a.pk, 99999999])
    assert err.value.code == "unknown_contacts"

    report = do_import_static_csv(segment, None, "手机号\n13812345678\n13900000000\n\n".encode())
    assert report.as_dict() == {"rows": 2, "matched": 1, "unknown_rows": [{"row": 3, "value": "139****0000"}],
                                "entered": 0, "left": 1, "size": 1}
    assert _members(segment) == {a.pk}

    report = do_import_static_csv(segment, None, f"external_id,name\ncrm-9,B\nnope,X\n{c.pk},C\n".encode(), replace=False)
    assert report.unknown_rows == [{"row": 3, "value": "nope"}, {"row": 4, "value": str(c.pk)}]
    assert _members(segment) == {a.pk, b.pk}

    report = do_import_static_csv(segment, None, f"contact_id\n{c.pk}\n".encode())
    assert _members(segment) == {c.pk}


def test_merged_duplicate_leaves_its_segments(ws, tags):
    a, dup = make_contact(ws, "A"), make_contact(ws, "A2")
    do_tag_contacts(ws, None, [dup], [tags["vip"]])
    segment = do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    do_build_segment(segment)
    last = _last_event_id()

    do_merge_contacts(a, dup, None)
    on_contact_events(_new_events_since(last))

    assert _members(segment) == {a.pk}


def test_scheduled_pass_rebuilds_time_relative_segments_only(ws, tags):
    a = make_contact(ws, "A")
    record_timeline(a, EventKind.ORDER, idempotency_key="old", occurred_at=timezone.now() - dt.timedelta(days=29))
    recent = do_create_segment(ws, None, name="recent", definition={"event": {"kind": "order", "within_days": 30}})
    do_create_segment(ws, None, name="vip", definition={"tags": {"any": ["VIP"]}})
    do_build_segment(recent)
    assert _members(recent) == {a.pk}
    ContactEvent.objects.filter(idempotency_key="old").update(occurred_at=timezone.now() - dt.timedelta(days=31))

    builds = scheduled_pass(ws.pk)

    assert [(b.segment.name, b.mode, b.left) for b in builds] == [("recent", "scheduled", 1)]
    assert _members(recent) == set()


def test_workspaces_are_isolated(ws, tags):
    other = make_workspace("other")
    theirs = make_contact(other, "X")
    do_tag_contacts(other, None, [theirs], [make_tag(other, "VIP")])
    mine = make_contact(ws, "A")
    do_tag_contacts(ws, None, [mine], [tags["vip"]])
    segment = do_create_segment(ws, None, name="VIP", definition={"tags": {"any": ["VIP"]}})
    do_build_segment(segment)

    assert _members(segment) == {mine.pk}
    assert set(segment_member_ids(other, segment)) == set()
    with pytest.raises(ValidationFailed):
        do_create_segment(other, None, name="ref", definition={"segment": segment.pk})


OPS = st.lists(
    st.tuples(st.sampled_from(["tag_vip", "untag_vip", "tag_block", "untag_block", "order", "old_order"]), st.integers(0, 5)),
    min_size=1, max_size=25,
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=OPS)
def test_incremental_equals_full_rebuild(ops):
    # given a segment "VIP, not blocked, ordered ≥ 2 in 90 days" kept up to date incrementally
    ws = make_workspace()
    vip, blocked = make_tag(ws, "VIP"), make_tag(ws, "黑名单", group="风控")
    people = [make_contact(ws, f"P{i}") for i in range(6)]
    definition = {"all": [{"tags": {"any": ["VIP"]}}, {"event": {"kind": "order", "min": 2, "within_days": 90}},
                          {"not": {"tags": {"any": ["黑名单"]}}}]}
    segment = do_create_segment(ws, None, name="bench shape", definition=definition)
    do_build_segment(segment)

    # when random tag and order events arrive, each batch through the consumer
    for step, (op, who) in enumerate(ops):
        last = _last_event_id()
        person = people[who]
        if op == "tag_vip":
            do_tag_contacts(ws, None, [person], [vip])
        elif op == "untag_vip":
            do_untag_contacts(ws, None, [person], [vip])
        elif op == "tag_block":
            do_tag_contacts(ws, None, [person], [blocked])
        elif op == "untag_block":
            do_untag_contacts(ws, None, [person], [blocked])
        else:
            days = 3 if op == "order" else 120
            record_timeline(person, EventKind.ORDER, idempotency_key=f"o:{ws.pk}:{step}",
                            occurred_at=timezone.now() - dt.timedelta(days=days))
        on_contact_events(_new_events_since(last))

    # then the stored membership is exactly what a full evaluation says
    incremental = _members(segment)
    assert incremental == evaluate(ws, segment.definition)
    assert do_build_segment(segment).entered == 0
