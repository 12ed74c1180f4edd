"""Group settings (群设置) resolved in layers: the group's own values, then the template
for the group's type (福利群 / 转化群 / 组织群), then the workspace default, then the
built-in defaults. Every effective value says where it came from.

The moderation policy is not duplicated here: it lives in :mod:`siyu.moderation`
(``ModerationPolicy``: a workspace default and per-group overrides); the effective
settings only point at the one that applies.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from siyu.communities.models import Group, GroupSettings, GroupSettingsScope, GroupType
from siyu.core.errors import ValidationFailed
from siyu.core.models import Workspace

__all__ = [
    "BUILT_IN", "OFF", "SETTINGS_KEYS", "SWITCHABLE", "SWITCHES", "Effective", "clean_values", "effective", "effective_for_groups", "in_quiet_hours",
    "quiet_hours_end", "render_template",
]

DEFAULT_NUDGE = "@{member} 欢迎加入{group}！来和大家做个自我介绍吧～"

#: every setting and its built-in default (the last layer)
BUILT_IN: dict[str, Any] = {
    "rules_text": "",
    "rules_link": "",
    "welcome_message": "",
    "welcome_coupon_template": None,
    "capacity": 200,
    "quiet_hours": None,  # {"start": "22:00", "end": "08:00"} in the workspace's time zone
    "quiet_mode": "suppress",  # during quiet hours auto-replies are dropped ("suppress") or sent at the end ("defer")
    "auto_replies_enabled": True,
    "nudge_after_hours": 48,  # 0 = no first-days nudge
    "nudge_text": DEFAULT_NUDGE,
    "tag_join_source": False,
    "join_source_tag_group": "入群来源",
    # paid groups (门槛: price): a member moderation removes leaves the owner a refund task
    "refund_on_removal": True,
}
SETTINGS_KEYS = tuple(BUILT_IN)
#: what a layer stores to say "none here" for a setting whose built-in value is "none"
#: (no quiet hours, no welcome coupon) when a lower layer sets one: ``None`` inherits
OFF = "off"
SWITCHABLE = ("quiet_hours", "welcome_coupon_template")
#: the on/off settings
SWITCHES = ("auto_replies_enabled", "tag_join_source", "refund_on_removal")
#: settings mirrored on the Group row itself (older code and other features read them there)
GROUP_FIELDS = ("rules_text", "welcome_message", "capacity")
TEMPLATE_VARIABLES = ("member", "group", "rules_link", "name")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_FIELD = re.compile(r"\{([^{}]*)\}")


def _text(key: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"{key} must be text", code="invalid_setting")
    if len(value) > limit:
        raise ValidationFailed(f"{key} is longer than {limit} characters", code="invalid_setting")
    return value


def _template(key: str, value: Any, limit: int) -> str:
    text = _text(key, value, limit)
    unknown = sorted({f for f in _FIELD.findall(text) if f not in TEMPLATE_VARIABLES})
    if unknown:
        raise ValidationFailed(
            f"{key} uses unknown variable(s) {', '.join('{' + u + '}' for u in unknown)}; "
            f"available: {{member}}, {{group}}, {{rules_link}}", code="invalid_template",
        )
    return text


def clean_values(workspace: Workspace, values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate settings for one layer. ``None`` means "not set here, inherit"."""
    if not isinstance(values, Mapping):
        raise ValidationFailed("settings must be an object", code="invalid_setting")
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in BUILT_IN:
            raise ValidationFailed(f"unknown setting {key!r}; expected one of {', '.join(SETTINGS_KEYS)}", code="unknown_setting")
        if value is None or (value == OFF and key in SWITCHABLE):
            clean[key] = value
            continue
        if key in ("rules_text",):
            value = _text(key, value, 5000)
        elif key == "rules_link":
            value = _text(key, value, 500).strip()
        elif key in ("welcome_message", "nudge_text"):
            value = _template(key, value, 2000)
        elif key == "join_source_tag_group":
            value = _text(key, value, 50).strip()
            if not value:
                raise ValidationFailed("join_source_tag_group must not be empty", code="invalid_setting")
        elif key == "capacity":
            if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 2000:
                raise ValidationFailed("capacity must be between 2 and 2000", code="invalid_capacity")
        elif key == "nudge_after_hours":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 24 * 30:
                raise ValidationFailed("nudge_after_hours must be between 0 (off) and 720", code="invalid_setting")
        elif key in SWITCHES:
            if not isinstance(value, bool):
                raise ValidationFailed(f"{key} must be true or false", code="invalid_setting")
        elif key == "quiet_mode":
            if value not in ("suppress", "defer"):
                raise ValidationFailed("quiet_mode must be suppress or defer", code="invalid_setting")
        elif key == "quiet_hours":
            if not isinstance(value, Mapping) or set(value) != {"start", "end"} or not all(
                isinstance(value[k], str) and _HHMM.match(value[k]) for k in ("start", "end")
            ) or value["start"] == value["end"]:
                raise ValidationFailed('quiet_hours must be {"start": "HH:MM", "end": "HH:MM"} with start ≠ end',
                                       code="invalid_quiet_hours")
            value = {"start": value["start"], "end": value["end"]}
        elif key == "welcome_coupon_template":
            from siyu.commerce.models import CouponTemplate

            if not isinstance(value, int) or isinstance(value, bool) or not CouponTemplate.objects.in_workspace(workspace).filter(pk=value).exists():
                raise ValidationFailed(f"coupon template {value!r} not found in this workspace", code="unknown_coupon_template")
        clean[key] = value
    return clean


