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
