from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from siyu.contacts.actions import do_tag_contacts, do_update_contact
from siyu.contacts.events import EventKind, record_timeline
from siyu.contacts.models import ProfileField
from siyu.core.errors import ValidationFailed
from siyu.core.testing import make_contact, make_tag, make_workspace
from siyu.segments.conditions import contact_matches, dependencies, evaluate, validate_definition

pytestmark = pytest.mark.django_db


def _order(contact, n: int, days_ago: int, prefix: str = "o") -> None:
    for i in range(n):
        record_timeline(contact, EventKind.ORDER, idempotency_key=f"{prefix}:{contact.pk}:{days_ago}:{i}",
                        occurred_at=timezone.now() - dt.timedelta(days=days_ago))


@pytest.fixture
def ws():
    return make_workspace("seg")


@pytest.fixture
def people(ws):
    vip, new, blocked = make_tag(ws, "VIP"), make_tag(ws, "新客"), make_tag(ws, "黑名单", group="风控")
    a = make_contact(ws, "A", city="上海")
    b = make_contact(ws, "B", city="北京")
    c = make_contact(ws, "C", city="上海")
    d = make_contact(ws, "D")
    do_tag_contacts(ws, None, [a, b], [vip])
    do_tag_contacts(ws, None, [c], [new])
    do_tag_contacts(ws, None, [b], [blocked])
    _order(a, 2, 10)
    _order(b, 3, 5)
    _order(c, 1, 10)
    _order(c, 2, 200)
    return {"a": a, "b": b, "c": c, "d": d, "vip": vip, "new": new, "blocked": blocked}


def test_validate_resolves_tag_names_and_fills_defaults(ws, people):
    clean = validate_definition(ws, {"all": [{"tags": {"any": ["VIP", "新客"]}}, {"event": {"kind": "order", "within_days": 90}}]})

    assert clean == {"all": [
        {"tags": {"all": [], "any": [people["vip"].pk, people["new"].pk], "none": []}},
        {"event": {"kind": "order", "min": 1, "max": None, "within_days": 90}},
    ]}


@pytest.mark.parametrize(("definition", "message"), [
    ({"all": [{"tags": {"any": ["VIP"]}}, {"tags": {"any": ["VIP2"]}}]}, 'all[1].tags.any: unknown tag "VIP2"'),
    ({"any": [{"not": {"field": "city", "op": "between", "value": 1}}]}, "any[0].not.op: unknown operator 'between'"),
    ({"field": "shoe", "op": "eq", "value": "M"}, "field: unknown field 'shoe'"),
    ({"event": {"kind": "order", "min": 3, "max": 1}}, "event.max: must be ≥ min (3)"),
    ({"p_alive": {"lt": 2}}, "p_alive.lt: must be a probability between 0 and 1"),
    ({"segment": 999999}, "segment: unknown segment 999999"),
    ({"lifecycle_stage": ["vip", "gold"]}, "lifecycle_stage: unknown stage 'gold'"),
    ({"all": []}, "all: must be a non-empty list of conditions"),
    ({"bogus": 1}, "unknown condition 'bogus'"),
])
def test_validation_names_the_path(ws, people, definition, message):
    with pytest.raises(ValidationFailed) as err:
        validate_definition(ws, definition)

    assert err.value.message.startswith(message)
    assert err.value.code == "invalid_definition"


def test_tags_all_any_none(ws, people):
    p = people

    assert evaluate(ws, validate_definition(ws, {"tags": {"any": ["VIP", "新客"]}})) == {p["a"].pk, p["b"].pk, p["c"].pk}
    assert evaluate(ws, validate_definition(ws, {"tags": {"all": ["VIP"], "none": ["黑名单"]}})) == {p["a"].pk}
    assert evaluate(ws, validate_definition(ws, {"not": {"tags": {"any": ["VIP"]}}})) == {p["c"].pk, p["d"].pk}


def test_event_counts_in_window(ws, people):
    p = people

    twice_90 = validate_definition(ws, {"event": {"kind": "order", "min": 2, "within_days": 90}})
    never_30 = validate_definition(ws, {"event": {"kind": "order", "max": 0, "within_days": 30}})
    ever_3 = validate_definition(ws, {"event": {"kind": "order", "min": 3}})

    assert evaluate(ws, twice_90) == {p["a"].pk, p["b"].pk}
    assert never_30["event"]["min"] == 0
    assert evaluate(ws, never_30) == {p["d"].pk}
    assert evaluate(ws, ever_3) == {p["b"].pk, p["c"].pk}


