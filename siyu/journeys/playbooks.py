"""Playbooks (运营剧本): journey templates shipped with siyu (``data/playbooks/*.yaml``)
that an operator instantiates with a date, a group set and a time zone.

A template is YAML with ``[[param]]`` placeholders, filled in as text before parsing,
and waits written relative to the event time T: ``until: {day: -3, time: "10:00"}``
(10:00 local, three local days before T) or ``until: {offset: "-1h"}``. Instantiating
turns them into absolute ``until_at`` waits, so the published version is the exact
schedule and a later edit of the template changes nothing already running.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path
from typing import Any

import yaml
from django.db import transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.models import Workspace
from siyu.journeys.definition import parse_duration, parse_time_of_day

PLAYBOOK_DIR = Path(__file__).resolve().parent / "data" / "playbooks"
_FORBIDDEN = ('"', "\\", "\n", "\r", "[[", "]]")
_PLACEHOLDER = re.compile(r"\[\[([a-z_]+)\]\]")


def _read(name: str) -> tuple[str, dict[str, Any]]:
    path = PLAYBOOK_DIR / f"{name}.yaml"
    if not name.replace("_", "").isalnum() or not path.is_file():
        raise NotFound(f"unknown playbook {name!r} (one of: {', '.join(playbook_names())})", code="playbook_not_found")
    text = path.read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def playbook_names() -> list[str]:
    return sorted(p.stem for p in PLAYBOOK_DIR.glob("*.yaml"))


def list_playbooks() -> list[dict[str, Any]]:
    """What each shipped playbook is and what it asks for."""
    out = []
    for name in playbook_names():
        _text, head = _read(name)
        out.append({
            "name": name, "title": head.get("title", name), "description": head.get("description", ""),
            "needs": list(head.get("needs") or []), "params": dict(head.get("params") or {}),
            "journeys": [j.get("name", "") for j in head.get("journeys") or []],
        })
    return out


def _params(head: dict[str, Any], given: dict[str, Any] | None) -> dict[str, str]:
    defaults = dict(head.get("params") or {})
    given = dict(given or {})
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ValidationFailed(f"params.{unknown[0]}: unknown parameter (known: {', '.join(sorted(defaults))})", code="invalid_params")
    out: dict[str, str] = {}
    for key, default in defaults.items():
        value = given.get(key, default)
        if value is None or (value == "" and default is None):
            raise ValidationFailed(f"params.{key}: is required", code="invalid_params")
        if isinstance(default, int) and not isinstance(default, bool):
            try:
                value = int(value)
            except (TypeError, ValueError) as exc:
                raise ValidationFailed(f"params.{key}: a whole number is required", code="invalid_params") from exc
        text = str(value)
        if any(bad in text for bad in _FORBIDDEN) or len(text) > 200:
            raise ValidationFailed(f"params.{key}: must be one line of at most 200 characters without quotes or backslashes",
                                   code="invalid_params")
        out[key] = text
    return out


def parse_event_time(value: dt.datetime | str, tz_name: str) -> dt.datetime:
    """``2026-12-12 20:00`` (local to ``tz_name``) or an aware datetime."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValidationFailed(f"date: not a date and time: {value!r} (use 2026-12-12T20:00)", code="invalid_date") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(tz_name))
    return value.astimezone(zoneinfo.ZoneInfo(tz_name))


def _absolute(until: Any, event_at: dt.datetime, path: str) -> dt.datetime:
    if not isinstance(until, dict):
        raise ValidationFailed(f"{path}: until is {{day: N, time: HH:MM}} or {{offset: ±duration}}", code="invalid_playbook")
    if "offset" in until:
        text = str(until["offset"]).strip()
        sign = -1 if text.startswith("-") else 1
        body = text.lstrip("+-")
        seconds = 0 if body.rstrip("smhdw") in ("0", "") else parse_duration(body, path)
        return event_at + sign * dt.timedelta(seconds=seconds)
    hour, minute = (int(p) for p in parse_time_of_day(until.get("time"), f"{path}.time").split(":"))
    day = event_at.date() + dt.timedelta(days=int(until.get("day", 0)))
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=event_at.tzinfo)


