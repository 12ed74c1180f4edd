"""Group settings (群设置) and keyword auto-replies (关键词自动回复) in the console.

Settings come in layers (group → template for the group's type → workspace default →
built-in, see :mod:`siyu.communities.group_settings`); each settings page edits one
layer and shows, beside every field, the value that applies when the field is left empty
and where it comes from. An empty field means "inherit". Auto-replies have a list (filter
by group), a form and a dry-run "test this text" box that writes nothing.

Reading needs ``VIEW_GROUPS``; every write goes through :mod:`siyu.communities.actions`
and needs ``MANAGE_GROUPS``.
"""

from __future__ import annotations

import re
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.communities.actions import (
    do_create_auto_reply,
    do_delete_auto_reply,
    do_set_group_settings,
    do_set_settings_layer,
    do_update_auto_reply,
)
from siyu.communities.autoreply import decide, rules_for, triggered
from siyu.communities.group_settings import (
    OFF,
    SETTINGS_KEYS,
    SWITCHABLE,
    SWITCHES,
    effective,
    layer_values,
    render_template,
    resolve_layers,
)
from siyu.communities.models import AutoReplyFiring, AutoReplyMatch, AutoReplyRule, Group, GroupSettings, GroupType
from siyu.console.workspace import Console, console_view
from siyu.core.errors import NotFound, ValidationFailed
from siyu.core.models import Workspace

SAMPLE_MEMBER = "小明"
SAMPLE_GROUP = "示例群"
INHERIT = ""
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
#: tri-state choices for a yes/no setting: empty inherits
_YES_NO = [(INHERIT, gettext_lazy("— inherit —")), ("on", gettext_lazy("On")), ("off", gettext_lazy("Off"))]


# --------------------------------------------------------------------------- settings form


