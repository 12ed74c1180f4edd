"""Workspace (tenant) and the base every workspace-owned row inherits."""

from __future__ import annotations

import zoneinfo
from typing import Any, TypeVar

from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models

from siyu.core.errors import NotFound


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"unknown time zone {value!r}") from exc


class Workspace(models.Model):
    """A brand or shop: the tenant every other row belongs to."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    time_zone = models.CharField(max_length=64, default="Asia/Shanghai", validators=[validate_time_zone])
    currency = models.CharField(max_length=3, default="CNY")
    language = models.CharField(max_length=16, default="zh-hans", choices=[("zh-hans", "简体中文"), ("en", "English")])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)


M = TypeVar("M", bound=models.Model)


class WorkspaceQuerySet(models.QuerySet[M]):
    def in_workspace(self, workspace: Workspace | int) -> WorkspaceQuerySet[M]:
        ws_id = workspace if isinstance(workspace, int) else workspace.pk
        return self.filter(workspace_id=ws_id)

    def get_in_workspace(self, workspace: Workspace | int, **lookup: Any) -> M:
        """Fetch one row of this workspace or raise NotFound (404: another workspace's
        row looks exactly like a row that does not exist)."""
        try:
            return self.in_workspace(workspace).get(**lookup)
        except (ObjectDoesNotExist, ValueError, TypeError, ValidationError) as exc:
            raise NotFound(f"{self.model._meta.verbose_name} not found") from exc


class WorkspaceManager(models.Manager.from_queryset(WorkspaceQuerySet)):  # type: ignore[misc]
    pass


class WorkspaceOwned(models.Model):
    """Abstract base: a row that belongs to exactly one workspace."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")

    objects = WorkspaceManager()

    class Meta:
        abstract = True
