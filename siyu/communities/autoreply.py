"""Keyword auto-replies (关键词自动回复), the read and decision side (pure where it can
be): compiled rules per workspace, the first rule a message triggers, the cool-down per
rule per group and quiet hours. The writes (rules, firings, the reply in the outbox) are
the ``do_*`` actions in :mod:`siyu.communities.actions`.

Cool-down and quiet hours are judged at the message's own time (``sent_at``), not the
processing time, so a replayed or re-processed message decides exactly as it did.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max

from siyu.communities.models import AutoReplyMatch, AutoReplyRule
from siyu.core.errors import ValidationFailed

__all__ = ["CompiledRule", "Reply", "check_pattern", "decide", "invalidate", "rules_for", "triggered"]

#: only the start of a message is matched: bounds the cost of every regex at run time
MATCH_CHARS = 1000
MAX_PATTERN = 500
#: a regex must answer each probe within this time at save
PROBE_SECONDS = 0.02
CACHE_SECONDS = 2.0
# a quantified group that itself contains a quantifier: (a+)+, (\w*)*, (a|aa)+ ... the
# classic catastrophic-backtracking shapes
_NESTED = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]|\((?:[^()\\]|\\.)*\|(?:[^()\\]|\\.)*\)[+*{]")


def _probes(pattern: str) -> Iterable[str]:
    literals = {c for c in pattern if c.isalnum()} | {"a", "1", " ", "。"}
    for size in (8, 12, 16, 20, 24):
        for c in sorted(literals):
            yield c * size + "!"


def check_pattern(match: str, pattern: str) -> str:
    """Validate a rule's pattern at save: not empty, bounded length, and for a regex one
    that compiles, has no nested quantifiers and answers adversarial probes quickly (a
    regex that backtracks catastrophically would stall the pipeline)."""
    if match not in AutoReplyMatch.values:
        raise ValidationFailed(f"unknown match {match!r}; expected exact, contains or regex", code="invalid_match")
    pattern = (pattern or "").strip()
    if not pattern:
        raise ValidationFailed("a keyword or pattern is required", code="pattern_required")
    if len(pattern) > MAX_PATTERN:
        raise ValidationFailed(f"the pattern is longer than {MAX_PATTERN} characters", code="pattern_too_long")
    if match != AutoReplyMatch.REGEX:
        return pattern
    try:
        compiled = re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValidationFailed(f"invalid regular expression: {exc}", code="invalid_regex") from exc
    if _NESTED.search(pattern):
        raise ValidationFailed("the regular expression nests quantifiers (like (a+)+) and could hang the bot", code="unsafe_regex")
    for probe in _probes(pattern):
        started = time.perf_counter()
        compiled.search(probe)
        if time.perf_counter() - started > PROBE_SECONDS:
            raise ValidationFailed("the regular expression is too slow on some inputs", code="unsafe_regex")
    return pattern


@dataclass(frozen=True)
class CompiledRule:
    pk: int
    group_id: int | None
    match: str
    pattern: str
    reply: str
    cooldown_seconds: int
    priority: int
    regex: re.Pattern[str] | None

    def matches_head(self, head: str, folded: str) -> bool:
        """Whether the rule answers a message, given its start cut to ``MATCH_CHARS``
        (``head``) and case-folded (``folded``): a message is prepared once for all the
        rules (see :func:`triggered`)."""
        if self.match == AutoReplyMatch.EXACT:
            return folded.strip() == self.folded
        if self.match == AutoReplyMatch.CONTAINS:
            return self.folded in folded
        return self.regex is not None and self.regex.search(head) is not None

    @functools.cached_property
    def folded(self) -> str:
        return self.pattern.casefold()


_cache: dict[int, tuple[float, tuple[Any, ...], tuple[CompiledRule, ...]]] = {}
_lock = threading.Lock()


def invalidate() -> None:
    """Forget compiled rules (called after rules change)."""
    with _lock:
        _cache.clear()


def rules_for(workspace_id: int) -> tuple[CompiledRule, ...]:
    """The workspace's active rules, compiled, group rules before workspace-wide ones at
    equal priority. Cached; other processes see edits within ``CACHE_SECONDS``."""
    now = time.monotonic()
    hit = _cache.get(workspace_id)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[2]
    agg = AutoReplyRule.objects.filter(workspace_id=workspace_id).aggregate(n=Count("id"), at=Max("updated_at"))
    version = (agg["n"], agg["at"])
    if hit is not None and hit[1] == version:
        rules = hit[2]
    else:
        rows = AutoReplyRule.objects.filter(workspace_id=workspace_id, is_active=True).order_by("priority", "id")
        rules = tuple(
            CompiledRule(r.pk, r.group_id, r.match, r.pattern, r.reply, r.cooldown_seconds, r.priority,
                         re.compile(r.pattern, re.IGNORECASE) if r.match == AutoReplyMatch.REGEX else None)
            for r in rows
        )
        rules = tuple(sorted(rules, key=lambda r: (r.priority, r.group_id is None, r.pk)))
    with _lock:
        _cache[workspace_id] = (now, version, rules)
    return rules


def triggered(rules: Sequence[CompiledRule], group_id: int, text: str) -> list[CompiledRule]:
    """The rules (of this group or workspace-wide) the text triggers, in answer order."""
    if not text:
        return []
    head = text[:MATCH_CHARS]
    folded = head.casefold()
    return [r for r in rules if (r.group_id is None or r.group_id == group_id) and r.matches_head(head, folded)]


@dataclass(frozen=True)
class Reply:
    rule: CompiledRule
    not_before: dt.datetime | None  # set when deferred past quiet hours


def decide(
    rules: Sequence[CompiledRule],
    *,
    group_id: int,
    text: str,
    sent_at: dt.datetime,
    last_fired: Mapping[int, dt.datetime],
    settings: Mapping[str, Any],
    tz: dt.tzinfo,
) -> Reply | None:
    """The reply a message gets, if any (pure): the first triggered rule that is not
    cooling down in this group (``last_fired``: rule id → when it last answered here);
    during quiet hours none (``suppress``) or one sent when they end (``defer``).
    At most one reply per message."""
    from siyu.communities.group_settings import in_quiet_hours, quiet_hours_end

    if not settings["auto_replies_enabled"]:
        return None
    for rule in triggered(rules, group_id, text):
        last = last_fired.get(rule.pk)
        if last is not None and sent_at - last < dt.timedelta(seconds=rule.cooldown_seconds):
            continue
        quiet = settings["quiet_hours"]
        if in_quiet_hours(quiet, sent_at, tz):
            if settings["quiet_mode"] != "defer":
                return None
            return Reply(rule, quiet_hours_end(quiet, sent_at, tz))
        return Reply(rule, None)
    return None


def do_send_replies_in_bulk(items: Sequence[tuple[Any, Any, int, str, dt.datetime, Reply]]) -> dict[str, int]:
    """The batch twin of :func:`siyu.communities.actions.do_send_auto_replies`, same
    stored result: per ``(account, group, message_id, message_external_id, sent_at,
    reply)`` in message order, the rule's cool-down in that group restarts at the
    message's time (firing row created, or moved on and counted when the message is
    later) and the reply goes to the outbox under ``autoreply:<rule>:<message>`` — all
    with a few bulk statements and one delivery task. Returns outbox ids by key."""
    from django.db import transaction

    from siyu.channels.base import Command, CommandKind
    from siyu.channels.outbox import do_enqueue_many
    from siyu.communities.models import AutoReplyFiring

    if not items:
        return {}
    with transaction.atomic():
        pairs = {(reply.rule.pk, group.pk) for _a, group, _m, _e, _s, reply in items}
        stored = {(f.rule_id, f.group_id): f for f in AutoReplyFiring.objects.filter(
            rule_id__in={r for r, _g in pairs}, group_id__in={g for _r, g in pairs})}
        created: dict[tuple[int, int], AutoReplyFiring] = {}
        changed: dict[tuple[int, int], AutoReplyFiring] = {}
        commands = []
        for account, group, message_id, external_id, sent_at, reply in items:
            key = (reply.rule.pk, group.pk)
            firing = stored.get(key) or created.get(key)
            if firing is None:
                created[key] = AutoReplyFiring(workspace_id=group.workspace_id, rule_id=reply.rule.pk, group=group, last_fired_at=sent_at, fired=1)
            elif firing.last_fired_at < sent_at:
                firing.last_fired_at, firing.fired = sent_at, firing.fired + 1
                if key in stored:
                    changed[key] = firing
            commands.append((account, Command(CommandKind.SEND_MESSAGE, f"autoreply:{reply.rule.pk}:{message_id}", group.external_id,
                                              {"to": "group", "text": reply.rule.reply, "reply_to": external_id}), reply.not_before))
        AutoReplyFiring.objects.bulk_create(list(created.values()))
        if changed:
            AutoReplyFiring.objects.bulk_update(list(changed.values()), ["last_fired_at", "fired"])
        return do_enqueue_many(commands)
