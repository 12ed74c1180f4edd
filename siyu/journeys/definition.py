"""The journey definition language (YAML or JSON) and its validation.

A journey is a graph of steps with ids and ``next`` edges::

    name: 新客培育
    trigger: {kind: contact_added}
    reentry: {mode: once}                   # once | every (days: N) | always
    steps:
      - {id: welcome, type: send, message_class: service, content: {text: "欢迎 {name}"}, next: day1}
      - {id: day1, type: wait, duration: 1d, next: guide}
      - {id: guide, type: condition, if: {tags: {any: ["兴趣/咖啡"]}}, next: {yes: coffee, no: tea}}
      - {id: wait_order, type: wait, event: {kind: order, timeout: 3d}, next: {event: thanks, timeout: nudge}}

:func:`validate` resolves every reference (tags, groups, staff, coupon templates,
segments) against the workspace and answers a normalised dict, or raises
``ValidationFailed`` naming the path of the first problem (``steps[2].next: unknown step
"foo"``). A step without ``next`` ends the run.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

import yaml

from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace

AUDIENCES = ("contact", "group")

#: trigger kind → the timeline event kind that fires it (None: scheduled or manual)
TRIGGER_EVENTS: dict[str, str | None] = {
    "contact_added": "added",
    "tag_added": "tagged",
    "tag_removed": "untagged",
    "joined_group": "joined_group",
    "left_group": "left_group",
    "segment_entered": "segment_entered",
    "segment_left": "segment_left",
    "order_placed": "order",
    "scan": "scan",
    "birthday": None,
    "days_since": None,
    "manual": None,
}
SCHEDULED_TRIGGERS = ("birthday", "days_since")
REENTRY_MODES = ("once", "every", "always")
MESSAGE_CLASSES = ("marketing", "reminder", "service", "notice")

CONTACT_ACTIONS = ("send", "add_tag", "remove_tag", "assign_owner", "invite_to_group", "issue_coupon", "create_task", "exit")
GROUP_ACTIONS = ("send", "invite_responders", "report", "create_task", "exit")
FLOW_STEPS = ("wait", "condition")
STEP_TYPES = tuple(dict.fromkeys((*FLOW_STEPS, *CONTACT_ACTIONS, *GROUP_ACTIONS)))

_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
#: a context variable of the run (``$sale_group``: the group a playbook prepared)
_VAR = re.compile(r"^\$[a-z_][a-z0-9_]*$")


def parse_text(text: str) -> dict[str, Any]:
    """Read a definition written as YAML (JSON is YAML too). ``safe_load`` only: a
    definition is data, never objects."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ValidationFailed(f"not valid YAML/JSON{where}: {getattr(exc, 'problem', None) or exc}", code="invalid_definition") from exc
    if not isinstance(data, dict):
        raise ValidationFailed("a journey definition is a mapping (name, trigger, steps)", code="invalid_definition")
    return data


