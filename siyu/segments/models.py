"""Segments (人群包): a stored set of contacts, either dynamic (a definition kept true by
incremental updates and scheduled passes) or static (uploaded or picked by hand).

Membership keeps history: leaving closes the row, re-entering opens a new one, so "when
did this person enter, how long did they stay" stays answerable.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import Staff
from siyu.contacts.models import Contact
from siyu.core.models import WorkspaceOwned


class SegmentKind(models.TextChoices):
    DYNAMIC = "dynamic", _("Dynamic")
    STATIC = "static", _("Static")


class Segment(WorkspaceOwned):
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    kind = models.CharField(max_length=8, choices=SegmentKind.choices, default=SegmentKind.DYNAMIC)
    # Normalised by siyu.segments.conditions.validate_definition; empty for static segments.
    definition = models.JSONField(default=dict, blank=True)
    size = models.PositiveIntegerField(default=0)
    last_built_at = models.DateTimeField(null=True, blank=True)
    last_build_ms = models.PositiveIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="segment_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def is_dynamic(self) -> bool:
        return self.kind == SegmentKind.DYNAMIC


class SegmentMembership(WorkspaceOwned):
    """One stay of a contact in a segment; ``left_at`` is null while they are in it."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="memberships")
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="segment_memberships")
    entered_at = models.DateTimeField()
    left_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-entered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "contact"], condition=Q(left_at__isnull=True), name="segment_one_open_stay")
        ]
        indexes = [models.Index(fields=["segment", "left_at", "contact"]), models.Index(fields=["contact", "left_at"])]


class BuildMode(models.TextChoices):
    FULL = "full", _("Full")
    INCREMENTAL = "incremental", _("Incremental")
    SCHEDULED = "scheduled", _("Scheduled")
    STATIC = "static", _("Static upload")


class SegmentBuild(WorkspaceOwned):
    """One (re)computation of a segment: how it ran, how long it took, what it changed."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="builds")
    mode = models.CharField(max_length=12, choices=BuildMode.choices)
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(default=0)
    size = models.PositiveIntegerField(default=0)
    entered = models.PositiveIntegerField(default=0)
    left = models.PositiveIntegerField(default=0)
    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["segment", "started_at"])]