def test_the_bench_shape_in_one_query(ws, people):
    definition = validate_definition(ws, {"all": [
        {"tags": {"any": ["VIP", "新客"]}},
        {"event": {"kind": "order", "min": 2, "within_days": 90}},
        {"not": {"tags": {"any": ["黑名单"]}}},
    ]})

    with CaptureQueriesContext(connection) as queries:
        result = evaluate(ws, definition)

    assert result == {people["a"].pk}
    assert len(queries) == 1


def test_fields_profile_and_null_safe_negation(ws, people):
    ProfileField.objects.create(workspace=ws, key="size", label="尺码")
    do_update_contact(people["a"], None, profile={"size": "M"})
    do_update_contact(people["b"], None, profile={"size": "L"})
    p = people

    assert evaluate(ws, validate_definition(ws, {"field": "city", "op": "eq", "value": "上海"})) == {p["a"].pk, p["c"].pk}
    assert evaluate(ws, validate_definition(ws, {"field": "city", "op": "missing"})) == {p["d"].pk}
    assert evaluate(ws, validate_definition(ws, {"field": "size", "op": "in", "value": ["M", "XL"]})) == {p["a"].pk}
    # ne includes contacts that have no size at all
    assert evaluate(ws, validate_definition(ws, {"field": "size", "op": "ne", "value": "M"})) == {p["b"].pk, p["c"].pk, p["d"].pk}
    assert evaluate(ws, validate_definition(ws, {"field": "profile.size", "op": "exists"})) == {p["a"].pk, p["b"].pk}
    assert evaluate(ws, validate_definition(ws, {"not": {"field": "owner_id", "op": "exists"}})) == {p[k].pk for k in "abcd"}


@pytest.mark.parametrize("definition", [
    {"event": {"kind": "order", "min": 2, "within_days": 90}},
    {"event": {"kind": "order", "min": 1, "max": 2}},
    {"event": {"kind": "order", "max": 0, "within_days": 30}},
    {"all": [{"tags": {"all": ["VIP"], "none": ["黑名单"]}}, {"field": "city", "op": "ne", "value": "北京"}]},
    {"not": {"tags": {"any": ["VIP", "新客"]}}},
])
def test_restricted_evaluation_agrees_with_the_whole_workspace(ws, people, definition):
    clean = validate_definition(ws, definition)
    everyone = [people[k].pk for k in "abcd"]

    assert evaluate(ws, clean, everyone) == evaluate(ws, clean)
    assert {pk for pk in everyone if contact_matches(ws, clean, pk)} == evaluate(ws, clean)


def test_restricted_evaluation_and_contact_matches(ws, people):
    definition = validate_definition(ws, {"tags": {"any": ["VIP"]}})

    assert evaluate(ws, definition, [people["a"].pk, people["c"].pk]) == {people["a"].pk}
    assert contact_matches(ws, definition, people["b"].pk) is True
    assert contact_matches(ws, definition, people["d"].pk) is False


def test_other_workspace_contacts_never_match(ws, people):
    other = make_workspace("other")
    make_contact(other, "X", city="上海")

    assert evaluate(ws, validate_definition(ws, {"field": "city", "op": "eq", "value": "上海"})) == {people["a"].pk, people["c"].pk}
    with pytest.raises(ValidationFailed):
        validate_definition(other, {"tags": {"any": [people["vip"].pk]}})


def test_group_membership_and_role(ws, people):
    from siyu.communities.actions import do_add_member, do_create_group

    group = do_create_group(ws, None, name="抢购群")
    do_add_member(group, people["a"], None, role="core")
    do_add_member(group, people["d"], None)

    in_group = validate_definition(ws, {"group": {"ids": [group.pk]}})
    core = validate_definition(ws, {"group": {"ids": [group.pk], "role": ["core"]}})
    outside = validate_definition(ws, {"group": {"ids": [group.pk], "in": False}})

    assert evaluate(ws, in_group) == {people["a"].pk, people["d"].pk}
    assert evaluate(ws, core) == {people["a"].pk}
    assert evaluate(ws, outside) == {people["b"].pk, people["c"].pk}


def test_dependencies_of_a_definition(ws, people):
    deps = dependencies(validate_definition(ws, {"all": [{"tags": {"any": ["VIP"]}}, {"event": {"kind": "order", "within_days": 9}}]}))

    assert deps.kinds == {EventKind.TAGGED, EventKind.UNTAGGED, EventKind.ORDER}
    assert deps.time_relative is True
    assert deps.affected_by(EventKind.MESSAGE, {}) is False
    assert deps.affected_by(EventKind.ORDER, {}) is True
    assert deps.affected_by(EventKind.UPDATED, {}) is True  # unknown effect: re-check
    assert deps.affected_by(EventKind.SEGMENT_ENTERED, {"segment_id": 1}) is False