def parse_duration(value: Any, path: str) -> int:
    """``90s``, ``15m``, ``2h``, ``3d``, ``1w``, ``1d12h`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise _fail(path, f"not a duration: {value!r}")
    if isinstance(value, int | float):
        seconds = int(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        parts = _DURATION.findall(text)
        if not parts or _DURATION.sub("", text).strip():
            raise _fail(path, f"not a duration: {value!r} (use e.g. 90s, 15m, 2h, 3d, 1w)")
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)
    else:
        raise _fail(path, f"not a duration: {value!r}")
    if seconds <= 0:
        raise _fail(path, "a duration must be positive")
    return seconds


def parse_time_of_day(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _TIME.match(value.strip()):
        raise _fail(path, f"not a time of day: {value!r} (use HH:MM)")
    hour, minute = value.strip().split(":")
    return f"{int(hour):02d}:{minute}"


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", code="invalid_definition", details={"path": path})


def _text(data: dict[str, Any], key: str, path: str, *, required: bool = False, size: int = 2000) -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise _fail(f"{path}.{key}" if path else key, "is required")
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise _fail(f"{path}.{key}" if path else key, "must be text")
    text = str(value).strip()
    if len(text) > size:
        raise _fail(f"{path}.{key}" if path else key, f"is longer than {size} characters")
    return text


def _known(data: dict[str, Any], allowed: set[str], path: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        raise _fail(f"{path}.{extra[0]}" if path else extra[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")


# ---------------------------------------------------------------- references


def _tag(workspace: Workspace, ref: Any, path: str) -> dict[str, Any]:
    from siyu.contacts.queries import resolve_tags
    from siyu.core.errors import SiyuError

    if ref is None or ref == "" or isinstance(ref, bool | dict | list):
        raise _fail(path, "a tag (group/name, name or id) is required")
    try:
        (tag,) = resolve_tags(workspace, [ref])
    except SiyuError as exc:
        raise _fail(path, exc.message) from exc
    return {"tag_id": tag.pk, "tag": f"{tag.group.name}/{tag.name}"}


def _group(workspace: Workspace, ref: Any, path: str, *, allow_var: bool = False) -> dict[str, Any]:
    from siyu.communities.models import Group

    if allow_var and isinstance(ref, str) and _VAR.match(ref):
        return {"group_var": ref[1:]}
    if isinstance(ref, bool) or not isinstance(ref, int | str) or not str(ref).strip():
        raise _fail(path, "a group id is required")
    text = str(ref).strip()
    qs = Group.objects.in_workspace(workspace)
    group = qs.filter(pk=int(text)).first() if text.isdigit() else qs.filter(name=text).first()
    if group is None:
        raise _fail(path, f"unknown group {text!r}")
    return {"group_id": group.pk, "group": group.name}


def _staff(workspace: Workspace, ref: Any, path: str) -> dict[str, Any]:
    from siyu.accounts.models import Staff

    text = str(ref).strip() if isinstance(ref, int | str) and not isinstance(ref, bool) else ""
    if not text:
        raise _fail(path, "a staff member (email or id) is required")
    qs = Staff.objects.in_workspace(workspace).filter(is_active=True).select_related("user")
    staff = qs.filter(pk=int(text)).first() if text.isdigit() else qs.filter(user__email__iexact=text).first()
    if staff is None:
        raise _fail(path, f"unknown staff member {text!r}")
    return {"staff_id": staff.pk, "staff": staff.user.email}


def _coupon_template(workspace: Workspace, ref: Any, path: str) -> dict[str, Any]:
    from siyu.commerce.models import CouponTemplate

    text = str(ref).strip() if isinstance(ref, int | str) and not isinstance(ref, bool) else ""
    if not text:
        raise _fail(path, "a coupon template (name or id) is required")
    qs = CouponTemplate.objects.in_workspace(workspace)
    template = qs.filter(pk=int(text)).first() if text.isdigit() else qs.filter(name=text).first()
    if template is None:
        raise _fail(path, f"unknown coupon template {text!r}")
    return {"template_id": template.pk, "template": template.name}


def _condition(workspace: Workspace, value: Any, path: str) -> dict[str, Any]:
    """A condition in the segment language, checked by the segments app."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"segment": value}
    if not isinstance(value, dict) or not value:
        raise _fail(path, "a condition is a mapping in the segment language (e.g. {tags: {any: [VIP]}})")
    from siyu.segments.conditions import validate_definition

    try:
        return validate_definition(workspace, value)
    except ValidationFailed as exc:
        raise _fail(path, exc.message) from exc


def _top_value(value: Any, path: str) -> dict[str, int]:
    """``{percent: 20, days: 365}``: the contact's net spend in the window ranks in the
    top ``percent`` of the workspace's buyers (VIP care)."""
    if not isinstance(value, dict):
        raise _fail(path, "top_value is {percent: 1–100, days: N}")
    _known(value, {"percent", "days"}, path)
    percent, days = value.get("percent", 20), value.get("days", 365)
    if isinstance(percent, bool) or not isinstance(percent, int) or not 1 <= percent <= 100:
        raise _fail(f"{path}.percent", "a whole percentage 1–100")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise _fail(f"{path}.days", "a whole number of days ≥ 1")
    return {"percent": percent, "days": days}


