"""Stored moderation verdicts (处理记录) with the rule that fired and its evidence."""

from __future__ import annotations

from django.db import models

from siyu.communities.models import Group, GroupMessage
from siyu.contacts.models import Contact
from siyu.core.models import WorkspaceOwned


class ModerationCase(WorkspaceOwned):
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="moderation_cases")
    message = models.ForeignKey(GroupMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="moderation_cases")
    verdict = models.CharField(max_length=16, db_index=True)
    rule = models.CharField(max_length=100, blank=True, default="", help_text="the word list or detector that fired")
    note = models.CharField(max_length=300, blank=True, default="", help_text="escalation or undo explanation")
    reasons = models.JSONField(default=list)
    text = models.TextField(blank=True, default="")
    applied = models.JSONField(default=list, help_text="what was done: outbox sends, staff tasks, membership closed")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    undone_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["message"], condition=models.Q(message__isnull=False), name="one_case_per_message")
        ]


class WordListKind(models.TextChoices):
    SENSITIVE = "sensitive_word", "Sensitive words (敏感词)"
    COMPETITOR = "competitor", "Competitor names (竞品)"


class WordList(WorkspaceOwned):
    """A configurable word list matched with Aho-Corasick; workspace-wide when ``group``
    is empty, else for that group only. Its ``kind`` is the detector name the policy
    grades."""

    group = models.ForeignKey(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="word_lists")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=32, choices=WordListKind.choices, default=WordListKind.SENSITIVE)
    words = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "name"], name="word_list_unique_name")]


class ModerationPolicy(WorkspaceOwned):
    """Stored policy: one workspace default (``group`` empty) and optional per-group
    overrides. ``config`` is what :meth:`siyu.moderation.policy.Policy.from_config` reads."""

    group = models.OneToOneField(Group, null=True, blank=True, on_delete=models.CASCADE, related_name="moderation_policy")
    config = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace"], condition=models.Q(group__isnull=True), name="one_default_policy_per_workspace")
        ]


class Strike(WorkspaceOwned):
    """One offence by a contact; active strikes in the policy window escalate the next
    verdict. An appeal clears the strike."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="strikes")
    group = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    case = models.OneToOneField(ModerationCase, on_delete=models.CASCADE, related_name="strike")
    created_at = models.DateTimeField(db_index=True)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["contact", "created_at"])]


class BlacklistEntry(WorkspaceOwned):
    """A contact banned from every group of the workspace (拉黑)."""

    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="blacklist_entries")
    case = models.ForeignKey(ModerationCase, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["contact"], condition=models.Q(lifted_at__isnull=True), name="one_open_blacklist_entry")
        ]