class SettingsForm(forms.Form):
    """One settings layer. Every field may stay empty, which means "inherit"."""

    rules_text = forms.CharField(label=gettext_lazy("Group rules"), required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 4}))
    rules_link = forms.CharField(label=gettext_lazy("Rules link"), required=False, max_length=500)
    welcome_message = forms.CharField(
        label=gettext_lazy("Welcome message"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy("Variables: {member} the newcomer's name, {group} the group's name, {rules_link} the rules link."),
    )
    welcome_coupon_template = forms.ChoiceField(label=gettext_lazy("Welcome coupon"), required=False,
                                                help_text=gettext_lazy("one coupon per newcomer (coupon / red-packet hook)"))
    capacity = forms.IntegerField(label=gettext_lazy("Capacity"), required=False, min_value=2, max_value=2000)
    quiet_start = forms.CharField(label=gettext_lazy("Quiet hours from"), required=False, max_length=5,
                                  widget=forms.TextInput(attrs={"placeholder": "22:00"}))
    quiet_end = forms.CharField(label=gettext_lazy("Quiet hours until"), required=False, max_length=5,
                                widget=forms.TextInput(attrs={"placeholder": "08:00"}), help_text=gettext_lazy("HH:MM, workspace time zone"))
    quiet_off = forms.BooleanField(label=gettext_lazy("No quiet hours here"), required=False,
                                   help_text=gettext_lazy("even where the template or the workspace default sets some"))
    quiet_mode = forms.ChoiceField(label=gettext_lazy("During quiet hours"), required=False, choices=[
        (INHERIT, gettext_lazy("— inherit —")), ("suppress", gettext_lazy("drop auto-replies")), ("defer", gettext_lazy("send when they end")),
    ])
    auto_replies_enabled = forms.ChoiceField(label=gettext_lazy("Keyword auto-replies"), required=False, choices=_YES_NO)
    tag_join_source = forms.ChoiceField(label=gettext_lazy("Tag the join source"), required=False, choices=_YES_NO)
    refund_on_removal = forms.ChoiceField(
        label=gettext_lazy("Refund task on removal"), required=False, choices=_YES_NO,
        help_text=gettext_lazy("paid groups: a member moderation removes leaves the owner a task to refund the fee"),
    )
    join_source_tag_group = forms.CharField(label=gettext_lazy("Join-source tag group"), required=False, max_length=50)
    nudge_after_hours = forms.IntegerField(label=gettext_lazy("First-days nudge after (hours)"), required=False, min_value=0, max_value=720,
                                           help_text=gettext_lazy("0 = no nudge"))
    nudge_text = forms.CharField(label=gettext_lazy("Nudge text"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, workspace: Workspace, **kw: Any) -> None:
        super().__init__(*args, **kw)
        from siyu.commerce.models import CouponTemplate

        coupons = CouponTemplate.objects.in_workspace(workspace).order_by("name", "id")
        cast(forms.ChoiceField, self.fields["welcome_coupon_template"]).choices = [
            (INHERIT, _("— inherit —")), (OFF, _("— no coupon —")), *((str(c.pk), c.name) for c in coupons),
        ]

    @staticmethod
    def initial_from(values: dict[str, Any]) -> dict[str, Any]:
        """Form values for a layer's stored values."""
        initial: dict[str, Any] = {}
        for key, value in values.items():
            if value is None:
                continue
            if key == "quiet_hours" and value == OFF:
                initial["quiet_off"] = True
            elif key == "quiet_hours":
                initial["quiet_start"], initial["quiet_end"] = value["start"], value["end"]
            elif key in SWITCHES:
                initial[key] = "on" if value else "off"
            elif key == "welcome_coupon_template":
                initial[key] = str(value)
            else:
                initial[key] = value
        return initial

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = (data.get("quiet_start") or "").strip(), (data.get("quiet_end") or "").strip()
        if bool(start) != bool(end):
            self.add_error("quiet_end" if start else "quiet_start", _("Give both ends of the quiet hours, or neither."))
        if start and data.get("quiet_off"):
            self.add_error("quiet_off", _("Either quiet hours or none, not both."))
        for name, value in (("quiet_start", start), ("quiet_end", end)):
            if value and not _HHMM.match(value):
                self.add_error(name, _("Use HH:MM, for example 22:00."))
        return data

    def values(self) -> dict[str, Any]:
        """Every setting of the layer; ``None`` for an empty field (inherit)."""
        data = self.cleaned_data
        out: dict[str, Any] = {}
        for key in ("rules_text", "rules_link", "welcome_message", "nudge_text", "join_source_tag_group"):
            out[key] = data[key] if data[key].strip() else None
        for key in ("capacity", "nudge_after_hours"):
            out[key] = data[key]
        for key in SWITCHES:
            out[key] = {"on": True, "off": False}.get(data[key])
        out["quiet_mode"] = data["quiet_mode"] or None
        coupon = data["welcome_coupon_template"]
        out["welcome_coupon_template"] = OFF if coupon == OFF else int(coupon) if coupon else None
        start, end = data["quiet_start"].strip(), data["quiet_end"].strip()
        out["quiet_hours"] = OFF if data["quiet_off"] else {"start": start, "end": end} if start and end else None
        return out


#: which form fields edit which setting, in the order the page shows them
ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("rules_text", ("rules_text",)),
    ("rules_link", ("rules_link",)),
    ("welcome_message", ("welcome_message",)),
    ("welcome_coupon_template", ("welcome_coupon_template",)),
    ("capacity", ("capacity",)),
    ("quiet_hours", ("quiet_start", "quiet_end", "quiet_off")),
    ("quiet_mode", ("quiet_mode",)),
    ("auto_replies_enabled", ("auto_replies_enabled",)),
    ("tag_join_source", ("tag_join_source",)),
    ("join_source_tag_group", ("join_source_tag_group",)),
    ("nudge_after_hours", ("nudge_after_hours",)),
    ("nudge_text", ("nudge_text",)),
    ("refund_on_removal", ("refund_on_removal",)),
)
assert {key for key, _fields in ROWS} == set(SETTINGS_KEYS)


def source_label(source: str) -> str:
    """Where an effective value comes from, for people."""
    if source == "group":
        return _("this group")
    if source.startswith("template:"):
        kind = source.split(":", 1)[1]
        return _("template for %(type)s") % {"type": dict(GroupType.choices).get(kind, kind)}
    if source == "default":
        return _("workspace default")
    return _("built-in")


def display_value(key: str, value: Any, coupons: dict[int, str]) -> str:
    """A setting's value as the page shows it."""
    if value is None and key in SWITCHABLE:
        return _("none")
    if value is None or value == "":
        return "—"
    if key == "quiet_hours":
        return f"{value['start']}–{value['end']}"
    if isinstance(value, bool):
        return _("On") if value else _("Off")
    if key == "welcome_coupon_template":
        return coupons.get(value, f"#{value}")
    if key == "quiet_mode":
        return _("drop auto-replies") if value == "suppress" else _("send when they end")
    return str(value)


def _coupon_names(workspace: Workspace) -> dict[int, str]:
    from siyu.commerce.models import CouponTemplate

    return dict(CouponTemplate.objects.in_workspace(workspace).values_list("pk", "name"))


def _inherited(workspace: Workspace, group_type: str | None) -> tuple[dict[str, Any], dict[str, str]]:
    """What a template (``group_type``) or the default layer (``None``) falls back to."""
    return resolve_layers([("default", layer_values(workspace))] if group_type else [])


def _rows(form: SettingsForm, values: dict[str, Any], sources: dict[str, str], own: dict[str, Any], coupons: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "fields": [form[name] for name in names],
            "value": display_value(key, values[key], coupons),
            "source": sources[key],
            "source_label": source_label(sources[key]),
            "own": own.get(key) is not None,
        }
        for key, names in ROWS
    ]


