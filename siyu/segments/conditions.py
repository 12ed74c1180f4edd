"""The segment definition language (人群包条件), shared with journey conditions.

A definition is a JSON-able tree::

    {"all": [C, ...]}   {"any": [C, ...]}   {"not": C}

with leaves::

    {"tags": {"all": [..], "any": [..], "none": [..]}}          names, group/name or ids
    {"field": "city", "op": "eq|ne|in|contains|gte|lte|exists|missing", "value": ...}
    {"lifecycle_stage": ["new", ...]}       {"rfm_segment": ["champions", ...]}
    {"group": {"ids": [..], "role": [..] | null, "in": true}}
    {"channel": [acquisition channel ids]}  {"campaign": [campaign ids]}
    {"event": {"kind": "order", "min": 2, "max": null, "within_days": 90}}
    {"p_alive": {"lt": 0.3}}                {"segment": <id>}   (its STORED membership)

``validate_definition`` normalises (tag names → ids, defaults filled in) and names the
path of the first error (``all[1].tags.any: unknown tag "VIP2"``). ``evaluate`` compiles
the tree to one SQL query (Exists / IN sub-queries, GROUP BY … HAVING for event counts);
only the model-based leaves (RFM segment, P(alive)) are computed in Python, once per
evaluation, and then combined as id sets. Merged duplicates are never members.

``dependencies`` says which timeline event kinds can change a definition's answer, so
incremental updates re-evaluate only the segments an event can affect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from siyu.contacts.errors import AmbiguousTag, UnknownTag
from siyu.contacts.events import EventKind
from siyu.contacts.models import Contact, ContactEvent, ContactTag, LifecycleStage, ProfileField
from siyu.contacts.queries import resolve_tags
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace

CONTACT_FIELDS = (
    "name", "gender", "region", "city", "lifecycle_stage", "source_channel", "source_campaign", "external_ref",
    "birthday", "created_at", "owner_id",
)
# Contact columns that may be NULL: their conditions go through a sub-query so that
# "not" and "ne" stay two-valued (SQL NULL would drop the row from both sides).
_NULLABLE_FIELDS = ("birthday", "owner_id")
OPERATORS = ("eq", "ne", "in", "contains", "gte", "lte", "exists", "missing")
LEAVES = ("tags", "field", "lifecycle_stage", "rfm_segment", "group", "channel", "campaign", "event", "p_alive", "segment")
MAX_DEPTH = 8
MAX_NODES = 200
MAX_WINDOW_DAYS = 3650
# Restricted evaluations are chunked so "pk IN (...)" stays far below SQLite's limit.
CHUNK = 5000

# Event kinds whose effect on a definition is known exactly; any other kind (added,
# updated, merged, stage_changed, kinds other apps add later) may change any fact and
# makes every dynamic segment re-check the contact.
NARROW_KINDS = frozenset({
    EventKind.MESSAGE, EventKind.ORDER, EventKind.SCAN, EventKind.TAGGED, EventKind.UNTAGGED,
    EventKind.JOINED_GROUP, EventKind.LEFT_GROUP, EventKind.CONSENT, EventKind.OWNER_CHANGED,
    EventKind.SEGMENT_ENTERED, EventKind.SEGMENT_LEFT,
})


def _fail(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}" if path else message, code="invalid_definition", details={"path": path})


def _int_list(value: Any, path: str, what: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise _fail(path, f"must be a non-empty list of {what}")
    out: list[int] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | str) or not str(item).strip().isdigit():
            raise _fail(path, f"{item!r} is not a {what.rstrip('s')} id")
        if int(item) not in out:
            out.append(int(item))
    return out


def _str_list(value: Any, path: str, allowed: Sequence[str], what: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _fail(path, f"must be a non-empty list of {what}")
    out: list[str] = []
    for item in value:
        if item not in allowed:
            raise _fail(path, f"unknown {what.rstrip('s')} {item!r}; use one of {', '.join(allowed)}")
        if item not in out:
            out.append(item)
    return out


class _Validator:
    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace
        self.nodes = 0
        self._profile_fields: dict[str, str] | None = None

    def profile_fields(self) -> dict[str, str]:
        if self._profile_fields is None:
            self._profile_fields = dict(ProfileField.objects.in_workspace(self.workspace).values_list("key", "field_type"))
        return self._profile_fields

    def node(self, node: Any, path: str, depth: int) -> dict[str, Any]:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _fail(path, f"a definition may have at most {MAX_NODES} conditions")
        if depth > MAX_DEPTH:
            raise _fail(path, f"conditions may nest at most {MAX_DEPTH} deep")
        if isinstance(node, dict) and "field" in node:
            # The only leaf with several keys of its own.
            return self.field(node, path)
        if not isinstance(node, dict) or len(node) != 1:
            raise _fail(path, "a condition is an object with exactly one key: all, any, not or a leaf (" + ", ".join(LEAVES) + ")")
        (key, value), = node.items()
        where = f"{path}." if path else ""
        if key in ("all", "any"):
            if not isinstance(value, list) or not value:
                raise _fail(f"{where}{key}", "must be a non-empty list of conditions")
            return {key: [self.node(child, f"{where}{key}[{i}]", depth + 1) for i, child in enumerate(value)]}
        if key == "not":
            return {"not": self.node(value, f"{where}not", depth + 1)}
        method = getattr(self, f"leaf_{key}", None)
        if key not in LEAVES or method is None:
            raise _fail(path, f"unknown condition {key!r}; use all, any, not or one of {', '.join(LEAVES)}")
        return {key: method(value, f"{where}{key}")}

    def leaf_tags(self, value: Any, path: str) -> dict[str, list[int]]:
        if not isinstance(value, dict) or not value or set(value) - {"all", "any", "none"}:
            raise _fail(path, "must be an object with all, any and/or none")
        out: dict[str, list[int]] = {"all": [], "any": [], "none": []}
        for part in ("all", "any", "none"):
            refs = value.get(part) or []
            if not isinstance(refs, list):
                raise _fail(f"{path}.{part}", "must be a list of tags")
            for ref in refs:
                try:
                    tag = resolve_tags(self.workspace, [ref])
                except (UnknownTag, AmbiguousTag) as exc:
                    text = str(ref).strip()
                    reason = f'unknown tag "{text}"' if isinstance(exc, UnknownTag) else exc.message
                    raise _fail(f"{path}.{part}", reason) from exc
                if not tag:
                    raise _fail(f"{path}.{part}", "a tag reference is empty")
                if tag[0].pk not in out[part]:
                    out[part].append(tag[0].pk)
        if not any(out.values()):
            raise _fail(path, "name at least one tag")
        return out

    def leaf_lifecycle_stage(self, value: Any, path: str) -> list[str]:
        return _str_list(value, path, LifecycleStage.values, "stages")

    def leaf_rfm_segment(self, value: Any, path: str) -> list[str]:
        from siyu.analytics.rfm import SEGMENTS

        return _str_list(value, path, list(SEGMENTS), "RFM segments")

    def leaf_group(self, value: Any, path: str) -> dict[str, Any]:
        from siyu.communities.models import Group, MemberRole

        if not isinstance(value, dict) or set(value) - {"ids", "role", "in"}:
            raise _fail(path, "must be an object with ids, role and in")
        ids: list[int] = []
        if value.get("ids"):
            ids = _int_list(value["ids"], f"{path}.ids", "groups")
            found = set(Group.objects.in_workspace(self.workspace).filter(pk__in=ids).values_list("pk", flat=True))
            missing = [i for i in ids if i not in found]
            if missing:
                raise _fail(f"{path}.ids", f"unknown group {missing[0]}")
        roles = _str_list(value["role"], f"{path}.role", MemberRole.values, "roles") if value.get("role") else None
        inside = value.get("in", True)
        if not isinstance(inside, bool):
            raise _fail(f"{path}.in", "must be true or false")
        return {"ids": ids, "role": roles, "in": inside}

    def leaf_channel(self, value: Any, path: str) -> list[int]:
        from siyu.acquisition.models import AcquisitionChannel

        return self._ids_of(AcquisitionChannel, value, path, "channels")

    def leaf_campaign(self, value: Any, path: str) -> list[int]:
        from siyu.campaigns.models import Campaign

        return self._ids_of(Campaign, value, path, "campaigns")

    def _ids_of(self, model: Any, value: Any, path: str, what: str) -> list[int]:
        ids = _int_list(value, path, what)
        found = set(model.objects.in_workspace(self.workspace).filter(pk__in=ids).values_list("pk", flat=True))
        missing = [i for i in ids if i not in found]
        if missing:
            raise _fail(path, f"unknown {what.rstrip('s')} {missing[0]}")
        return ids

    def leaf_event(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict) or set(value) - {"kind", "min", "max", "within_days"}:
            raise _fail(path, "must be an object with kind, min, max and within_days")
        kind = value.get("kind")
        if not isinstance(kind, str) or not kind.strip() or len(kind) > 32:
            raise _fail(f"{path}.kind", "must name an event kind (order, message, ...)")
        # "no message in 30 days" is just {"max": 0}: min defaults to 1 only without a max.
        default_min = 1 if value.get("max") is None else 0
        out: dict[str, Any] = {"kind": kind.strip(), "min": value.get("min", default_min), "max": value.get("max"),
                               "within_days": value.get("within_days")}
        for name in ("min", "max", "within_days"):
            number = out[name]
            if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 0):
                raise _fail(f"{path}.{name}", "must be a whole number ≥ 0")
        if out["min"] is None:
            out["min"] = 0
        if out["max"] is not None and out["max"] < out["min"]:
            raise _fail(f"{path}.max", f"must be ≥ min ({out['min']})")
        if out["within_days"] is not None and not 1 <= out["within_days"] <= MAX_WINDOW_DAYS:
            raise _fail(f"{path}.within_days", f"must be between 1 and {MAX_WINDOW_DAYS}")
        if out["min"] == 0 and out["max"] is None:
            raise _fail(path, "min 0 without max matches everyone; give min ≥ 1 or a max")
        return out

    def leaf_p_alive(self, value: Any, path: str) -> dict[str, float]:
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("lt", "gt"):
            raise _fail(path, 'must be {"lt": x} or {"gt": x}')
        (op, bound), = value.items()
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not 0 <= bound <= 1:
            raise _fail(f"{path}.{op}", "must be a probability between 0 and 1")
        return {op: float(bound)}

    def leaf_segment(self, value: Any, path: str) -> int:
        from siyu.segments.models import Segment

        ref = _int_list([value], path, "segments")[0]
        if not Segment.objects.in_workspace(self.workspace).filter(pk=ref).exists():
            raise _fail(path, f"unknown segment {ref}")
        return ref

    def field(self, node: dict[str, Any], at: str) -> dict[str, Any]:
        path = f"{at}." if at else ""
        if set(node) - {"field", "op", "value"}:
            raise _fail(at, "a field condition has field, op and value")
        name = node.get("field")
        if not isinstance(name, str):
            raise _fail(f"{path}field", "must be a field name")
        name = name.removeprefix("profile.")
        if name not in CONTACT_FIELDS and name not in self.profile_fields():
            known = ", ".join([*CONTACT_FIELDS, *sorted(self.profile_fields())])
            raise _fail(f"{path}field", f"unknown field {name!r}; use one of {known}")
        op = node.get("op", "eq")
        if op not in OPERATORS:
            raise _fail(f"{path}op", f"unknown operator {op!r}; use one of {', '.join(OPERATORS)}")
        value = node.get("value")
        if op in ("exists", "missing"):
            value = None
        elif op == "in":
            if not isinstance(value, list) or not value:
                raise _fail(f"{path}value", "in needs a non-empty list")
        elif op in ("gte", "lte"):
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise _fail(f"{path}value", f"{op} needs a number or a date")
        elif op == "contains":
            if not isinstance(value, str) or not value:
                raise _fail(f"{path}value", "contains needs some text")
        elif value is None or isinstance(value, dict | list):
            raise _fail(f"{path}value", f"{op} needs a single value")
        if name in ("birthday", "created_at") and op in ("eq", "ne", "gte", "lte"):
            try:
                dt.date.fromisoformat(str(value)[:10])
            except ValueError as exc:
                raise _fail(f"{path}value", f"{name} needs a date (YYYY-MM-DD)") from exc
        return {"field": name, "op": op, "value": value}


def validate_definition(workspace: Workspace, definition: Any, *, for_segment: int | None = None) -> dict[str, Any]:
    """Check a definition against the workspace (tags, groups, channels, campaigns,
    segments exist; operators and numbers make sense) and return it normalised. Raises
    :class:`ValidationFailed` (code ``invalid_definition``) naming the path of the first
    problem. With ``for_segment``, also refuses references that would make that segment
    depend on itself."""
    if not isinstance(definition, dict) or not definition:
        raise _fail("", "a definition is a non-empty object")
    clean = _Validator(workspace).node(definition, "", 0)
    if for_segment is not None:
        _refuse_cycle(workspace, clean, for_segment)
    return clean


def _refuse_cycle(workspace: Workspace, definition: dict[str, Any], segment_id: int) -> None:
    from siyu.segments.models import Segment

    graph = {pk: referenced_segments(d) for pk, d in Segment.objects.in_workspace(workspace).values_list("pk", "definition")}
    graph[segment_id] = referenced_segments(definition)
    seen: set[int] = set()
    stack = list(graph[segment_id])
    while stack:
        current = stack.pop()
        if current == segment_id:
            raise ValidationFailed("a segment cannot depend on itself (directly or through other segments)", code="segment_cycle")
        if current not in seen:
            seen.add(current)
            stack.extend(graph.get(current, ()))


def _walk(definition: Any) -> Iterable[tuple[str, Any]]:
    if not isinstance(definition, dict):
        return
    if "field" in definition:
        yield "field", definition
        return
    for key, value in definition.items():
        if key in ("all", "any"):
            for child in value:
                yield from _walk(child)
        elif key == "not":
            yield from _walk(value)
        else:
            yield key, value


def referenced_segments(definition: Any) -> set[int]:
    """Ids of the segments whose stored membership a definition reads."""
    return {int(value) for key, value in _walk(definition) if key == "segment"}


@dataclass(frozen=True)
class Dependencies:
    """What can change a definition's answer for a contact."""

    kinds: frozenset[str] = frozenset()
    segments: frozenset[int] = frozenset()
    # True when the answer can change with no event at all (windows, predictions, roles
    # the community job infers): a scheduled pass must rebuild it.
    time_relative: bool = False

    def affected_by(self, kind: str, data: dict[str, Any]) -> bool:
        if kind in (EventKind.SEGMENT_ENTERED, EventKind.SEGMENT_LEFT):
            return data.get("segment_id") in self.segments
        if kind not in NARROW_KINDS:
            return True
        return kind in self.kinds


