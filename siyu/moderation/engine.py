"""The moderation engine's read side: a workspace's (or group's) stored policy and word
lists compiled once and cached, and :func:`check_message`, the verdict for a message
without writing anything (``siyu moderation check``, ``POST /moderation/check``)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, F, Max, Q
from django.utils import timezone

from siyu.moderation.detectors import DetectorConfig, WordMatcher, detect
from siyu.moderation.policy import Decision, Policy, decide

__all__ = ["Loaded", "check_message", "invalidate", "load", "prior_strikes"]

#: how long a compiled configuration is trusted before its version is checked again;
#: edits in this process invalidate at once, other processes see them within this time
CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class Loaded:
    policy: Policy
    detectors: DetectorConfig


_cache: dict[tuple[int, int | None], tuple[float, tuple[Any, ...], Loaded]] = {}
_lock = threading.Lock()


def invalidate() -> None:
    """Forget compiled configurations (called by the actions that change them)."""
    with _lock:
        _cache.clear()
        _versions.clear()
        _detectors.clear()


_versions: dict[int, tuple[float, tuple[Any, ...]]] = {}
_detectors: dict[tuple[Any, ...], DetectorConfig] = {}


def _version(workspace_id: int) -> tuple[float, tuple[Any, ...]]:
    """The workspace's configuration version: word lists and policies of every scope,
    checked with two queries per workspace per ``CACHE_SECONDS`` (not per group: a
    batch touching 20 groups checks once). An edit anywhere in the workspace rebuilds
    its groups' configurations — edits are rare, messages are not."""
    from siyu.moderation.models import ModerationPolicy, WordList

    now = time.monotonic()
    hit = _versions.get(workspace_id)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit
    words = WordList.objects.filter(workspace_id=workspace_id).aggregate(n=Count("id"), at=Max("updated_at"))
    policies = ModerationPolicy.objects.filter(workspace_id=workspace_id).aggregate(n=Count("id"), at=Max("updated_at"))
    version = (words["n"], words["at"], policies["n"], policies["at"])
    with _lock:
        _versions[workspace_id] = (now, version)
    return now, version


def _build(workspace_id: int, group_id: int | None) -> Loaded:
    from siyu.moderation.models import ModerationPolicy, WordList

    scope = Q(group__isnull=True) | Q(group_id=group_id) if group_id else Q(group__isnull=True)
    config: dict[str, Any] = {}
    # the workspace default first, the group's own policy over it
    # (NULLs sort last on PostgreSQL unless told otherwise)
    for row in ModerationPolicy.objects.filter(scope, workspace_id=workspace_id).order_by(F("group_id").asc(nulls_first=True)):
        config.update(row.config)
    policy = Policy.from_config(config)
    entries = tuple(
        (word, wl.name, wl.kind)
        for wl in WordList.objects.filter(scope, workspace_id=workspace_id, is_active=True)
        for word in wl.words
    )
    # groups without lists or policies of their own share the workspace's compiled
    # detectors: one automaton, and one cache key for per-text results in a batch
    key = (entries, policy.own_domains, policy.own_qr_prefixes, policy.flood_count)
    detectors = _detectors.get(key)
    if detectors is None:
        detectors = DetectorConfig(WordMatcher(entries), policy.own_domains, policy.own_qr_prefixes, policy.flood_count)
        with _lock:
            if len(_detectors) > 64:  # versions edited elsewhere leave old keys behind
                _detectors.clear()
            _detectors[key] = detectors
    return Loaded(policy, detectors)


def load(workspace_id: int, group_id: int | None = None) -> Loaded:
    """The compiled policy and detectors for a group (or the workspace default)."""
    key = (workspace_id, group_id)
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < CACHE_SECONDS:
        return hit[2]
    # trusted from when the version was read, so an edit elsewhere shows within CACHE_SECONDS
    checked_at, version = _version(workspace_id)
    loaded = hit[2] if hit is not None and hit[1] == version else _build(workspace_id, group_id)
    with _lock:
        _cache[key] = (checked_at, version, loaded)
    return loaded


def prior_strikes(contact_id: int, window_days: int, *, now: dt.datetime | None = None) -> int:
    """Active (not appealed) strikes of a contact within the window."""
    from siyu.moderation.models import Strike

    since = (now or timezone.now()) - dt.timedelta(days=window_days)
    return Strike.objects.filter(contact_id=contact_id, cleared_at__isnull=True, created_at__gte=since).count()


def is_vip(contact_id: int, vip_tags: tuple[str, ...]) -> bool:
    from siyu.contacts.models import ContactTag

    return bool(vip_tags) and ContactTag.objects.filter(contact_id=contact_id, tag__name__in=vip_tags).exists()


def check_message(
    workspace_id: int,
    text: str,
    *,
    group_id: int | None = None,
    msgtype: str = "text",
    data: dict[str, Any] | None = None,
    image: bytes | None = None,
    contact_id: int | None = None,
    exempt: bool = False,
    repeats: int = 0,
) -> Decision:
    """The verdict for a message under the group's policy, without writing anything.
    With a contact, VIP allow-listing and repeat-offender escalation apply."""
    loaded = load(workspace_id, group_id)
    qr: list[str] = []
    if image:
        from siyu.moderation.qr import decode_qr

        qr = decode_qr(image)
    findings = detect(text, loaded.detectors, msgtype=msgtype, data=data, qr_payloads=qr, repeats=repeats)
    if not findings:
        return Decision(decide(()).verdict)
    policy = loaded.policy
    if contact_id is not None and not exempt:
        exempt = is_vip(contact_id, policy.vip_tags)
    strikes = prior_strikes(contact_id, policy.escalation.window_days) if contact_id is not None and not exempt else 0
    return decide(findings, policy.actions, exempt=exempt, escalation=policy.escalation, prior_strikes=strikes)