def _save_layer(request: HttpRequest, console: Console, form: SettingsForm, save: Any) -> bool:
    """Validate the form and save it through ``save(values)``; errors land on the form."""
    if not form.is_valid():
        return False
    try:
        save(form.values())
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return False
    return True


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def group_settings(request: HttpRequest, console: Console, group_id: int) -> HttpResponse:
    group = Group.objects.select_related("workspace").get_in_workspace(console.workspace, pk=group_id)
    row = GroupSettings.objects.filter(group=group).first()
    own = dict(row.values) if row else {}
    # the rules and welcome mirrored on the group row count as the group's own values
    for key in ("rules_text", "welcome_message"):
        if own.get(key) is None and getattr(group, key):
            own[key] = getattr(group, key)
    status = 200
    if request.method == "POST":
        console.require(Perm.MANAGE_GROUPS)
        form = SettingsForm(request.POST, workspace=console.workspace)
        if _save_layer(request, console, form, lambda values: do_set_group_settings(group, console.staff, values)):
            messages.success(request, _("Settings of “%(name)s” saved.") % {"name": group.name})
            return HttpResponseRedirect(reverse("console:group_settings", args=[group.pk]))
        status = 422
    else:
        form = SettingsForm(workspace=console.workspace, initial=SettingsForm.initial_from(own))
    eff = effective(group)
    policy = eff.moderation_policy
    return render(request, "console/groups/settings.html", {
        "section": "groups", "group": group, "form": form, "layer_label": _("this group"),
        "rows": _rows(form, eff.values, eff.sources, own, _coupon_names(console.workspace)),
        "policy_source": source_label(policy["source"]) if policy["value"] else None,
        "preview_url": reverse("console:group_settings_preview") + f"?group={group.pk}",
        "auto_replies": AutoReplyRule.objects.in_workspace(console.workspace).filter(group=group).count(),
        "types": GroupType.choices,
    }, status=status)


def _layer_page(request: HttpRequest, console: Console, group_type: str | None) -> HttpResponse:
    if group_type is not None and group_type not in GroupType.values:
        raise NotFound("unknown group type", code="unknown_group_type")
    own = layer_values(console.workspace, group_type=group_type)
    status = 200
    if request.method == "POST":
        console.require(Perm.MANAGE_GROUPS)
        form = SettingsForm(request.POST, workspace=console.workspace)
        saved = _save_layer(request, console, form, lambda values: do_set_settings_layer(
            console.workspace, console.staff, values, group_type=group_type or ""))
        if saved:
            messages.success(request, _("Settings saved."))
            target = reverse("console:group_settings_template", args=[group_type]) if group_type else reverse("console:group_settings_defaults")
            return HttpResponseRedirect(target)
        status = 422
    else:
        form = SettingsForm(workspace=console.workspace, initial=SettingsForm.initial_from(own))
    inherited, sources = _inherited(console.workspace, group_type)
    # A value set on this layer is what applies (to groups that do not set their own).
    layer_source = f"template:{group_type}" if group_type else "default"
    values = {k: (own[k] if own.get(k) is not None else inherited[k]) for k in SETTINGS_KEYS}
    sources = {k: (layer_source if own.get(k) is not None else sources[k]) for k in SETTINGS_KEYS}
    label = (_("Template for %(type)s") % {"type": dict(GroupType.choices)[group_type]}) if group_type else _("Workspace default")
    return render(request, "console/groups/settings_layer.html", {
        "section": "groups", "form": form, "group_type": group_type, "title": label, "layer_label": _("This layer"),
        "rows": _rows(form, values, sources, own, _coupon_names(console.workspace)),
        "preview_url": reverse("console:group_settings_preview"), "types": GroupType.choices,
    }, status=status)


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def group_settings_defaults(request: HttpRequest, console: Console) -> HttpResponse:
    return _layer_page(request, console, None)


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def group_settings_template(request: HttpRequest, console: Console, group_type: str) -> HttpResponse:
    return _layer_page(request, console, group_type)


