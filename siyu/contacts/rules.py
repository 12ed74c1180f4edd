"""Automatic tagging rules (自动打标签): conditions on profile fields, tags and timeline
events; evaluated for a contact when its events arrive and for everyone by a scheduled
pass (for time-relative conditions such as "2+ orders in 90 days").

Each rule-given tag keeps the reason it was given, e.g.
``2 × order in the last 90 days (needs ≥ 2); city = 上海``.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.contacts.actions import _link_tags
from siyu.contacts.events import EventKind, record_timeline
from siyu.contacts.models import Contact, ContactEvent, ContactTag, Tag, TagRule, TagSource
from siyu.contacts.queries import resolve_tags
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace
from siyu.core.oncommit import on_commit_batched

CONTACT_FIELDS = ("gender", "region", "city", "lifecycle_stage", "source_channel", "source_campaign", "external_ref")
OPERATORS = ("eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte", "exists")
BATCH = 500


@dataclass(frozen=True)
class Outcome:
    met: bool
    reasons: tuple[str, ...]

    @property
    def explanation(self) -> str:
        return "; ".join(self.reasons)


def check_conditions(workspace: Workspace, conditions: Any) -> list[dict[str, Any]]:
    """Validate a rule's conditions; returns them cleaned or raises with the bad one."""
    if not isinstance(conditions, list) or not conditions:
        raise ValidationFailed("conditions must be a non-empty list", code="invalid_rule")
    clean: list[dict[str, Any]] = []
    for index, cond in enumerate(conditions):
        where = f"condition {index + 1}"
        if not isinstance(cond, dict):
            raise ValidationFailed(f"{where} must be an object", code="invalid_rule")
        if "event" in cond:
            kind = cond["event"]
            if not isinstance(kind, str) or not kind:
                raise ValidationFailed(f"{where}: event must be an event kind", code="invalid_rule")
            min_count = cond.get("min_count", 1)
            max_count = cond.get("max_count")
            within = cond.get("within_days")
            for name, value in (("min_count", min_count), ("max_count", max_count), ("within_days", within)):
                if value is not None and (not isinstance(value, int) or value < 0):
                    raise ValidationFailed(f"{where}: {name} must be a whole number ≥ 0", code="invalid_rule")
            if within is not None and within > 3650:
                raise ValidationFailed(f"{where}: within_days must be at most 3650", code="invalid_rule")
            clean.append({"event": kind, "min_count": min_count, "max_count": max_count, "within_days": within})
        elif "has_tag" in cond or "lacks_tag" in cond:
            key = "has_tag" if "has_tag" in cond else "lacks_tag"
            tag = resolve_tags(workspace, [cond[key]])[0]
            clean.append({key: tag.pk})
        elif "field" in cond:
            field = cond["field"]
            if not isinstance(field, str) or not (field in CONTACT_FIELDS or field.startswith("profile.")):
                raise ValidationFailed(
                    f"{where}: unknown field {field!r}; use one of {', '.join(CONTACT_FIELDS)} or profile.<key>", code="invalid_rule"
                )
            op = cond.get("op", "eq")
            if op not in OPERATORS:
                raise ValidationFailed(f"{where}: unknown operator {op!r}", code="invalid_rule")
            value = cond.get("value")
            if op in ("in", "not_in") and not isinstance(value, list):
                raise ValidationFailed(f"{where}: {op} needs a list value", code="invalid_rule")
            if op in ("gt", "gte", "lt", "lte") and not isinstance(value, int | float):
                raise ValidationFailed(f"{where}: {op} needs a number", code="invalid_rule")
            clean.append({"field": field, "op": op, "value": value})
        else:
            raise ValidationFailed(f"{where} needs one of: field, event, has_tag, lacks_tag", code="invalid_rule")
    return clean


def _field_value(contact: Contact, field: str) -> Any:
    if field.startswith("profile."):
        return contact.profile.get(field.removeprefix("profile."))
    return getattr(contact, field)


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op == "exists":
        return actual not in (None, "")
    if op == "eq":
        return bool(actual == expected)
    if op == "ne":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == "not_in":
        return actual not in expected
    if op == "contains":
        return isinstance(actual, str) and str(expected) in actual
    try:
        a, b = float(actual), float(expected)
    except (TypeError, ValueError):
        return False
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]


