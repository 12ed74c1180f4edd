"""The journey definition language: normalisation and path-named errors."""

import pytest

from siyu.core.errors import ValidationFailed
from siyu.core.testing import make_tag
from siyu.journeys.definition import parse_duration, parse_text, validate

pytestmark = pytest.mark.django_db


def _errors(workspace, text: str) -> str:
    with pytest.raises(ValidationFailed) as info:
        validate(workspace, parse_text(text))
    return info.value.message


def test_a_valid_definition_is_normalised_with_references_resolved(workspace):
    # given a tag the journey refers to by group/name
    tag = make_tag(workspace, "咖啡")
    # when the YAML is validated
    clean = validate(workspace, parse_text("""
name: 新客
trigger: {kind: tag_added, tag: 兴趣/咖啡}
reentry: {mode: every, days: 30}
steps:
  - {id: hello, type: send, content: "你好 {name}", next: pause}
  - {id: pause, type: wait, duration: 1d12h, next: tagit}
  - {id: tagit, type: add_tag, tag: 咖啡}
"""))
    # then references are ids, durations seconds, defaults filled in
    assert clean == {
        "name": "新客", "description": "", "audience": "contact", "time_zone": "Asia/Shanghai",
        "trigger": {"kind": "tag_added", "tag_id": tag.pk, "tag": "兴趣/咖啡"},
        "reentry": {"mode": "every", "days": 30}, "start": "hello",
        "steps": [
            {"id": "hello", "type": "send", "content": {"text": "你好 {name}"}, "message_class": "marketing", "next": "pause"},
            {"id": "pause", "type": "wait", "duration": 129600, "next": "tagit"},
            {"id": "tagit", "type": "add_tag", "tag_id": tag.pk, "tag": "兴趣/咖啡", "next": ""},
        ],
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nsteps:\n  - {id: a, type: send, content: hi, next: b}\n",
         'steps[0].next: unknown step "b"'),
        ("name: x\nsteps:\n  - {id: a, type: add_tag, tag: VIP2}\n",
         "steps[0].tag: unknown tag 'VIP2'"),
        ("name: x\nsteps:\n  - {id: a, type: send, content: hi, next: b}\n  - {id: b, type: send, content: again, next: a}\n",
         "steps[0]: cycle without a wait: a → b → a"),
        ("name: x\nsteps:\n  - {id: a, type: send, content: hi}\n  - {id: a, type: exit}\n",
         'steps[1].id: duplicate step id "a" (also steps[0])'),
        ("name: x\nsteps:\n  - {id: a, type: send, content: hi}\n  - {id: b, type: exit}\n",
         'steps[1]: step "b" can never be reached from "a"'),
        ("name: x\nsteps:\n  - {id: a, type: wait, event: {kind: order, timeout: 3d}, next: a}\n",
         "steps[0].next: a wait for an event has two edges: {event: <step>, timeout: <step>}"),
        ("name: x\nsteps:\n  - {id: a, type: wait, duration: soon}\n",
         "steps[0].duration: not a duration: 'soon' (use e.g. 90s, 15m, 2h, 3d, 1w)"),
        ("name: x\nsteps:\n  - {id: a, type: send, content: hi, message_class: spam}\n",
         "steps[0].message_class: unknown message class 'spam' (one of: marketing, reminder, service, notice)"),
        ("name: x\ntrigger: {kind: moon}\nsteps:\n  - {id: a, type: exit}\n",
         "trigger.kind: unknown trigger 'moon' (one of: contact_added, tag_added, tag_removed, joined_group, left_group, "
         "segment_entered, segment_left, order_placed, scan, birthday, days_since, manual)"),
        ("name: x\nreentry: {mode: every}\nsteps:\n  - {id: a, type: exit}\n",
         "reentry.days: re-entry every N days needs days ≥ 1"),
        ("name: x\naudience: group\ntrigger: {kind: contact_added}\nsteps:\n  - {id: a, type: exit}\n",
         "trigger.kind: a group journey starts by enrolment (kind: manual)"),
        ("name: x\nsteps:\n  - {id: a, type: condition, if: {tags: {any: [VIP2]}}, next: {yes: b, no: b}}\n  - {id: b, type: exit}\n",
         'steps[0].if: tags.any: unknown tag "VIP2"'),
    ],
)
def test_invalid_definitions_name_the_path_of_the_problem(workspace, text, message):
    assert _errors(workspace, text) == message


def test_a_loop_through_a_wait_is_allowed(workspace):
    clean = validate(workspace, parse_text("""
name: loop
steps:
  - {id: a, type: send, content: hi, next: b}
  - {id: b, type: wait, duration: 7d, next: a}
"""))
    assert [s["id"] for s in clean["steps"]] == ["a", "b"]


def test_yaml_errors_say_where():
    with pytest.raises(ValidationFailed) as info:
        parse_text("name: [unclosed\n")
    assert info.value.message.startswith("not valid YAML/JSON (line 2, column 1)")


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("2h", 7200), ("3d", 259200), ("1w", 604800), (45, 45)])
def test_durations(text, seconds):
    assert parse_duration(text, "d") == seconds