def _content(value: Any, path: str) -> dict[str, Any]:
    if isinstance(value, str) and value.strip():
        return {"text": value.strip()}
    if isinstance(value, int) and not isinstance(value, bool):
        return {"material_id": value}
    if not isinstance(value, dict) or not value:
        raise _fail(path, "content is a text, a material id, or a mapping ({text: ...} / {material_id: ...})")
    if "material_id" not in value and not str(value.get("text", "")).strip() and "type" not in value:
        raise _fail(path, "content needs a text or a material_id")
    return dict(value)


# ---------------------------------------------------------------- trigger, steps


def _trigger(workspace: Workspace, value: Any, audience: str) -> dict[str, Any]:
    if isinstance(value, str):
        value = {"kind": value}
    if not isinstance(value, dict):
        raise _fail("trigger", "a trigger is a mapping with a kind")
    value = _as_written(value)
    kind = value.get("kind")
    if kind not in TRIGGER_EVENTS:
        raise _fail("trigger.kind", f"unknown trigger {kind!r} (one of: {', '.join(TRIGGER_EVENTS)})")
    if audience == "group" and kind != "manual":
        raise _fail("trigger.kind", "a group journey starts by enrolment (kind: manual)")
    out: dict[str, Any] = {"kind": kind}
    if kind in ("tag_added", "tag_removed"):
        _known(value, {"kind", "tag"}, "trigger")
        out.update(_tag(workspace, value.get("tag"), "trigger.tag"))
    elif kind in ("joined_group", "left_group"):
        _known(value, {"kind", "group"}, "trigger")
        if value.get("group") not in (None, ""):
            out.update(_group(workspace, value["group"], "trigger.group"))
    elif kind in ("segment_entered", "segment_left"):
        _known(value, {"kind", "segment"}, "trigger")
        out["segment_id"] = _segment_id(workspace, value.get("segment"), "trigger.segment")
    elif kind == "scan":
        _known(value, {"kind", "live_code"}, "trigger")
        if value.get("live_code"):
            out["live_code"] = _text(value, "live_code", "trigger", size=64)
    elif kind == "birthday":
        _known(value, {"kind", "at"}, "trigger")
        out["at"] = parse_time_of_day(value.get("at", "09:00"), "trigger.at")
    elif kind == "days_since":
        _known(value, {"kind", "event", "days", "at"}, "trigger")
        event = value.get("event")
        if not isinstance(event, str) or not event.strip():
            raise _fail("trigger.event", "the event kind to count from is required (e.g. order)")
        days = value.get("days")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise _fail("trigger.days", "a whole number of days ≥ 1 is required")
        out.update(event=event.strip(), days=days, at=parse_time_of_day(value.get("at", "10:00"), "trigger.at"))
    else:
        _known(value, {"kind"}, "trigger")
    return out


def _segment_id(workspace: Workspace, ref: Any, path: str) -> int:
    from siyu.segments.models import Segment

    text = str(ref).strip() if isinstance(ref, int | str) and not isinstance(ref, bool) else ""
    qs = Segment.objects.in_workspace(workspace)
    segment = qs.filter(pk=int(text)).first() if text.isdigit() else qs.filter(name=text).first() if text else None
    if segment is None:
        raise _fail(path, f"unknown segment {ref!r}")
    return int(segment.pk)


def _reentry(value: Any) -> dict[str, Any]:
    if value is None:
        return {"mode": "once"}
    if isinstance(value, str):
        value = {"mode": value}
    if not isinstance(value, dict):
        raise _fail("reentry", "reentry is once, always or {mode: every, days: N}")
    _known(value, {"mode", "days"}, "reentry")
    mode = value.get("mode", "once")
    if mode not in REENTRY_MODES:
        raise _fail("reentry.mode", f"unknown re-entry rule {mode!r} (one of: {', '.join(REENTRY_MODES)})")
    if mode == "every":
        days = value.get("days")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise _fail("reentry.days", "re-entry every N days needs days ≥ 1")
        return {"mode": mode, "days": days}
    return {"mode": mode}