class _Facts:
    """Per-batch facts the conditions need, fetched with one grouped query per need."""

    def __init__(self, contact_ids: Sequence[int], rules: Sequence[TagRule], now: dt.datetime) -> None:
        self.now = now
        self.tags: dict[int, set[int]] = defaultdict(set)
        for cid, tid in ContactTag.objects.filter(contact_id__in=contact_ids).values_list("contact_id", "tag_id"):
            self.tags[cid].add(tid)
        self.rule_links: dict[tuple[int, int], ContactTag] = {}
        self.event_counts: dict[tuple[str, int | None], dict[int, int]] = {}
        wanted = {(c["event"], c["within_days"]) for r in rules for c in r.conditions if "event" in c}
        for kind, within in wanted:
            qs = ContactEvent.objects.filter(contact_id__in=contact_ids, kind=kind)
            if within is not None:
                qs = qs.filter(occurred_at__gte=now - dt.timedelta(days=within))
            self.event_counts[(kind, within)] = dict(qs.values("contact_id").annotate(n=Count("id")).values_list("contact_id", "n"))


def evaluate(rule: TagRule, contact: Contact, facts: _Facts, tag_names: dict[int, str]) -> Outcome:
    results: list[tuple[bool, str]] = []
    for cond in rule.conditions:
        if "event" in cond:
            count = facts.event_counts[(cond["event"], cond["within_days"])].get(contact.pk, 0)
            window = f" in the last {cond['within_days']} days" if cond["within_days"] is not None else ""
            ok = count >= (cond["min_count"] or 0) and (cond["max_count"] is None or count <= cond["max_count"])
            need = f"≥ {cond['min_count']}" if cond["max_count"] is None else f"{cond['min_count']}–{cond['max_count']}"
            results.append((ok, f"{count} × {cond['event']}{window} (needs {need})"))
        elif "has_tag" in cond:
            ok = cond["has_tag"] in facts.tags[contact.pk]
            results.append((ok, f"{'has' if ok else 'lacks'} tag {tag_names.get(cond['has_tag'], cond['has_tag'])}"))
        elif "lacks_tag" in cond:
            ok = cond["lacks_tag"] not in facts.tags[contact.pk]
            results.append((ok, f"{'lacks' if ok else 'has'} tag {tag_names.get(cond['lacks_tag'], cond['lacks_tag'])}"))
        else:
            actual = _field_value(contact, cond["field"])
            ok = _compare(actual, cond["op"], cond["value"])
            shown = "∅" if actual in (None, "") else actual
            results.append((ok, f"{cond['field']} = {shown} ({cond['op']} {cond['value'] if cond['op'] != 'exists' else ''})".rstrip()))
    met = all(ok for ok, _ in results) if rule.match == "all" else any(ok for ok, _ in results)
    reasons = tuple(text for ok, text in results if ok == met) or tuple(text for _, text in results)
    return Outcome(met=met, reasons=reasons)


def explain_contact(contact: Contact) -> list[dict[str, Any]]:
    """For each active rule of the workspace: would it tag this contact now, and why."""
    rules = list(TagRule.objects.in_workspace(contact.workspace_id).filter(is_active=True).select_related("tag", "tag__group"))
    facts = _Facts([contact.pk], rules, timezone.now())
    names = _tag_names(contact.workspace_id)
    out = []
    for rule in rules:
        outcome = evaluate(rule, contact, facts, names)
        out.append({"rule_id": rule.pk, "rule": rule.name, "tag": str(rule.tag), "met": outcome.met, "explanation": outcome.explanation})
    return out


def _tag_names(workspace_id: int) -> dict[int, str]:
    return {t.pk: f"{t.group.name}/{t.name}" for t in Tag.objects.in_workspace(workspace_id).select_related("group")}


def do_create_tag_rule(
    workspace: Workspace,
    actor: Staff | None,
    *,
    name: str,
    tag: Tag,
    conditions: Any,
    match: str = "all",
    remove_when_unmet: bool = False,
) -> TagRule:
    """Create an automatic tagging rule. Records ``tag_rule.created``; the first pass runs
    in the worker right after commit."""
    require(actor, Perm.MANAGE_RULES)
    if tag.workspace_id != workspace.pk:
        raise ValidationFailed("unknown tag", code="unknown_tag")
    if match not in ("all", "any"):
        raise ValidationFailed("match must be 'all' or 'any'", code="invalid_rule")
    clean = check_conditions(workspace, conditions)
    with transaction.atomic():
        rule = TagRule.objects.create(
            workspace=workspace, name=name.strip() or str(tag), tag=tag, conditions=clean, match=match, remove_when_unmet=remove_when_unmet
        )
        record_audit(workspace, actor, "tag_rule.created", target=rule, after={"tag": str(tag), "conditions": clean, "match": match})
        schedule_full_pass(workspace.pk)
    return rule