def _resolve_waits(journey: dict[str, Any], event_at: dt.datetime | None, now: dt.datetime, where: str) -> tuple[dict[str, Any], list[str]]:
    """Relative waits → ``until_at``; a send whose moment has already passed is dropped
    (with its wait) rather than fired late, and reported. Group journeys are linear."""
    steps = journey.get("steps") or []
    dropped: list[str] = []
    resolved: list[dict[str, Any]] = []
    late = False
    for i, step in enumerate(steps):
        step = dict(step)
        if step.get("type") == "wait" and "until" in step:
            if event_at is None:
                raise ValidationFailed(f"{where}.steps[{i}]: this playbook needs a date", code="date_required")
            until = _absolute(step.pop("until"), event_at, f"{where}.steps[{i}].until")
            late = until < now
            if late:
                dropped.append(step["id"])
                continue
            step["until_at"] = until.isoformat()
        elif step.get("type") == "send" and late:
            dropped.append(step["id"])
            continue
        resolved.append(step)
    if dropped:
        # Re-link the survivors in order: the templates that use relative waits are lines.
        for i, step in enumerate(resolved):
            if isinstance(step.get("next"), str) or "next" in step:
                step["next"] = resolved[i + 1]["id"] if i + 1 < len(resolved) else ""
    return {**journey, "steps": resolved}, dropped


