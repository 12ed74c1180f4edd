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