def _local_datetime(workspace: Workspace, tz_name: str, value: Any, path: str) -> str:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise _fail(path, f"not a date and time: {value!r} (use 2026-12-12T20:00)") from exc
    else:
        raise _fail(path, f"not a date and time: {value!r}")
    if when.tzinfo is None:
        when = when.replace(tzinfo=zoneinfo.ZoneInfo(tz_name))
    return when.isoformat()


#: a normalised reference (what validation writes) → the key an author writes
_RESOLVED = {"tag_id": "tag", "group_id": "group", "staff_id": "staff", "template_id": "template", "segment_id": "segment"}


def _as_written(raw: dict[str, Any]) -> dict[str, Any]:
    """Accept a normalised definition again (publishing re-validates the stored draft):
    resolved ids stand for the reference, their display names are dropped."""
    out = dict(raw)
    for resolved, written in _RESOLVED.items():
        if resolved in out:
            out[written] = out.pop(resolved)
    if "group_var" in out:
        out["group"] = f"${out.pop('group_var')}"
    if out.get("type") == "create_task" and "staff" in out:
        out["assignee"] = out.pop("staff")
    return out


def _step(workspace: Workspace, raw: Any, index: int, audience: str, tz_name: str) -> dict[str, Any]:
    path = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise _fail(path, "a step is a mapping with an id and a type")
    raw = _as_written(raw)
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not _ID.match(step_id):
        raise _fail(f"{path}.id", f"a step id is 1–64 letters, digits, _ or - (got {step_id!r})")
    kind = raw.get("type")
    # conditions speak the segment language, which is about contacts
    allowed_types = (*FLOW_STEPS, *CONTACT_ACTIONS) if audience == "contact" else ("wait", *GROUP_ACTIONS)
    if kind not in allowed_types:
        raise _fail(f"{path}.type", f"unknown step type {kind!r} for a {audience} journey (one of: {', '.join(allowed_types)})")
    step: dict[str, Any] = {"id": step_id, "type": kind}
    common = {"id", "type", "next", "label"}
    if raw.get("label"):
        step["label"] = _text(raw, "label", path, size=100)
    nxt = raw.get("next")
    if kind == "wait":
        modes = [k for k in ("duration", "until_time", "until_at", "event") if raw.get(k) not in (None, "")]
        if len(modes) != 1:
            raise _fail(path, "a wait needs exactly one of duration, until_time, until_at or event")
        mode = modes[0]
        if mode == "duration":
            _known(raw, common | {"duration"}, path)
            step["duration"] = parse_duration(raw["duration"], f"{path}.duration")
        elif mode == "until_time":
            _known(raw, common | {"until_time", "days", "time_zone"}, path)
            step["until_time"] = parse_time_of_day(raw["until_time"], f"{path}.until_time")
            days = raw.get("days", 0)
            if isinstance(days, bool) or not isinstance(days, int) or days < 0:
                raise _fail(f"{path}.days", "days is a whole number ≥ 0")
            step["days"] = days
            zone = raw.get("time_zone", "contact")
            if zone not in ("contact", "workspace"):
                raise _fail(f"{path}.time_zone", "contact or workspace")
            step["time_zone"] = zone
        elif mode == "until_at":
            _known(raw, common | {"until_at"}, path)
            step["until_at"] = _local_datetime(workspace, tz_name, raw["until_at"], f"{path}.until_at")
        else:
            _known(raw, common | {"event"}, path)
            spec = raw["event"]
            if isinstance(spec, str):
                spec = {"kind": spec}
            if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str) or not spec["kind"].strip():
                raise _fail(f"{path}.event", "wait for an event needs {kind: <timeline event kind>, timeout: <duration>}")
            _known(spec, {"kind", "timeout", "data"}, f"{path}.event")
            if "timeout" not in spec:
                raise _fail(f"{path}.event.timeout", "is required (how long to wait before taking the timeout edge)")
            match = spec.get("data") or {}
            if not isinstance(match, dict):
                raise _fail(f"{path}.event.data", "a mapping of event data values to match")
            step["event"] = {"kind": spec["kind"].strip(), "timeout": parse_duration(spec["timeout"], f"{path}.event.timeout"), "data": match}
            if not isinstance(nxt, dict):
                raise _fail(f"{path}.next", "a wait for an event has two edges: {event: <step>, timeout: <step>}")
            _known(nxt, {"event", "timeout"}, f"{path}.next")
            step["next"] = {"event": nxt.get("event") or "", "timeout": nxt.get("timeout") or ""}
            return step
    elif kind == "condition":
        _known(raw, common | {"if", "top_value"}, path)
        if ("if" in raw) == ("top_value" in raw):
            raise _fail(f"{path}.if", "a condition needs either if (segment language) or top_value")
        if "if" in raw:
            step["if"] = _condition(workspace, raw["if"], f"{path}.if")
        else:
            step["top_value"] = _top_value(raw["top_value"], f"{path}.top_value")
        if isinstance(nxt, dict):
            # YAML 1.1 reads bare yes/no keys as booleans
            nxt = {("yes" if k is True else "no" if k is False else k): v for k, v in nxt.items()}
        if not isinstance(nxt, dict):
            raise _fail(f"{path}.next", "a condition has two edges: {yes: <step>, no: <step>}")
        _known(nxt, {"yes", "no"}, f"{path}.next")
        step["next"] = {"yes": nxt.get("yes") or "", "no": nxt.get("no") or ""}
        return step
    elif kind == "send":
        _known(raw, common | {"content", "message_class", "to"}, path)
        step["content"] = _content(raw.get("content"), f"{path}.content")
        message_class = raw.get("message_class", "marketing")
        if message_class not in MESSAGE_CLASSES:
            raise _fail(f"{path}.message_class", f"unknown message class {message_class!r} (one of: {', '.join(MESSAGE_CLASSES)})")
        step["message_class"] = message_class
    elif kind in ("add_tag", "remove_tag"):
        _known(raw, common | {"tag"}, path)
        step.update(_tag(workspace, raw.get("tag"), f"{path}.tag"))
    elif kind == "assign_owner":
        _known(raw, common | {"staff"}, path)
        step.update(_staff(workspace, raw.get("staff"), f"{path}.staff"))
    elif kind == "invite_to_group":
        _known(raw, common | {"group"}, path)
        step.update(_group(workspace, raw.get("group"), f"{path}.group", allow_var=True))
    elif kind == "issue_coupon":
        _known(raw, common | {"template"}, path)
        step.update(_coupon_template(workspace, raw.get("template"), f"{path}.template"))
    elif kind == "create_task":
        _known(raw, common | {"title", "assignee"}, path)
        step["title"] = _text(raw, "title", path, required=True, size=200)
        assignee = raw.get("assignee", "owner")
        step.update({"assignee": "owner"} if assignee in ("owner", None, "") else _staff(workspace, assignee, f"{path}.assignee"))
    elif kind == "exit":
        _known(raw, common | {"reason"}, path)
        step["reason"] = _text(raw, "reason", path, size=200) or "exit step"
        if nxt not in (None, ""):
            raise _fail(f"{path}.next", "an exit step ends the run and has no next step")
        return step
    elif kind == "invite_responders":
        _known(raw, common | {"group", "since"}, path)
        step.update(_group(workspace, raw.get("group"), f"{path}.group", allow_var=True))
        step["since"] = _local_datetime(workspace, tz_name, raw["since"], f"{path}.since") if raw.get("since") else ""
    elif kind == "report":
        _known(raw, common | {"title", "from", "to"}, path)
        step["title"] = _text(raw, "title", path, required=True, size=200)
        for key in ("from", "to"):
            if not raw.get(key):
                raise _fail(f"{path}.{key}", "is required (the sales window)")
            step[key] = _local_datetime(workspace, tz_name, raw[key], f"{path}.{key}")
    if nxt is not None and nxt != "" and not isinstance(nxt, str):
        raise _fail(f"{path}.next", "the next step's id")
    step["next"] = nxt or ""
    return step