def render(
    name: str, workspace: Workspace, *, event_at: dt.datetime | str | None, time_zone: str | None = None,
    params: dict[str, Any] | None = None, now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The journey definitions a playbook would create (not saved), with its schedule."""
    text, head = _read(name)
    tz_name = time_zone or workspace.time_zone
    try:
        zoneinfo.ZoneInfo(tz_name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationFailed(f"time_zone: unknown time zone {tz_name!r}", code="invalid_time_zone") from exc
    now = now or timezone.now()
    values = _params(head, params)
    when = parse_event_time(event_at, tz_name) if event_at not in (None, "") else None  # type: ignore[arg-type]
    if "date" in (head.get("needs") or []):
        if when is None:
            raise ValidationFailed("date: this playbook needs the event's date and time", code="date_required")
        if when <= now:
            raise ValidationFailed(f"date: {when:%Y-%m-%d %H:%M} has already passed", code="date_passed")
    if when is not None:
        hours = float(values.get("duration_hours", "0") or 0)
        values.update(
            date=f"{when:%Y-%m-%d}", date_cn=f"{when.month}月{when.day}日", time=f"{when:%H:%M}", start=when.isoformat(),
            end=(when + dt.timedelta(hours=hours)).isoformat(),
        )
    values["now"] = now.astimezone(zoneinfo.ZoneInfo(tz_name)).isoformat()
    for key, value in values.items():
        text = text.replace(f"[[{key}]]", value)
    missing = _PLACEHOLDER.search(text)
    if missing is not None:
        raise ValidationFailed(f"params.{missing.group(1)}: is required", code="invalid_params")
    data = yaml.safe_load(text)
    journeys, dropped = [], []
    for i, journey in enumerate(data.get("journeys") or []):
        journey = {**journey, "playbook": name, "time_zone": tz_name}
        journey, late = _resolve_waits(journey, when, now, f"journeys[{i}]")
        journeys.append(journey)
        dropped.extend(late)
    return {"playbook": name, "title": data.get("title", name), "event_at": when, "time_zone": tz_name, "journeys": journeys,
            "dropped_steps": dropped, "creates_sale_group": bool(data.get("creates_sale_group")), "params": values}


def schedule_of(definition: dict[str, Any]) -> list[dict[str, Any]]:
    """The timed posts of a linear group journey: (step, local time, class, text)."""
    tz = zoneinfo.ZoneInfo(definition.get("time_zone") or "Asia/Shanghai")
    at: dt.datetime | None = None
    out = []
    for step in definition["steps"]:
        if step["type"] == "wait" and "until_at" in step:
            at = dt.datetime.fromisoformat(step["until_at"]).astimezone(tz)
        elif step["type"] == "send":
            out.append({"step": step["id"], "at": at.isoformat() if at else None, "message_class": step["message_class"],
                        "text": step["content"].get("text", "")})
        elif step["type"] in ("invite_responders", "report"):
            out.append({"step": step["id"], "at": at.isoformat() if at else None, "message_class": "", "text": step["type"]})
    return out


def _sale_group(workspace: Workspace, actor: Staff | None, groups: list[Any], title: str, event_at: dt.datetime) -> Any:
    """The temporary sale group (short-term, ends the day after the sale) on the first
    group's channel. A channel that cannot create groups (WeCom) gets a staff task."""
    from siyu.channels.actions import do_create_staff_task
    from siyu.channels.base import Capability, Command, CommandKind
    from siyu.channels.models import ChannelKind
    from siyu.channels.outbox import do_enqueue
    from siyu.channels.registry import adapter_for
    from siyu.communities.actions import do_create_group
    from siyu.communities.models import GroupType, Horizon

    account = next((g.channel_account for g in groups if g.channel_account is not None), None)
    name = f"{title} {event_at:%m-%d} 抢购群"[:100]
    if account is not None and not adapter_for(account).can(Capability.CREATE_GROUP):
        do_create_staff_task(
            workspace.pk, kind="playbook_sale_group", account=account, dedupe_key=f"playbook:sale-group:{name}",
            title=f"请新建客户群「{name}」（{title}抢购群），建好后在群设置里接入", detail={"name": name},
        )
        return None
    sandbox = account is not None and account.kind == ChannelKind.SANDBOX
    group = do_create_group(
        workspace, actor, name=name, channel_account=account, group_type=GroupType.CONVERSION, horizon=Horizon.SHORT_TERM,
        ends_on=event_at.date() + dt.timedelta(days=1), external_id=f"sbx-sale-{event_at:%Y%m%d%H%M}-{groups[0].pk}" if sandbox else "",
    )
    if account is not None and not sandbox:
        do_enqueue(account, Command(CommandKind.CREATE_GROUP, f"playbook-group:{group.pk}", "", {"name": name, "group_id": group.pk}))
    return group


def do_instantiate_playbook(
    workspace: Workspace,
    actor: Staff | None,
    name: str,
    *,
    event_at: dt.datetime | str | None = None,
    group_ids: list[int] | None = None,
    group_set_id: int | None = None,
    time_zone: str | None = None,
    params: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Create and publish the playbook's journeys; for a group playbook also the sale
    group (when it has one) and one run per group of the set. Records
    ``playbook.instantiated`` (and what the journey and group actions record)."""
    from siyu.communities.models import Group
    from siyu.journeys.actions import do_enrol_group, do_publish_journey, do_save_journey

    require(actor, Perm.MANAGE_JOURNEYS)
    now = now or timezone.now()
    rendered = render(name, workspace, event_at=event_at, time_zone=time_zone, params=params, now=now)
    ids = list(dict.fromkeys(group_ids or []))
    if group_set_id is not None:
        from siyu.outreach.models import GroupSet

        group_set = GroupSet.objects.get_in_workspace(workspace, pk=group_set_id)
        ids.extend(g for g in group_set.groups.values_list("pk", flat=True) if g not in ids)
    groups = list(Group.objects.in_workspace(workspace).filter(pk__in=ids, archived_at__isnull=True).order_by("id"))
    if len(groups) != len(ids):
        missing = sorted(set(ids) - {g.pk for g in groups})
        raise NotFound(f"group {missing[0]} not found (or archived)", code="group_not_found")
    group_journeys = [j for j in rendered["journeys"] if j.get("audience") == "group"]
    if group_journeys and not groups:
        raise ValidationFailed("groups: this playbook posts in groups; choose at least one", code="groups_required")
    result: dict[str, Any] = {"playbook": name, "journeys": [], "runs": [], "sale_group": None, "dropped_steps": rendered["dropped_steps"]}
    with transaction.atomic():
        sale_group = None
        if rendered["creates_sale_group"] and groups:
            sale_group = _sale_group(workspace, actor, groups, rendered["params"].get("title") or rendered["title"], rendered["event_at"])
            result["sale_group"] = sale_group.pk if sale_group is not None else None
        for definition in rendered["journeys"]:
            journey = do_save_journey(workspace, actor, definition, playbook=name)
            version = do_publish_journey(journey, actor, now=now)
            entry: dict[str, Any] = {"id": journey.pk, "name": journey.name, "version": version.number}
            if version.definition["audience"] == "group":
                entry["schedule"] = schedule_of(version.definition)
                for group in groups:
                    context = {"sale_group": sale_group.pk} if sale_group is not None else {}
                    run, why = do_enrol_group(journey, group, trigger_key=f"playbook:{group.pk}", actor=actor, now=now, context=context)
                    result["runs"].append({"group": group.pk, "run": run.pk if run else None, "refused": why})
            result["journeys"].append(entry)
        record_audit(workspace, actor, "playbook.instantiated", target_type="playbook", target_id=name,
                     summary=f"{name}: {len(result['journeys'])} journeys, {len(result['runs'])} group runs",
                     after={"event_at": rendered["event_at"].isoformat() if rendered["event_at"] else None, "groups": ids,
                            "params": params or {}})
    return result