@require_POST
@console_view(Perm.VIEW_GROUPS)
def group_settings_preview(request: HttpRequest, console: Console) -> HttpResponse:
    """The welcome message as a sample member would see it (HTMX partial; writes nothing)."""
    group_name, rules_link = SAMPLE_GROUP, request.POST.get("rules_link", "").strip()
    group_id = request.GET.get("group", "").strip()
    if group_id:
        group = Group.objects.get_in_workspace(console.workspace, pk=group_id)
        group_name = group.name
        rules_link = rules_link or effective(group)["rules_link"]
    text = request.POST.get("welcome_message", "")[:2000]
    rendered = render_template(text, member=SAMPLE_MEMBER, group=group_name, rules_link=rules_link) if text.strip() else ""
    return render(request, "console/groups/settings_preview.html", {"rendered": rendered, "member": SAMPLE_MEMBER})


# --------------------------------------------------------------------------- auto-replies


class AutoReplyForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    match = forms.ChoiceField(label=gettext_lazy("Match"), choices=AutoReplyMatch.choices, initial=AutoReplyMatch.CONTAINS)
    pattern = forms.CharField(label=gettext_lazy("Keyword or pattern"), max_length=500,
                              help_text=gettext_lazy("exact: the whole message; contains: anywhere in it; regex: a regular expression"))
    reply = forms.CharField(label=gettext_lazy("Reply"), max_length=2000, widget=forms.Textarea(attrs={"rows": 3}))
    group = forms.ChoiceField(label=gettext_lazy("Scope"), required=False)
    cooldown_seconds = forms.IntegerField(label=gettext_lazy("Cool-down (seconds)"), min_value=0, max_value=7 * 86400, initial=300,
                                          help_text=gettext_lazy("the same rule answers again in the same group only after this"))
    priority = forms.IntegerField(label=gettext_lazy("Priority"), initial=100, help_text=gettext_lazy("lower answers first"))
    is_active = forms.BooleanField(label=gettext_lazy("Active"), required=False, initial=True)

    def __init__(self, *args: Any, workspace: Workspace, **kw: Any) -> None:
        super().__init__(*args, **kw)
        cast(forms.ChoiceField, self.fields["group"]).choices = group_choices(workspace)

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["group"] = int(data["group"]) if data["group"] else None
        return data


def group_choices(workspace: Workspace) -> list[tuple[str, str]]:
    groups = Group.objects.in_workspace(workspace).filter(archived_at__isnull=True).order_by("name", "id")
    return [("", _("Whole workspace")), *((str(g.pk), g.name) for g in groups)]


#: action error codes that belong to the pattern field
PATTERN_ERRORS = {"invalid_regex", "unsafe_regex", "pattern_required", "pattern_too_long", "invalid_match"}


def _save_rule(form: AutoReplyForm, save: Any) -> AutoReplyRule | None:
    if not form.is_valid():
        return None
    try:
        return cast(AutoReplyRule, save(form.values()))
    except ValidationFailed as exc:
        form.add_error("pattern" if exc.code in PATTERN_ERRORS else None, exc.message)
        return None


def _rule_list_url(rule: AutoReplyRule | None = None, group_id: int | None = None) -> str:
    scope = group_id if group_id is not None else (rule.group_id if rule is not None else None)
    url = reverse("console:auto_replies")
    return f"{url}?group={scope}" if scope else url