def schedule_full_pass(workspace_id: int) -> None:
    """After commit, run the workspace's rules over every contact — once, however many
    rules the transaction created (the demo creates several in one go)."""

    def _full_pass(_: set[Any]) -> None:
        from siyu.worker.tasks import run_tag_rules_task

        run_tag_rules_task(workspace_id)

    on_commit_batched("tag_rules_full_pass", workspace_id, (), _full_pass)


def do_update_tag_rule(rule: TagRule, actor: Staff | None, *, conditions: Any = None, is_active: bool | None = None, name: str | None = None) -> TagRule:
    """Change a rule's conditions, name or active flag. Records ``tag_rule.updated``."""
    require(actor, Perm.MANAGE_RULES)
    before = {"conditions": rule.conditions, "is_active": rule.is_active, "name": rule.name}
    fields = []
    if conditions is not None:
        rule.conditions = check_conditions(rule.workspace, conditions)
        fields.append("conditions")
    if is_active is not None:
        rule.is_active = is_active
        fields.append("is_active")
    if name is not None:
        rule.name = name
        fields.append("name")
    with transaction.atomic():
        rule.save(update_fields=fields)
        record_audit(rule.workspace, actor, "tag_rule.updated", target=rule, before=before,
                     after={"conditions": rule.conditions, "is_active": rule.is_active, "name": rule.name})
    return rule


def do_apply_tag_rules(workspace_id: int, contact_ids: Iterable[int] | None = None) -> dict[str, int]:
    """Evaluate the workspace's active rules for some contacts (or all, in batches) and add
    or remove rule tags. Idempotent: a second run with unchanged facts changes nothing.
    Each change records a timeline event with the rule's explanation; a pass that changed
    anything records one ``tag_rules.applied`` audit entry."""
    rules = list(TagRule.objects.in_workspace(workspace_id).filter(is_active=True).select_related("tag", "tag__group"))
    totals = {"contacts": 0, "added": 0, "removed": 0}
    if not rules:
        return totals
    workspace = Workspace.objects.get(pk=workspace_id)
    names = _tag_names(workspace_id)
    base = Contact.objects.in_workspace(workspace_id).filter(merged_into__isnull=True).order_by("pk")
    if contact_ids is not None:
        base = base.filter(pk__in=list(contact_ids))
    last_pk = 0
    now = timezone.now()
    while True:
        batch = list(base.filter(pk__gt=last_pk)[:BATCH])
        if not batch:
            break
        last_pk = batch[-1].pk
        totals["contacts"] += len(batch)
        with transaction.atomic():
            facts = _Facts([c.pk for c in batch], rules, now)
            rule_links = {
                (link.contact_id, link.rule_id): link
                for link in ContactTag.objects.filter(contact__in=batch, source=TagSource.RULE).select_related("contact", "tag")
            }
            for rule in rules:
                to_add: dict[str, list[Contact]] = defaultdict(list)
                for contact in batch:
                    outcome = evaluate(rule, contact, facts, names)
                    has = rule.tag_id in facts.tags[contact.pk]
                    if outcome.met and not has:
                        to_add[outcome.explanation].append(contact)
                        facts.tags[contact.pk].add(rule.tag_id)
                    elif not outcome.met and rule.remove_when_unmet and (contact.pk, rule.pk) in rule_links:
                        link = rule_links.pop((contact.pk, rule.pk))
                        record_timeline(
                            contact, EventKind.UNTAGGED, idempotency_key=f"rule-untag:{link.pk}",
                            data={"tag": names.get(rule.tag_id), "rule": rule.name, "reason": outcome.explanation},
                        )
                        link.delete()
                        facts.tags[contact.pk].discard(rule.tag_id)
                        totals["removed"] += 1
                for explanation, contacts in to_add.items():
                    totals["added"] += _link_tags(
                        workspace, None, contacts, [rule.tag], source=TagSource.RULE, rule=rule, reason=f"{rule.name}: {explanation}"
                    )
            if contact_ids is None:
                TagRule.objects.filter(pk__in=[r.pk for r in rules]).update(last_run_at=now)
    if totals["added"] or totals["removed"]:
        record_audit(workspace, None, "tag_rules.applied", summary=f"+{totals['added']} −{totals['removed']} over {totals['contacts']} contacts", after=totals)
    return totals