def edges(step: dict[str, Any]) -> list[tuple[str, str]]:
    """The outgoing edges of a normalised step as (label, target) pairs."""
    nxt = step.get("next")
    if isinstance(nxt, dict):
        return [(label, target) for label, target in nxt.items() if target]
    return [("next", nxt)] if nxt else []


def _is_pause(step: dict[str, Any]) -> bool:
    """A step that lets time pass: a loop through one cannot spin."""
    return step["type"] == "wait" and "until_at" not in step


def _check_graph(steps: list[dict[str, Any]], start: str) -> None:
    index = {s["id"]: i for i, s in enumerate(steps)}
    for i, step in enumerate(steps):
        for label, target in edges(step):
            if target not in index:
                where = f"steps[{i}].next" + (f".{label}" if isinstance(step["next"], dict) else "")
                raise _fail(where, f'unknown step "{target}"')
    # Cycles must pass through a pause, otherwise a run would loop without end.
    graph = {s["id"]: [t for _, t in edges(s)] if not _is_pause(s) else [] for s in steps}
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        trail.append(node)
        for target in graph[node]:
            if state.get(target) == 1:
                loop = [*trail[trail.index(target):], target]
                raise _fail(f"steps[{index[target]}]", f"cycle without a wait: {' → '.join(loop)}")
            if target not in state:
                visit(target)
        trail.pop()
        state[node] = 2

    for step_id in graph:
        if step_id not in state:
            visit(step_id)
    reached: set[str] = set()
    todo = [start]
    while todo:
        node = todo.pop()
        if node in reached:
            continue
        reached.add(node)
        todo.extend(t for _, t in edges(steps[index[node]]))
    for i, step in enumerate(steps):
        if step["id"] not in reached:
            raise _fail(f"steps[{i}]", f'step "{step["id"]}" can never be reached from "{start}"')