@dataclass(frozen=True)
class Effective:
    """A group's resolved settings: ``values[key]`` and where it came from
    (``group``, ``template:<type>``, ``default`` or ``built_in``)."""

    values: dict[str, Any]
    sources: dict[str, str]
    moderation_policy: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: {"value": self.values[k], "source": self.sources[k]} for k in SETTINGS_KEYS}
        out["moderation_policy"] = self.moderation_policy
        return out


def _group_layer(group: Group, row: GroupSettings | None) -> dict[str, Any]:
    layer = {k: v for k, v in (row.values if row else {}).items() if v is not None}
    # the Group row's own text fields are group-level values (set before layers existed)
    for key in ("rules_text", "welcome_message"):
        if key not in layer and getattr(group, key):
            layer[key] = getattr(group, key)
    return layer


def _resolve(group: Group, group_row: GroupSettings | None, layers: Mapping[str, GroupSettings], policy: dict[str, Any]) -> Effective:
    template = layers.get(f"template:{group.group_type}")
    default = layers.get("default")
    ordered = [("group", _group_layer(group, group_row)), (f"template:{group.group_type}", template.values if template else {}),
               ("default", default.values if default else {})]
    values, sources = resolve_layers(ordered)
    return Effective(values, sources, policy)


def resolve_layers(ordered: Iterable[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[str, str]]:
    """Every setting from the first layer that sets it (``None`` = not set), else the
    built-in value: ``(values, sources)`` with each source named as in ``ordered``. A
    layer's :data:`OFF` (quiet hours, welcome coupon) is the value ``None``, from that
    layer: the layers below it no longer apply."""
    ordered = list(ordered)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key, built_in in BUILT_IN.items():
        for source, layer in ordered:
            if layer.get(key) is not None:
                values[key], sources[key] = None if layer[key] == OFF and key in SWITCHABLE else layer[key], source
                break
        else:
            values[key], sources[key] = built_in, "built_in"
    return values, sources


def _workspace_layers(workspace_id: int) -> dict[str, GroupSettings]:
    layers: dict[str, GroupSettings] = {}
    for row in GroupSettings.objects.filter(workspace_id=workspace_id).exclude(scope=GroupSettingsScope.GROUP):
        layers["default" if row.scope == GroupSettingsScope.DEFAULT else f"template:{row.group_type}"] = row
    return layers


def _policies(workspace_id: int, group_ids: Iterable[int]) -> dict[int | None, int]:
    from siyu.moderation.models import ModerationPolicy

    ids = set(group_ids)
    rows = ModerationPolicy.objects.filter(workspace_id=workspace_id).filter(group__isnull=True) | ModerationPolicy.objects.filter(
        workspace_id=workspace_id, group_id__in=ids
    )
    return {group_id: pk for pk, group_id in rows.values_list("pk", "group_id")}


def effective_for_groups(groups: Iterable[Group]) -> dict[int, Effective]:
    """Resolved settings for many groups of one or more workspaces (a few queries in all)."""
    groups = list(groups)
    by_workspace: dict[int, list[Group]] = {}
    for group in groups:
        by_workspace.setdefault(group.workspace_id, []).append(group)
    out: dict[int, Effective] = {}
    for workspace_id, members in by_workspace.items():
        layers = _workspace_layers(workspace_id)
        own = {row.group_id: row for row in GroupSettings.objects.filter(group_id__in=[g.pk for g in members])}
        policies = _policies(workspace_id, [g.pk for g in members])
        for group in members:
            if group.pk in policies:
                policy = {"value": policies[group.pk], "source": "group"}
            elif None in policies:
                policy = {"value": policies[None], "source": "default"}
            else:
                policy = {"value": None, "source": "built_in"}
            out[group.pk] = _resolve(group, own.get(group.pk), layers, policy)
    return out


def effective(group: Group) -> Effective:
    """One group's resolved settings."""
    return effective_for_groups([group])[group.pk]


def layer_values(workspace: Workspace, *, group_type: str | None = None) -> dict[str, Any]:
    """The values set at the workspace default (or a type's template) layer."""
    if group_type is not None and group_type not in GroupType.values:
        from siyu.core.errors import NotFound

        raise NotFound(f"unknown group type {group_type!r}", code="unknown_group_type")
    scope = GroupSettingsScope.TEMPLATE if group_type else GroupSettingsScope.DEFAULT
    row = GroupSettings.objects.in_workspace(workspace).filter(scope=scope, group_type=group_type or "").first()
    return dict(row.values) if row else {}


class _Safe(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_template(template: str, *, member: str, group: str, rules_link: str) -> str:
    """Fill ``{member}``, ``{group}``, ``{rules_link}`` (and the older ``{name}``) in a
    welcome or nudge text; anything else stays as written."""
    return template.format_map(_Safe(member=member, name=member, group=group, rules_link=rules_link))


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_quiet_hours(quiet: Mapping[str, str] | None, when: dt.datetime, tz: dt.tzinfo) -> bool:
    """Whether ``when`` falls in the quiet hours (local time; a window may span midnight)."""
    if not quiet:
        return False
    local = when.astimezone(tz)
    now, start, end = local.hour * 60 + local.minute, _minutes(quiet["start"]), _minutes(quiet["end"])
    return start <= now < end if start < end else now >= start or now < end


def quiet_hours_end(quiet: Mapping[str, str], when: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The first moment after ``when`` that is outside the quiet hours (for deferred sends)."""
    local = when.astimezone(tz)
    end_minutes = _minutes(quiet["end"])
    candidate = local.replace(hour=end_minutes // 60, minute=end_minutes % 60, second=0, microsecond=0)
    if candidate <= local:
        candidate += dt.timedelta(days=1)
    return candidate.astimezone(dt.UTC)
