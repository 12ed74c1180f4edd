"""Channel accounts: a workspace's presence on a channel (a WeCom corp app, a Matrix
bot account, or the in-process sandbox)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import WorkspaceOwned


class ChannelKind(models.TextChoices):
    SANDBOX = "sandbox", _("Sandbox")
    WECOM = "wecom", _("WeCom")
    MATRIX = "matrix", _("Matrix")


class ChannelAccount(WorkspaceOwned):
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    name = models.CharField(max_length=100)
    external_id = models.CharField(max_length=200, blank=True, default="", help_text="corp id, bot user id, ...")
    config = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "kind", "name"], name="channel_account_unique_name")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


class InboxStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PROCESSED = "processed", _("Processed")
    FAILED = "failed", _("Failed")
    IGNORED = "ignored", _("Ignored (unknown kind)")
    MALFORMED = "malformed", _("Malformed")


class InboxEvent(WorkspaceOwned):
    """An inbound platform event, stored before it is processed (收件箱). The unique
    ``(account, dedupe_key)`` makes replays and concurrent duplicates one row."""

    # no index of their own: ``(account, dedupe_key)`` is unique and so indexed with
    # the account first; kind is a handful of values (filtering by it scans the status
    # index's rows instead). Every index is written once per inbound event.
    account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="inbox", db_index=False)
    dedupe_key = models.CharField(max_length=255)
    kind = models.CharField(max_length=32)
    data = models.JSONField(default=dict, blank=True)
    raw = models.TextField(blank=True, default="", help_text="the decrypted payload as received, for diagnosis")
    status = models.CharField(max_length=16, choices=InboxStatus.choices, default=InboxStatus.PENDING, db_index=True)
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["account", "dedupe_key"], name="inbox_unique_dedupe_key")]


class OutboxStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class OutboxMessage(WorkspaceOwned):
    """One outbound send (发件箱). The idempotency key makes enqueueing the same send
    twice one row; the same key goes to the platform so a retry after a crash is
    recognised there (exactly-once delivery where the platform supports it)."""

    account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="outbox")
    idempotency_key = models.CharField(max_length=200)
    command = models.CharField(max_length=32)
    target = models.CharField(max_length=255)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    external_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["workspace", "idempotency_key"], name="outbox_unique_key")]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]


class SandboxDelivery(WorkspaceOwned):
    """What the in-process sandbox channel "delivered". Unique per idempotency key, like a
    platform that recognises a repeated transaction id, so tests can count deliveries."""

    account = models.ForeignKey(ChannelAccount, on_delete=models.CASCADE, related_name="+")
    idempotency_key = models.CharField(max_length=200)
    command = models.CharField(max_length=32)
    target = models.CharField(max_length=255)
    payload = models.JSONField(default=dict, blank=True)
    delivered_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["account", "idempotency_key"], name="sandbox_delivery_unique_key")]


class StaffTaskStatus(models.TextChoices):
    OPEN = "open", _("Open")
    DONE = "done", _("Done")
    DISMISSED = "dismissed", _("Dismissed")


class StaffTask(WorkspaceOwned):
    """Work a person must do because the channel cannot (e.g. remove a WeCom customer-group
    member, confirm a mass message), with the evidence that caused it."""

    account = models.ForeignKey(ChannelAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=32, db_index=True)
    title = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)
    assignee = models.ForeignKey("accounts.Staff", null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks")
    status = models.CharField(max_length=16, choices=StaffTaskStatus.choices, default=StaffTaskStatus.OPEN, db_index=True)
    dedupe_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["workspace", "dedupe_key"], condition=~models.Q(dedupe_key=""), name="staff_task_unique_key")
        ]