def dependencies(definition: Any) -> Dependencies:
    """The event kinds (and referenced segments) that can change ``definition``'s answer."""
    kinds: set[str] = set()
    segments: set[int] = set()
    time_relative = False
    for key, value in _walk(definition):
        if key == "tags":
            kinds |= {EventKind.TAGGED, EventKind.UNTAGGED}
        elif key == "field":
            if value["field"] == "owner_id":
                kinds.add(EventKind.OWNER_CHANGED)
        elif key == "event":
            kinds.add(value["kind"])
            time_relative |= value["within_days"] is not None
        elif key == "group":
            kinds |= {EventKind.JOINED_GROUP, EventKind.LEFT_GROUP}
            time_relative |= bool(value.get("role"))
        elif key in ("rfm_segment", "p_alive"):
            kinds.add(EventKind.ORDER)
            time_relative = True
        elif key == "segment":
            segments.add(int(value))
    return Dependencies(frozenset(kinds), frozenset(segments), time_relative)


Part = Q | set[int]


@dataclass
class _Compiler:
    workspace: Workspace
    now: dt.datetime
    scope: list[int] | None = None  # restrict to these contact ids
    _model_sets: dict[str, Any] = field(default_factory=dict)

    def universe(self) -> QuerySet[Contact]:
        qs = Contact.objects.in_workspace(self.workspace).filter(merged_into__isnull=True)
        if self.scope is not None:
            qs = qs.filter(pk__in=self.scope)
        return qs

    def ids(self, q: Q) -> set[int]:
        return set(self.universe().filter(q).values_list("pk", flat=True))

    def node(self, node: dict[str, Any]) -> Part:
        if "field" in node:
            return self.field(node)
        (key, value), = node.items()
        if key in ("all", "any"):
            parts = [self.node(child) for child in value]
            qs = [p for p in parts if isinstance(p, Q)]
            sets = [p for p in parts if not isinstance(p, Q)]
            combined: Q | None = None
            for q in qs:
                combined = q if combined is None else (combined & q if key == "all" else combined | q)
            if not sets:
                assert combined is not None
                return combined
            if key == "all":
                result = set.intersection(*sets)
                if combined is not None:
                    result &= self.ids(combined)
                return result
            result = set.union(*sets)
            if combined is not None:
                result |= self.ids(combined)
            return result
        if key == "not":
            inner = self.node(value)
            if isinstance(inner, Q):
                return ~inner
            return self.ids(Q()) - inner
        return getattr(self, f"leaf_{key}")(value)  # type: ignore[no-any-return]

    def _contacts_in(self, rows: QuerySet[Any], column: str = "contact_id") -> Q:
        """Contacts with a row in ``rows``. Over the whole workspace an IN (sub-query)
        is computed once; for a few contacts (incremental updates) a correlated EXISTS
        walks the per-contact indexes instead of scanning the workspace."""
        if self.scope is not None:
            return Q(Exists(rows.filter(**{column: OuterRef("pk")})))
        return Q(pk__in=rows.values(column))

    def leaf_tags(self, value: dict[str, list[int]]) -> Q:
        q = Q()
        for tag_id in value["all"]:
            q &= self._contacts_in(ContactTag.objects.filter(tag_id=tag_id))
        if value["any"]:
            q &= self._contacts_in(ContactTag.objects.filter(tag_id__in=value["any"]))
        if value["none"]:
            q &= ~self._contacts_in(ContactTag.objects.filter(tag_id__in=value["none"]))
        return q

    def field(self, node: dict[str, Any]) -> Q:
        name, op, value = node["field"], node["op"], node["value"]
        column = name if name in CONTACT_FIELDS else f"profile__{name}"
        if name in ("birthday", "created_at") and value is not None and op != "in":
            value = dt.date.fromisoformat(str(value)[:10])
            if name == "created_at":
                column = "created_at__date"
        if op in ("exists", "missing"):
            present = ~Q(**{column: ""}) & Q(**{f"{column}__isnull": False})
            if name in CONTACT_FIELDS and name not in _NULLABLE_FIELDS:
                q = ~Q(**{column: ""})
            elif name in CONTACT_FIELDS:
                q = Q(**{f"{column}__isnull": False})
            else:
                q = self._contacts_in(Contact.objects.in_workspace(self.workspace).filter(Q(profile__has_key=name) & present), "pk")
            return q if op == "exists" else ~q
        lookup = {"eq": "exact", "ne": "exact", "in": "in", "contains": "icontains", "gte": "gte", "lte": "lte"}[op]
        if name in ("region", "city", "name", "external_ref", "source_channel", "source_campaign") and op == "contains":
            lookup = "icontains"
        q = Q(**{f"{column}__{lookup}": value})
        if name not in CONTACT_FIELDS or name in _NULLABLE_FIELDS:
            q = self._contacts_in(Contact.objects.in_workspace(self.workspace).filter(q), "pk")
        return ~q if op == "ne" else q

    def leaf_lifecycle_stage(self, value: list[str]) -> Q:
        return Q(lifecycle_stage__in=value)

    def leaf_channel(self, value: list[int]) -> Q:
        from siyu.acquisition.models import AcquisitionChannel

        keys = list(AcquisitionChannel.objects.in_workspace(self.workspace).filter(pk__in=value).values_list("key", flat=True))
        return Q(source_channel__in=keys)

    def leaf_campaign(self, value: list[int]) -> Q:
        from siyu.campaigns.models import Campaign

        keys = list(Campaign.objects.in_workspace(self.workspace).filter(pk__in=value).values_list("key", flat=True))
        return Q(source_campaign__in=keys)

    def leaf_group(self, value: dict[str, Any]) -> Q:
        from siyu.communities.models import Membership

        members = Membership.objects.in_workspace(self.workspace).filter(left_at__isnull=True)
        if value["ids"]:
            members = members.filter(group_id__in=value["ids"])
        if value["role"]:
            members = members.filter(role__in=value["role"])
        q = self._contacts_in(members)
        return q if value["in"] else ~q

    def leaf_event(self, value: dict[str, Any]) -> Q:
        events = ContactEvent.objects.in_workspace(self.workspace).filter(kind=value["kind"])
        if value["within_days"] is not None:
            events = events.filter(occurred_at__gte=self.now - dt.timedelta(days=value["within_days"]))

        def at_least(n: int) -> Q:
            if n == 1:
                return self._contacts_in(events)
            if self.scope is not None:
                # EXISTS (… LIMIT 1 OFFSET n-1): stops at the n-th event of the contact.
                return Q(Exists(events.filter(contact_id=OuterRef("pk")).order_by()[n - 1:n]))
            counted = events.order_by().values("contact_id").annotate(n=Count("id")).filter(n__gte=n).values("contact_id")
            return Q(pk__in=counted)

        q = at_least(value["min"]) if value["min"] else Q()
        if value["max"] is not None:
            q &= ~at_least(value["max"] + 1)
        return q

    def leaf_segment(self, value: int) -> Q:
        from siyu.segments.models import SegmentMembership

        return self._contacts_in(
            SegmentMembership.objects.in_workspace(self.workspace).filter(segment_id=value, left_at__isnull=True)
        )

    def leaf_rfm_segment(self, value: list[str]) -> set[int]:
        table = self._model_sets.get("rfm")
        if table is None:
            from siyu.analytics.rfm import rfm_table
            from siyu.analytics.sources import WorkspaceSource
            from siyu.analytics.transactions import day_number
            from siyu.analytics.value import RFM_WINDOW_DAYS

            source = WorkspaceSource(self.workspace)
            log = source.transactions()
            table = {}
            if log.has_amounts and len(log):
                rfm = rfm_table(log, day_number(self.now.astimezone(self.workspace.tz).date()), RFM_WINDOW_DAYS)
                table = {int(k): str(s) for k, s in zip(rfm.customer_keys.tolist(), rfm.segment.tolist(), strict=True)}
            self._model_sets["rfm"] = table
        wanted = set(value)
        return {cid for cid, seg in table.items() if seg in wanted}

    def leaf_p_alive(self, value: dict[str, float]) -> set[int]:
        alive = self._model_sets.get("p_alive")
        if alive is None:
            from siyu.analytics.value import workspace_probability_alive

            alive = workspace_probability_alive(self.workspace, today=self.now.astimezone(self.workspace.tz).date())
            self._model_sets["p_alive"] = alive
        (op, bound), = value.items()
        return {cid for cid, p in alive.items() if (p < bound if op == "lt" else p > bound)}


def evaluate(
    workspace: Workspace, definition: dict[str, Any], contact_ids: Iterable[int] | None = None, *, now: dt.datetime | None = None
) -> set[int]:
    """The ids of the contacts (not merged away) that meet a validated definition —
    restricted to ``contact_ids`` when given. Read-only; a handful of queries whatever
    the number of contacts (chunked when ``contact_ids`` is long)."""
    now = now or timezone.now()
    if contact_ids is None:
        compiler = _Compiler(workspace, now)
        part = compiler.node(definition)
        return compiler.ids(part) if isinstance(part, Q) else part & compiler.ids(Q())
    ids = sorted(set(contact_ids))
    result: set[int] = set()
    shared: dict[str, Any] = {}
    for start in range(0, len(ids), CHUNK):
        compiler = _Compiler(workspace, now, ids[start:start + CHUNK], shared)
        part = compiler.node(definition)
        result |= compiler.ids(part) if isinstance(part, Q) else part & compiler.ids(Q())
    return result


def contact_matches(workspace: Workspace, definition: dict[str, Any], contact_id: int, *, now: dt.datetime | None = None) -> bool:
    """Does one contact meet the definition now? (Journey condition steps.)"""
    return contact_id in evaluate(workspace, definition, [contact_id], now=now)