@require_http_methods(["GET"])
@console_view(Perm.VIEW_GROUPS)
def auto_reply_list(request: HttpRequest, console: Console) -> HttpResponse:
    scope = request.GET.get("group", "").strip()
    qs = AutoReplyRule.objects.in_workspace(console.workspace).select_related("group").order_by("priority", "id")
    group = None
    if scope == "workspace":
        qs = qs.filter(group__isnull=True)
    elif scope:
        group = Group.objects.get_in_workspace(console.workspace, pk=scope)
        # a group's page lists its own rules and the workspace-wide ones that also answer there
        qs = qs.filter(group=group) | qs.filter(group__isnull=True)
    firings: dict[int, int] = {}
    for rule_id, fired in AutoReplyFiring.objects.in_workspace(console.workspace).values_list("rule_id", "fired"):
        firings[rule_id] = firings.get(rule_id, 0) + fired
    rules = list(qs)
    for rule in rules:
        rule.fired_total = firings.get(rule.pk, 0)  # type: ignore[attr-defined]
    return render(request, "console/groups/autoreplies.html", {
        "section": "groups", "rules": rules, "scope": scope, "group": group, "groups": group_choices(console.workspace)[1:],
    })


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def auto_reply_create(request: HttpRequest, console: Console) -> HttpResponse:
    console.require(Perm.MANAGE_GROUPS)
    if request.method == "GET":
        preset = request.GET.get("group", "").strip()
        if preset:
            Group.objects.get_in_workspace(console.workspace, pk=preset)
        form = AutoReplyForm(workspace=console.workspace, initial={"group": preset})
        return _rule_form(request, form, None)
    form = AutoReplyForm(request.POST, workspace=console.workspace)
    rule = _save_rule(form, lambda v: do_create_auto_reply(
        console.workspace, console.staff, name=v.pop("name"), pattern=v.pop("pattern"), reply=v.pop("reply"), **v))
    if rule is None:
        return _rule_form(request, form, None, status=422)
    messages.success(request, _("Auto-reply “%(name)s” created.") % {"name": rule.name})
    return HttpResponseRedirect(_rule_list_url(rule))


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_GROUPS)
def auto_reply_edit(request: HttpRequest, console: Console, rule_id: int) -> HttpResponse:
    rule = AutoReplyRule.objects.select_related("workspace", "group").get_in_workspace(console.workspace, pk=rule_id)
    if request.method == "GET":
        initial = {f: getattr(rule, f) for f in ("name", "match", "pattern", "reply", "cooldown_seconds", "priority", "is_active")}
        initial["group"] = str(rule.group_id or "")
        return _rule_form(request, AutoReplyForm(workspace=console.workspace, initial=initial), rule)
    console.require(Perm.MANAGE_GROUPS)
    form = AutoReplyForm(request.POST, workspace=console.workspace)
    saved = _save_rule(form, lambda v: do_update_auto_reply(rule, console.staff, **v))
    if saved is None:
        return _rule_form(request, form, rule, status=422)
    messages.success(request, _("Auto-reply “%(name)s” saved.") % {"name": saved.name})
    return HttpResponseRedirect(_rule_list_url(saved))


@require_POST
@console_view(Perm.MANAGE_GROUPS)
def auto_reply_delete(request: HttpRequest, console: Console, rule_id: int) -> HttpResponse:
    rule = AutoReplyRule.objects.select_related("workspace").get_in_workspace(console.workspace, pk=rule_id)
    name, group_id = rule.name, rule.group_id
    do_delete_auto_reply(rule, console.staff)
    messages.success(request, _("Auto-reply “%(name)s” deleted.") % {"name": name})
    return HttpResponseRedirect(_rule_list_url(group_id=group_id))


def _rule_form(request: HttpRequest, form: AutoReplyForm, rule: AutoReplyRule | None, status: int = 200) -> HttpResponse:
    title = _("Edit auto-reply") if rule else _("New auto-reply")
    return render(request, "console/groups/autoreplies_form.html", {
        "section": "groups", "form": form, "rule": rule, "title": title, "back_url": _rule_list_url(rule),
    }, status=status)


@require_POST
@console_view(Perm.VIEW_GROUPS)
def auto_reply_test(request: HttpRequest, console: Console) -> HttpResponse:
    """Which rule a text would trigger, and whether it would answer now (cool-down,
    quiet hours, auto-replies off). A dry run: nothing is sent or recorded."""
    text = request.POST.get("text", "")[:2000]
    group_id = request.POST.get("group", "").strip()
    group = Group.objects.select_related("workspace").get_in_workspace(console.workspace, pk=group_id) if group_id else None
    rules = rules_for(console.workspace.pk)
    # group 0 matches no group rule: only the workspace-wide ones
    matched = triggered(rules, group.pk if group else 0, text)
    names = dict(AutoReplyRule.objects.in_workspace(console.workspace).filter(pk__in=[r.pk for r in matched]).values_list("pk", "name"))
    outcome = None
    if group is not None and matched:
        eff = effective(group)
        last = dict(AutoReplyFiring.objects.filter(group=group, rule_id__in=[r.pk for r in matched]).values_list("rule_id", "last_fired_at"))
        reply = decide(rules, group_id=group.pk, text=text, sent_at=timezone.now(), last_fired=last, settings=eff.values, tz=group.workspace.tz)
        if reply is None:
            outcome = _("No reply now: auto-replies are off here, every matching rule is cooling down, or it is quiet hours.")
        elif reply.not_before is not None:
            outcome = _("“%(name)s” would answer when the quiet hours end.") % {"name": names.get(reply.rule.pk, "")}
        else:
            outcome = _("“%(name)s” would answer now.") % {"name": names.get(reply.rule.pk, "")}
    rows = [{"pk": r.pk, "name": names.get(r.pk, ""), "match": r.match, "pattern": r.pattern, "reply": r.reply, "scope": r.group_id}
            for r in matched]
    return render(request, "console/groups/autoreplies_test.html", {"text": text, "matched": rows, "group": group, "outcome": outcome})