def validate(workspace: Workspace, data: dict[str, Any]) -> dict[str, Any]:
    """Check a definition against the workspace; returns the normalised definition with
    every reference resolved to ids (what a published version stores)."""
    if not isinstance(data, dict):
        raise ValidationFailed("a journey definition is a mapping (name, trigger, steps)", code="invalid_definition")
    _known(data, {"name", "description", "audience", "trigger", "reentry", "start", "steps", "playbook", "time_zone", "params"}, "")
    name = _text(data, "name", "", required=True, size=100)
    audience = data.get("audience", "contact")
    if audience not in AUDIENCES:
        raise _fail("audience", f"contact or group (got {audience!r})")
    tz_name = data.get("time_zone") or workspace.time_zone
    try:
        zoneinfo.ZoneInfo(str(tz_name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise _fail("time_zone", f"unknown time zone {tz_name!r}") from exc
    trigger = _trigger(workspace, data.get("trigger", {"kind": "manual"}), audience)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise _fail("steps", "a journey needs at least one step")
    steps: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_steps):
        step = _step(workspace, raw, i, audience, str(tz_name))
        if step["id"] in seen:
            raise _fail(f"steps[{i}].id", f'duplicate step id "{step["id"]}" (also steps[{seen[step["id"]]}])')
        seen[step["id"]] = i
        steps.append(step)
    start = data.get("start") or steps[0]["id"]
    if start not in seen:
        raise _fail("start", f'unknown step "{start}"')
    _check_graph(steps, start)
    out: dict[str, Any] = {
        "name": name,
        "description": _text(data, "description", "", size=2000),
        "audience": audience,
        "time_zone": str(tz_name),
        "trigger": trigger,
        "reentry": _reentry(data.get("reentry")),
        "start": start,
        "steps": steps,
    }
    if data.get("playbook"):
        out["playbook"] = _text(data, "playbook", "", size=50)
    if isinstance(data.get("params"), dict):
        out["params"] = data["params"]
    return out


def step_map(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in definition["steps"]}
