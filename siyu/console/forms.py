"""Console forms: they parse and keep what the operator typed; the actions validate the
domain rules and their error messages are added to the form."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from siyu.accounts.models import Role, Staff
from siyu.communities.models import Group, GroupType, Horizon, Threshold
from siyu.contacts.models import Contact, FieldType, Gender, LifecycleStage, ProfileField, Tag
from siyu.core.models import Workspace


class LoginForm(AuthenticationForm):
    """Email + password; the Django username of a staff login is the lower-cased email."""

    username = forms.CharField(label=_("Email"), max_length=254, widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}))

    def clean_username(self) -> str:
        return str(self.cleaned_data["username"]).strip().lower()


def staff_choices(workspace: Workspace, *, blank: str | None = None) -> list[tuple[str, str]]:
    rows = Staff.objects.in_workspace(workspace).filter(is_active=True).order_by("display_name")
    choices = [(str(s.pk), s.display_name) for s in rows]
    return [("", blank), *choices] if blank is not None else choices


def tag_choices(workspace: Workspace) -> list[tuple[str, list[tuple[str, str]]]]:
    """Tags grouped by tag group, for ``<select>`` optgroups."""
    grouped: dict[str, list[tuple[str, str]]] = {}
    for tag in Tag.objects.in_workspace(workspace).select_related("group").order_by("group_id", "id"):
        grouped.setdefault(tag.group.name, []).append((str(tag.pk), tag.name))
    return list(grouped.items())


class ContactEditForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=100)
    gender = forms.ChoiceField(label=_("Gender"), choices=Gender.choices)
    birthday = forms.DateField(label=_("Birthday"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    region = forms.CharField(label=_("Region"), max_length=50, required=False)
    city = forms.CharField(label=_("City"), max_length=50, required=False)
    phone = forms.CharField(label=_("Phone"), max_length=32, required=False)
    lifecycle_stage = forms.ChoiceField(label=_("Stage"), choices=LifecycleStage.choices)
    owner = forms.ChoiceField(label=pgettext_lazy("assigned staff member", "Owner"), required=False)
    external_ref = forms.CharField(label=_("External ref"), max_length=100, required=False)

    def __init__(self, *args: Any, contact: Contact, profile_fields: list[ProfileField], may_reassign: bool, sees_pii: bool, **kw: Any) -> None:
        initial = {
            "name": contact.name,
            "gender": contact.gender,
            "birthday": contact.birthday,
            "region": contact.region,
            "city": contact.city,
            # Without the PII permission the number is never sent to the browser: an
            # empty field means "keep it".
            "phone": contact.phone if sees_pii else "",
            "lifecycle_stage": contact.lifecycle_stage,
            "owner": str(contact.owner_id or ""),
            "external_ref": contact.external_ref,
        }
        initial.update({f"profile__{f.key}": contact.profile.get(f.key, "") for f in profile_fields})
        kw["initial"] = initial
        super().__init__(*args, **kw)
        self.sees_pii = sees_pii
        self.profile_fields = profile_fields
        if sees_pii:
            self.fields["phone"].help_text = _("Leave empty to remove the number.")
        else:
            self.fields["phone"].help_text = _("Currently %(masked)s. Leave empty to keep it.") % {"masked": contact.phone_masked or "—"}
        if may_reassign:
            cast(forms.ChoiceField, self.fields["owner"]).choices = staff_choices(contact.workspace, blank=str(_("— nobody —")))
        else:
            del self.fields["owner"]
        for field in profile_fields:
            name = f"profile__{field.key}"
            if field.field_type == FieldType.CHOICE:
                self.fields[name] = forms.ChoiceField(label=field.label, required=False, choices=[("", "—"), *((c, c) for c in field.choices)])
            elif field.field_type == FieldType.DATE:
                self.fields[name] = forms.CharField(label=field.label, required=False, widget=forms.DateInput(attrs={"type": "date"}))
            elif field.field_type == FieldType.NUMBER:
                self.fields[name] = forms.CharField(label=field.label, required=False, widget=forms.NumberInput(attrs={"step": "any"}))
            else:
                self.fields[name] = forms.CharField(label=field.label, required=False, max_length=500)

    def changes(self) -> dict[str, Any]:
        """Keyword arguments for ``do_update_contact``."""
        data = dict(self.cleaned_data)
        changes: dict[str, Any] = {k: data[k] for k in ("name", "gender", "birthday", "region", "city", "lifecycle_stage", "external_ref")}
        if self.sees_pii or data["phone"]:
            changes["phone"] = data["phone"]
        if "owner" in self.fields:
            changes["owner"] = int(data["owner"]) if data["owner"] else None
        if self.profile_fields:
            changes["profile"] = {f.key: data.get(f"profile__{f.key}", "") for f in self.profile_fields}
        return changes


class TagRuleForm(forms.Form):
    name = forms.CharField(label=_("Rule name"), max_length=100, required=False)
    tag = forms.ChoiceField(label=_("Tag"))
    match = forms.ChoiceField(label=_("Match"), choices=[("all", _("all conditions")), ("any", _("any condition"))])
    conditions = forms.CharField(
        label=_("Conditions (JSON)"),
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "mono"}),
        initial='[{"event": "order", "min_count": 2, "within_days": 90}]',
    )
    remove_when_unmet = forms.BooleanField(label=_("Remove the tag when no longer met"), required=False)

    def __init__(self, *args: Any, workspace: Workspace, **kw: Any) -> None:
        super().__init__(*args, **kw)
        cast(forms.ChoiceField, self.fields["tag"]).choices = [("", "—"), *tag_choices(workspace)]

    def clean_conditions(self) -> Any:
        try:
            return json.loads(self.cleaned_data["conditions"])
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(_("not valid JSON: %(error)s") % {"error": exc.msg}) from exc


class StaffAddForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    display_name = forms.CharField(label=_("Display name"), max_length=100, required=False)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.AGENT)
    password = forms.CharField(
        label=_("Password"), required=False, min_length=8, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=_("At least 8 characters. Leave empty for an existing login."),
    )
    store = forms.CharField(label=_("Store"), max_length=100, required=False)


class GroupForm(forms.Form):
    """A group's positioning and lifecycle — creating one, or editing it (``group``: the
    form starts from its values and adds the admins)."""

    name = forms.CharField(label=_("Name"), max_length=100)
    group_type = forms.ChoiceField(label=_("Type"), choices=GroupType.choices)
    horizon = forms.ChoiceField(label=_("Horizon"), choices=Horizon.choices)
    ends_on = forms.DateField(label=_("Ends on"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                              help_text=_("Required for a short-term group."))
    dismiss_at_end = forms.BooleanField(
        label=_("Dismiss the group on its channel after the end date"), required=False,
        help_text=_("Short-term groups only. Otherwise the group is only archived in siyu when it ends."),
    )
    end_farewell = forms.CharField(label=_("Farewell posted before the dismissal"), max_length=500, required=False,
                                   widget=forms.Textarea(attrs={"rows": 2}))
    vision = forms.CharField(label=_("Vision / slogan"), max_length=200, required=False)
    rights = forms.CharField(label=_("Member rights"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    threshold = forms.ChoiceField(label=_("Threshold"), choices=Threshold.choices)
    threshold_detail = forms.CharField(label=_("Threshold detail"), max_length=200, required=False)
    rules_text = forms.CharField(label=_("Group rules"), required=False, widget=forms.Textarea(attrs={"rows": 4}))
    capacity = forms.IntegerField(label=_("Capacity"), initial=200)
    owner = forms.ChoiceField(label=pgettext_lazy("assigned staff member", "Owner"), required=False)
    admins = forms.MultipleChoiceField(label=_("Admins"), required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, workspace: Workspace, group: Group | None = None, **kw: Any) -> None:
        if group is not None:
            kw.setdefault("initial", {
                **{f: getattr(group, f) for f in ("name", "group_type", "horizon", "ends_on", "dismiss_at_end", "end_farewell", "vision",
                                                  "rights", "threshold", "threshold_detail", "rules_text", "capacity")},
                "owner": str(group.owner_id or ""), "admins": [str(pk) for pk in group.admins.values_list("pk", flat=True)],
            })
        super().__init__(*args, **kw)
        cast(forms.ChoiceField, self.fields["owner"]).choices = staff_choices(workspace, blank=str(_("— nobody —")))
        if group is None:
            del self.fields["admins"]  # appointed once the group exists
        else:  # a deactivated admin stays listed, so the form can be saved without touching them
            current = [(str(s.pk), s.display_name) for s in group.admins.filter(is_active=False)]
            cast(forms.ChoiceField, self.fields["admins"]).choices = [*staff_choices(workspace), *current]

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["owner"] = int(data["owner"]) if data["owner"] else None
        if "admins" in data:
            data["admins"] = [int(pk) for pk in data["admins"]]
        return data
