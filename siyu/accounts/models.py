"""Staff, roles, API tokens and the audit log."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from siyu.core.models import WorkspaceOwned


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    OPERATOR = "operator", _("Operator")
    ANALYST = "analyst", _("Analyst")
    AGENT = "agent", _("Agent")


class Staff(WorkspaceOwned):
    """A person working in one workspace. The login identity is a Django user (by
    email); the same person may be staff in several workspaces with different roles."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_roles")
    display_name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    store = models.CharField(max_length=100, blank=True, default="")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["workspace", "user"], name="staff_unique_user_per_workspace")]
        ordering = ["id"]
        verbose_name = "staff member"
        verbose_name_plural = "staff"

    def __str__(self) -> str:
        return f"{self.display_name} <{self.user.email}>"

    @property
    def email(self) -> str:
        return str(self.user.email)


class ApiToken(WorkspaceOwned):
    """A bearer token for the API. Only a SHA-256 of the secret is stored; the secret is
    shown once, when it is created."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, default="cli")
    prefix = models.CharField(max_length=12, db_index=True)
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]


class AuditEntry(WorkspaceOwned):
    """One row for every write made through an action: who, what, when, before/after."""

    actor = models.ForeignKey(Staff, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=64, blank=True, default="")
    target_id = models.CharField(max_length=64, blank=True, default="")
    summary = models.CharField(max_length=300, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    via = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"


class StaffChannelIdentity(WorkspaceOwned):
    """Who a staff member is on one channel account (their WeCom ``userid``): needed to
    put them on a platform 「联系我」 code and to attribute channel events to them.
    One identity per staff member per account, and one staff member per user id."""

    staff = models.ForeignKey(Staff, on_delete=models.CASCADE, related_name="channel_identities")
    account = models.ForeignKey("channels.ChannelAccount", on_delete=models.CASCADE, related_name="staff_identities")
    external_id = models.CharField(max_length=64, help_text="the staff member's user id on the channel (WeCom userid)")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account_id", "staff_id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "staff"], name="staff_identity_once_per_account"),
            models.UniqueConstraint(fields=["account", "external_id"], name="staff_identity_unique_external_id"),
        ]

    def __str__(self) -> str:
        return f"{self.staff_id}@{self.account_id}={self.external_id}"
