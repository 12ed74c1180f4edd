"""Reads of segments: membership, visible members, previews, size history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from siyu.accounts.models import Staff
from siyu.contacts.models import Contact
from siyu.contacts.queries import visible_contacts
from siyu.core.models import Workspace
from siyu.segments.conditions import evaluate, validate_definition
from siyu.segments.models import Segment, SegmentBuild, SegmentMembership

SAMPLE_SIZE = 20


def segment_member_ids(workspace: Workspace | int, segment: Segment | int) -> QuerySet[Any]:
    """Contact ids currently in the segment (its stored membership)."""
    return (
        SegmentMembership.objects.in_workspace(workspace).filter(segment=segment, left_at__isnull=True)
        .values_list("contact_id", flat=True)
    )


def visible_members(workspace: Workspace, staff: Staff | None, segment: Segment) -> QuerySet[Contact]:
    """The segment's current members that ``staff`` may see (agents: only their own)."""
    return visible_contacts(workspace, staff).filter(pk__in=segment_member_ids(workspace, segment))


def segment_history(workspace: Workspace, segment: Segment, *, limit: int = 200) -> list[SegmentBuild]:
    """The latest builds, oldest first (for the size / build-time chart)."""
    rows = list(SegmentBuild.objects.in_workspace(workspace).filter(segment=segment).order_by("-started_at", "-id")[:limit])
    return rows[::-1]


@dataclass(frozen=True)
class Preview:
    count: int
    sample: list[Contact]
    definition: dict[str, Any]


def preview(workspace: Workspace, staff: Staff | None, definition: Any) -> Preview:
    """How many contacts a definition matches now, and up to 20 of them that ``staff``
    may see (newest first). Validates first; writes nothing."""
    clean = validate_definition(workspace, definition)
    ids = sorted(evaluate(workspace, clean), reverse=True)
    sample: list[Contact] = []
    visible = visible_contacts(workspace, staff).select_related("owner", "owner__user")
    for start in range(0, len(ids), 1000):
        chunk = ids[start:start + 1000]
        found = {c.pk: c for c in visible.filter(pk__in=chunk)}
        sample += [found[pk] for pk in chunk if pk in found][: SAMPLE_SIZE - len(sample)]
        if len(sample) >= SAMPLE_SIZE:
            break
    return Preview(count=len(ids), sample=sample, definition=clean)
