"""Journeys (旅程 / SOP): a versioned graph of steps, one durable run per contact (or per
group) and entry, and a log row per executed step."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from siyu.accounts.models import Staff
from siyu.communities.models import Group
from siyu.contacts.models import Contact
from siyu.core.models import WorkspaceOwned


class JourneyStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    PAUSED = "paused", _("Paused")
    ARCHIVED = "archived", _("Archived")


class Journey(WorkspaceOwned):
    """A journey as the operator edits it. ``draft`` is the definition being edited; the
    published behaviour lives in :class:`JourneyVersion` rows, which never change."""

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=JourneyStatus.choices, default=JourneyStatus.DRAFT, db_index=True)
    draft = models.JSONField(default=dict, blank=True)
    current_version = models.ForeignKey(
        "JourneyVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger_kind = models.CharField(max_length=32, blank=True, default="", db_index=True, help_text="of the current version")
    playbook = models.CharField(max_length=50, blank=True, default="", help_text="the playbook this journey was made from")
    created_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="journey_unique_name")]

    def __str__(self) -> str:
        return self.name


class JourneyVersion(WorkspaceOwned):
    """One published, immutable definition. Runs keep the version they entered with."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    definition = models.JSONField()
    published_by = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    published_at = models.DateTimeField()

    class Meta:
        ordering = ["journey_id", "-number"]
        constraints = [models.UniqueConstraint(fields=["journey", "number"], name="journey_version_unique_number")]


class RunState(models.TextChoices):
    ACTIVE = "active", _("Running")
    WAITING = "waiting", _("Waiting")
    COMPLETED = "completed", _("Completed")
    EXITED = "exited", _("Exited")
    FAILED = "failed", _("Failed")


OPEN_STATES = (RunState.ACTIVE, RunState.WAITING)


class JourneyRun(WorkspaceOwned):
    """One contact's (or one group's) pass through a journey version. Durable: where it is
    and when it wakes are columns, not a sleeping task, so a restart loses nothing."""

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(JourneyVersion, on_delete=models.PROTECT, related_name="runs")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="journey_runs")
    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="journey_runs")
    state = models.CharField(max_length=16, choices=RunState.choices, default=RunState.ACTIVE, db_index=True)
    current_step = models.CharField(max_length=64, blank=True, default="")
    wake_at = models.DateTimeField(null=True, blank=True, db_index=True)
    waiting_for = models.JSONField(default=dict, blank=True, help_text="the event a wait-until-event step waits for")
    lease_until = models.DateTimeField(null=True, blank=True)
    trigger_key = models.CharField(max_length=200, help_text="what started it (event id, enrolment key): one run per key")
    context = models.JSONField(default=dict, blank=True)
    steps_done = models.PositiveIntegerField(default=0)
    entered_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["-entered_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "trigger_key"], name="journey_run_unique_trigger"),
            models.UniqueConstraint(
                fields=["journey", "contact"], condition=Q(state__in=["active", "waiting"], contact__isnull=False),
                name="journey_run_one_open_per_contact",
            ),
            models.UniqueConstraint(
                fields=["journey", "group"], condition=Q(state__in=["active", "waiting"], group__isnull=False),
                name="journey_run_one_open_per_group",
            ),
        ]
        indexes = [models.Index(fields=["state", "wake_at"]), models.Index(fields=["contact", "state"])]


class JourneyStepLog(WorkspaceOwned):
    """One executed step of a run. The unique ``idempotency_key`` (run, step, attempt key)
    is written in the same transaction as the step's effects: a step runs exactly once."""

    run = models.ForeignKey(JourneyRun, on_delete=models.CASCADE, related_name="log")
    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="+")
    step_id = models.CharField(max_length=64)
    step_type = models.CharField(max_length=32)
    idempotency_key = models.CharField(max_length=200)
    outcome = models.CharField(max_length=32, help_text="sent, deferred, skipped, yes, no, waiting, event, timeout, done...")
    reason = models.TextField(blank=True, default="")
    detail = models.JSONField(default=dict, blank=True)
    next_step = models.CharField(max_length=64, blank=True, default="")
    executed_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["executed_at", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="journey_step_unique_key")]
        indexes = [models.Index(fields=["journey", "step_id"])]
