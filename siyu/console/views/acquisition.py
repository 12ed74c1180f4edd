"""Acquisition console (引流): channels with their cost and the attribution report
(scans → adds → joined group → first order → revenue, cost per add, ROI, by day), and
live codes (活码) with their slot stats, QR, pause/resume and a create form.

Reading needs ``VIEW_ALL_CONTACTS`` (the report counts every contact of a channel);
writing goes through :mod:`siyu.acquisition.actions`, which require ``OPERATE_CHANNELS``.
Numbers come from :mod:`siyu.acquisition.queries`; the views only reshape them.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.contrib import messages
from django.db import transaction
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.models import Staff, StaffChannelIdentity
from siyu.accounts.permissions import Perm, has_perm
from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_channel,
    do_create_live_code,
    do_map_staff_identity,
    do_record_spend,
    do_remove_code_group,
    do_remove_code_staff,
    do_set_live_code_status,
    do_update_channel,
    do_update_code_group,
    do_update_code_staff,
    do_update_live_code,
)
from siyu.acquisition.models import (
    GROUP_CAPACITY_MAX,
    JOIN_WAY_MAX_GROUPS,
    AcquisitionChannel,
    CostModel,
    LiveCode,
    LiveCodeGroup,
    LiveCodeKind,
    LiveCodeStaff,
    LiveCodeStatus,
    ScanOutcome,
    SourceKind,
)
from siyu.acquisition.queries import channel_report, live_code_stats
from siyu.channels.models import ChannelKind
from siyu.communities.models import Group
from siyu.console.workspace import Console, console_view
from siyu.contacts.models import Tag
from siyu.core.errors import Conflict, ValidationFailed

REPORT_DAYS = 14
REPORT_MAX_DAYS = 366


# ---------------------------------------------------------------- channels


class ChannelForm(forms.Form):
    key = forms.SlugField(label=gettext_lazy("Key"), max_length=32, help_text=gettext_lazy("kept by contacts as their first touch; cannot change"))
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=SourceKind.choices, initial=SourceKind.OTHER)
    cost_model = forms.ChoiceField(label=gettext_lazy("Cost model"), choices=CostModel.choices, initial=CostModel.NONE)
    cost_per_add = forms.DecimalField(label=gettext_lazy("Cost per add"), max_digits=12, decimal_places=2, min_value=0, initial=0,
                                      help_text=gettext_lazy("yuan; for the per-add cost model"))
    owner = forms.ModelChoiceField(label=gettext_lazy("Owner"), queryset=Staff.objects.none(), required=False)
    tags = forms.ModelMultipleChoiceField(label=gettext_lazy("Tags"), queryset=Tag.objects.none(), required=False,
                                          help_text=gettext_lazy("applied to contacts who arrive through it"))

    def __init__(self, console: Console, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = Staff.objects.in_workspace(console.workspace).filter(is_active=True).order_by("display_name", "id")  # type: ignore[attr-defined]
        self.fields["tags"].queryset = Tag.objects.in_workspace(console.workspace).select_related("group").order_by("group__name", "name")  # type: ignore[attr-defined]


def _channels_page(request: HttpRequest, console: Console, form: ChannelForm | None = None, status: int = 200) -> HttpResponse:
    channels = (
        AcquisitionChannel.objects.in_workspace(console.workspace).select_related("owner").prefetch_related("tags")
        .annotate(codes=Count("live_codes", distinct=True)).order_by("key")
    )
    return render(
        request,
        "console/acquisition/channels.html",
        {"channels": list(channels), "form": form or ChannelForm(console), "form_open": form is not None},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_ALL_CONTACTS)
def acquisition_channels(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method != "POST":
        return _channels_page(request, console)
    console.require(Perm.OPERATE_CHANNELS)
    form = ChannelForm(console, request.POST)
    if not form.is_valid():
        return _channels_page(request, console, form, status=422)
    data = form.cleaned_data
    try:
        channel = do_create_channel(
            console.workspace, console.staff, key=data["key"], name=data["name"], kind=data["kind"], cost_model=data["cost_model"],
            cost_per_add=data["cost_per_add"], owner=data["owner"], tags=list(data["tags"]),
        )
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _channels_page(request, console, form, status=422)
    messages.success(request, _("Channel “%(name)s” created.") % {"name": channel.name})
    return HttpResponseRedirect(reverse("console:acquisition_channel", args=[channel.pk]))


def report_period(request: HttpRequest, today: dt.date) -> tuple[dt.date, dt.date, str | None]:
    """The period of ``?from=&to=`` (inclusive), or the last 14 days with a note when it
    is not a valid one (start after end, longer than a year)."""
    end, start = today, today - dt.timedelta(days=REPORT_DAYS - 1)
    raw_from, raw_to = request.GET.get("from", "").strip(), request.GET.get("to", "").strip()
    if not raw_from and not raw_to:
        return start, end, None
    try:
        chosen_start = dt.date.fromisoformat(raw_from) if raw_from else start
        chosen_end = dt.date.fromisoformat(raw_to) if raw_to else end
    except ValueError:
        return start, end, _("That period is not valid; showing the last 14 days instead.")
    if chosen_start > chosen_end or (chosen_end - chosen_start).days >= REPORT_MAX_DAYS:
        return start, end, _("That period is not valid; showing the last 14 days instead.")
    return chosen_start, chosen_end, None


def _report_chart(days: list[Any]) -> dict[str, Any]:
    """What the chart draws: counts as bars, revenue and cost as lines (floats for ECharts)."""
    return {
        "days": [row.day.isoformat() for row in days],
        "series": {
            "scans": [row.scans for row in days],
            "adds": [row.adds for row in days],
            "joined_group": [row.joined_group for row in days],
            "first_order": [row.first_order for row in days],
            "revenue": [float(row.revenue) for row in days],
            "cost": [float(row.cost) for row in days],
        },
        "labels": {"scans": _("Scans"), "adds": _("Adds"), "joined_group": _("Joined group"), "first_order": _("First order"),
                   "revenue": _("Revenue"), "cost": _("Cost")},
    }


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def acquisition_channel(request: HttpRequest, console: Console, channel_id: int) -> HttpResponse:
    """One channel: its settings, live codes and the attribution report for a period."""
    channel = (
        AcquisitionChannel.objects.in_workspace(console.workspace).select_related("owner").prefetch_related("tags", "groups")
        .get_in_workspace(console.workspace, pk=channel_id)
    )
    today = timezone.localdate(timezone.now(), console.workspace.tz)
    start, end, period_error = report_period(request, today)
    report = channel_report(console.workspace, channel, start, end)
    return render(
        request,
        "console/acquisition/channel_detail.html",
        {
            "channel": channel,
            "codes": list(channel.live_codes.order_by("-created_at", "-id")),
            "report": report,
            "start": start,
            "end": end,
            "period_error": period_error,
            "chart_data": _report_chart(report.days),
        },
    )


# ---------------------------------------------------------------- live codes


class LiveCodeForm(forms.Form):
    channel = forms.ModelChoiceField(label=gettext_lazy("Channel"), queryset=AcquisitionChannel.objects.none())
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=LiveCodeKind.choices)
    staff = forms.ModelMultipleChoiceField(label=gettext_lazy("Staff to route to"), queryset=Staff.objects.none(), required=False,
                                           help_text=gettext_lazy("staff codes"))
    daily_cap = forms.IntegerField(label=gettext_lazy("Daily cap per staff member (0 = none)"), min_value=0, initial=0)
    total_cap = forms.IntegerField(label=gettext_lazy("Total cap per staff member (0 = none)"), min_value=0, initial=0)
    backup_staff = forms.ModelChoiceField(label=gettext_lazy("Backup staff"), queryset=Staff.objects.none(), required=False,
                                          help_text=gettext_lazy("staff codes: when everyone is capped or off duty"))
    groups = forms.ModelMultipleChoiceField(label=gettext_lazy("Groups to fill"), queryset=Group.objects.none(), required=False,
                                            help_text=gettext_lazy("group codes, in fill order"))
    group_capacity = forms.IntegerField(label=gettext_lazy("Seats per group"), min_value=2, max_value=GROUP_CAPACITY_MAX, initial=200)

    def __init__(self, console: Console, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        staff = Staff.objects.in_workspace(console.workspace).filter(is_active=True).order_by("display_name", "id")
        self.fields["channel"].queryset = AcquisitionChannel.objects.in_workspace(console.workspace).filter(is_active=True)  # type: ignore[attr-defined]
        self.fields["staff"].queryset = staff  # type: ignore[attr-defined]
        self.fields["backup_staff"].queryset = staff  # type: ignore[attr-defined]
        self.fields["groups"].queryset = Group.objects.in_workspace(console.workspace).filter(archived_at__isnull=True).order_by("name", "id")  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("kind") == LiveCodeKind.STAFF and not data.get("staff"):
            self.add_error("staff", _("A staff code needs at least one staff member."))
        if data.get("kind") == LiveCodeKind.GROUP and data.get("staff"):
            self.add_error("staff", _("A group code routes to groups, not to staff."))
        if data.get("kind") == LiveCodeKind.STAFF and data.get("groups"):
            self.add_error("groups", _("A staff code routes to staff, not to groups."))
        return data


def _today_start(console: Console) -> dt.datetime:
    today = timezone.localdate(timezone.now(), console.workspace.tz)
    return dt.datetime.combine(today, dt.time.min, tzinfo=console.workspace.tz)


def _codes_page(request: HttpRequest, console: Console, form: LiveCodeForm | None = None, status: int = 200) -> HttpResponse:
    codes = (
        LiveCode.objects.in_workspace(console.workspace).select_related("channel")
        .annotate(scans_today=Count("scans", filter=Q(scans__scanned_at__gte=_today_start(console))))
        .order_by("-created_at", "-id")
    )
    channel_id = request.GET.get("channel", "")
    if channel_id.isdigit():
        codes = codes.filter(channel_id=int(channel_id))
    return render(
        request,
        "console/acquisition/codes.html",
        {"codes": list(codes), "form": form or LiveCodeForm(console), "form_open": form is not None},
        status=status,
    )


@require_http_methods(["GET", "POST"])
@console_view(Perm.VIEW_ALL_CONTACTS)
def acquisition_codes(request: HttpRequest, console: Console) -> HttpResponse:
    if request.method != "POST":
        return _codes_page(request, console)
    console.require(Perm.OPERATE_CHANNELS)
    form = LiveCodeForm(console, request.POST)
    if not form.is_valid():
        return _codes_page(request, console, form, status=422)
    data = form.cleaned_data
    try:
        # A code without its targets routes nobody: create it and its slots together or not at all.
        with transaction.atomic():
            code = do_create_live_code(
                console.workspace, console.staff, channel=data["channel"], name=data["name"], kind=data["kind"],
                backup_staff=data["backup_staff"], group_capacity=data["group_capacity"],
            )
            for member in data["staff"]:
                do_add_code_staff(code, console.staff, staff=member, daily_cap=data["daily_cap"], total_cap=data["total_cap"])
            for group in data["groups"]:
                do_add_code_group(code, console.staff, group=group)
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _codes_page(request, console, form, status=422)
    messages.success(request, _("Live code “%(name)s” created.") % {"name": code.name})
    return HttpResponseRedirect(reverse("console:acquisition_code", args=[code.pk]))


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def acquisition_code(request: HttpRequest, console: Console, code_id: int) -> HttpResponse:
    """One live code: QR and public link, where its scans went, its staff or group slots."""
    code = LiveCode.objects.in_workspace(console.workspace).select_related("channel", "backup_staff", "channel_account").get_in_workspace(
        console.workspace, pk=code_id
    )
    stats = live_code_stats(code)
    outcomes = [(label, stats["by_outcome"].get(value, 0)) for value, label in ScanOutcome.choices]
    return render(
        request,
        "console/acquisition/code_detail.html",
        {
            "code": code,
            "stats": stats,
            "outcomes": outcomes,
            "scans_today": code.scans.filter(scanned_at__gte=_today_start(console)).count(),
            "public_url": request.build_absolute_uri(f"/c/{code.code}"),
            "qr_url": f"/c/{code.code}.png",
            "is_staff_code": code.kind == LiveCodeKind.STAFF,
            "on_wecom": code.channel_account is not None and code.channel_account.kind == ChannelKind.WECOM,
            "today": timezone.localdate(timezone.now(), console.workspace.tz),
        },
    )


@require_POST
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_code_status(request: HttpRequest, console: Console, code_id: int) -> HttpResponse:
    code = LiveCode.objects.in_workspace(console.workspace).get_in_workspace(console.workspace, pk=code_id)
    status = request.POST.get("status", "")
    if status not in LiveCodeStatus.values:
        raise ValidationFailed(_("Choose pause or resume."), code="invalid_status")
    do_set_live_code_status(code, console.staff, status=status)
    if status == LiveCodeStatus.PAUSED:
        messages.success(request, _("Live code “%(name)s” paused.") % {"name": code.name})
    else:
        messages.success(request, _("Live code “%(name)s” resumed.") % {"name": code.name})
    return HttpResponseRedirect(reverse("console:acquisition_code", args=[code.pk]))


# ---------------------------------------------------------------- edit forms


def _form_page(
    request: HttpRequest, title: str, form: forms.Form, back_url: str, status: int = 200, *, removable: bool = False
) -> HttpResponse:
    context = {"title": title, "form": form, "back_url": back_url, "removable": removable}
    return render(request, "console/acquisition/form.html", context, status=status)


class ChannelEditForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=SourceKind.choices)
    cost_model = forms.ChoiceField(label=gettext_lazy("Cost model"), choices=CostModel.choices)
    cost_per_add = forms.DecimalField(label=gettext_lazy("Cost per add"), max_digits=12, decimal_places=2, min_value=0,
                                      help_text=gettext_lazy("yuan; for the per-add cost model"))
    owner = forms.ModelChoiceField(label=gettext_lazy("Owner"), queryset=Staff.objects.none(), required=False)
    tags = forms.ModelMultipleChoiceField(label=gettext_lazy("Tags"), queryset=Tag.objects.none(), required=False,
                                          help_text=gettext_lazy("applied to contacts who arrive through it"))
    groups = forms.ModelMultipleChoiceField(label=gettext_lazy("Route to groups"), queryset=Group.objects.none(), required=False,
                                            help_text=gettext_lazy("groups new contacts of this channel are invited into"))
    welcome_message = forms.CharField(label=gettext_lazy("Welcome message"), required=False, widget=forms.Textarea(attrs={"rows": 3}))
    is_active = forms.BooleanField(label=gettext_lazy("Active"), required=False)

    def __init__(self, console: Console, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        ws = console.workspace
        self.fields["owner"].queryset = Staff.objects.in_workspace(ws).filter(is_active=True).order_by("display_name", "id")  # type: ignore[attr-defined]
        self.fields["tags"].queryset = Tag.objects.in_workspace(ws).select_related("group").order_by("group__name", "name")  # type: ignore[attr-defined]
        self.fields["groups"].queryset = Group.objects.in_workspace(ws).filter(archived_at__isnull=True).order_by("name", "id")  # type: ignore[attr-defined]


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_channel_edit(request: HttpRequest, console: Console, channel_id: int) -> HttpResponse:
    """Edit a channel's cost model, owner, tags, welcome message and route-to groups."""
    channel = AcquisitionChannel.objects.in_workspace(console.workspace).get_in_workspace(console.workspace, pk=channel_id)
    back_url = reverse("console:acquisition_channel", args=[channel.pk])
    title = _("Edit channel “%(name)s”") % {"name": channel.name}
    if request.method != "POST":
        initial = {k: getattr(channel, k) for k in ("name", "kind", "cost_model", "cost_per_add", "owner", "welcome_message", "is_active")}
        initial.update(tags=list(channel.tags.all()), groups=list(channel.groups.all()))
        return _form_page(request, title, ChannelEditForm(console, initial=initial), back_url)
    form = ChannelEditForm(console, request.POST)
    if not form.is_valid():
        return _form_page(request, title, form, back_url, status=422)
    data = form.cleaned_data
    try:
        do_update_channel(channel, console.staff, name=data["name"], kind=data["kind"], cost_model=data["cost_model"],
                          cost_per_add=data["cost_per_add"], owner=data["owner"], tags=list(data["tags"]), groups=list(data["groups"]),
                          welcome_message=data["welcome_message"], is_active=data["is_active"])
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _form_page(request, title, form, back_url, status=422)
    messages.success(request, _("Channel “%(name)s” saved.") % {"name": channel.name})
    return HttpResponseRedirect(back_url)


class SpendForm(forms.Form):
    starts_on = forms.DateField(label=gettext_lazy("From"), widget=forms.DateInput(attrs={"type": "date"}))
    ends_on = forms.DateField(label=gettext_lazy("To"), widget=forms.DateInput(attrs={"type": "date"}))
    amount = forms.DecimalField(label=gettext_lazy("Amount"), max_digits=12, decimal_places=2, help_text=gettext_lazy("yuan"))
    note = forms.CharField(label=gettext_lazy("Note"), max_length=200, required=False)


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_channel_spend(request: HttpRequest, console: Console, channel_id: int) -> HttpResponse:
    """Record money spent on a channel for a period (per-period cost)."""
    channel = AcquisitionChannel.objects.in_workspace(console.workspace).get_in_workspace(console.workspace, pk=channel_id)
    back_url = reverse("console:acquisition_channel", args=[channel.pk])
    title = _("Record spend on “%(name)s”") % {"name": channel.name}
    if request.method != "POST":
        return _form_page(request, title, SpendForm(), back_url)
    form = SpendForm(request.POST)
    if not form.is_valid():
        return _form_page(request, title, form, back_url, status=422)
    data = form.cleaned_data
    try:
        do_record_spend(channel, console.staff, starts_on=data["starts_on"], ends_on=data["ends_on"], amount=data["amount"],
                        note=data["note"])
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _form_page(request, title, form, back_url, status=422)
    messages.success(request, _("Spend of ¥%(amount)s recorded.") % {"amount": data["amount"]})
    return HttpResponseRedirect(back_url)


class StaffSlotForm(forms.Form):
    staff = forms.ModelChoiceField(label=gettext_lazy("Staff"), queryset=Staff.objects.none())
    weight = forms.IntegerField(label=gettext_lazy("Weight"), min_value=1, max_value=100, initial=1)
    daily_cap = forms.IntegerField(label=gettext_lazy("Daily cap (0 = none)"), min_value=0, initial=0)
    total_cap = forms.IntegerField(label=gettext_lazy("Total cap (0 = none)"), min_value=0, initial=0)
    is_online = forms.BooleanField(label=gettext_lazy("Online"), required=False, initial=True)
    schedule = forms.CharField(
        label=gettext_lazy("Schedule"), required=False, widget=forms.Textarea(attrs={"rows": 4}),
        help_text=gettext_lazy('one line per rule: "mon-fri 09:00-18:00", "sat 10:00-16:00", "2026-02-10 off" or '
                               '"2026-02-14 10:00-22:00"; empty = always'),
    )

    userid = forms.CharField(label=gettext_lazy("WeCom userid"), max_length=64, required=False,
                             help_text=gettext_lazy("the staff member's userid on the code's WeCom account (needed for 「联系我」)"))

    def __init__(self, console: Console, *args: Any, editing: bool = False, wecom: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["staff"].queryset = Staff.objects.in_workspace(console.workspace).filter(is_active=True).order_by("display_name", "id")  # type: ignore[attr-defined]
        if editing:
            del self.fields["staff"]
        if not (wecom and has_perm(console.staff, Perm.MANAGE_STAFF)):
            del self.fields["userid"]

    def clean_schedule(self) -> dict[str, Any]:
        try:
            return parse_schedule(self.cleaned_data.get("schedule", ""))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_schedule(text: str) -> dict[str, Any]:
    """The schedule editor's lines → the slot's schedule JSON (see ``LiveCodeStaff``)."""
    weekly: dict[str, list[list[str]]] = {}
    dates: dict[str, list[list[str]]] = {}
    for raw in (text or "").splitlines():
        line = raw.strip().lower()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            raise ValueError(_("Schedule line “%(line)s”: expected a day and hours, e.g. “mon-fri 09:00-18:00”.") % {"line": raw.strip()})
        day, hours = parts
        span: list[list[str]] = [] if hours == "off" else [hours.split("-", 1)] if "-" in hours else [[hours]]
        if span and (len(span[0]) != 2 or not all(re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", t) for t in span[0]) or span[0][0] >= span[0][1]):
            raise ValueError(_("Schedule line “%(line)s”: hours are HH:MM-HH:MM, ending after they start.") % {"line": raw.strip()})
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
            dates.setdefault(day, []).extend(span)
            continue
        first, _sep, last = day.partition("-")
        if first not in _DAYS or (last and last not in _DAYS):
            raise ValueError(_("Schedule line “%(line)s”: days are mon … sun or a date YYYY-MM-DD.") % {"line": raw.strip()})
        lo, hi = _DAYS.index(first), _DAYS.index(last or first)
        for d in range(lo, hi + 1):
            weekly.setdefault(str(d), []).extend(span)
    schedule: dict[str, Any] = {}
    if weekly:
        schedule["weekly"] = weekly
    if dates:
        schedule["dates"] = dates
    return schedule


def format_schedule(schedule: dict[str, Any]) -> str:
    """A slot's schedule JSON → the editor's lines (the inverse of :func:`parse_schedule`)."""
    days = [(_DAYS[int(d)], spans) for d, spans in sorted((schedule.get("weekly") or {}).items())]
    days += sorted((schedule.get("dates") or {}).items())
    return "\n".join(line for day, spans in days for line in ([f"{day} {a}-{b}" for a, b in spans] or [f"{day} off"]))


def _code(console: Console, code_id: int) -> LiveCode:
    return LiveCode.objects.in_workspace(console.workspace).select_related("channel_account").get_in_workspace(  # type: ignore[no-any-return]
        console.workspace, pk=code_id
    )


def _on_wecom(code: LiveCode) -> bool:
    return code.channel_account is not None and code.channel_account.kind == ChannelKind.WECOM


def _map_userid(code: LiveCode, staff: Staff, console: Console, userid: str | None) -> None:
    """The slot form's userid field (shown on WeCom codes to those who manage staff)."""
    if userid is None or code.channel_account is None:
        return
    do_map_staff_identity(code.channel_account, staff, console.staff, userid=userid)


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_code_staff_add(request: HttpRequest, console: Console, code_id: int) -> HttpResponse:
    """Add a staff member to a staff code with weight, caps, schedule and online state."""
    code = _code(console, code_id)
    back_url = reverse("console:acquisition_code", args=[code.pk])
    title = _("Add staff to “%(name)s”") % {"name": code.name}
    wecom = _on_wecom(code)
    if request.method != "POST":
        return _form_page(request, title, StaffSlotForm(console, wecom=wecom), back_url)
    form = StaffSlotForm(console, request.POST, wecom=wecom)
    if not form.is_valid():
        return _form_page(request, title, form, back_url, status=422)
    data = form.cleaned_data
    try:
        with transaction.atomic():
            _map_userid(code, data["staff"], console, data.get("userid"))
            do_add_code_staff(code, console.staff, staff=data["staff"], weight=data["weight"], daily_cap=data["daily_cap"],
                              total_cap=data["total_cap"], schedule=data["schedule"], is_online=data["is_online"])
    except (ValidationFailed, Conflict) as exc:
        form.add_error(None, exc.message)
        return _form_page(request, title, form, back_url, status=422)
    messages.success(request, _("%(name)s now takes scans of this code.") % {"name": data["staff"].display_name})
    return HttpResponseRedirect(back_url)


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_code_staff_edit(request: HttpRequest, console: Console, code_id: int, slot_id: int) -> HttpResponse:
    """Change a staff slot (weight, caps, schedule, online) or take the staff member off the code."""
    code = _code(console, code_id)
    slot = LiveCodeStaff.objects.in_workspace(console.workspace).select_related("staff").get_in_workspace(
        console.workspace, pk=slot_id, live_code=code
    )
    back_url = reverse("console:acquisition_code", args=[code.pk])
    title = _("Staff slot of %(name)s") % {"name": slot.staff.display_name}
    wecom = _on_wecom(code)
    if request.method != "POST":
        initial = {"weight": slot.weight, "daily_cap": slot.daily_cap, "total_cap": slot.total_cap, "is_online": slot.is_online,
                   "schedule": format_schedule(slot.schedule)}
        if wecom:
            initial["userid"] = StaffChannelIdentity.objects.filter(account_id=code.channel_account_id, staff=slot.staff).values_list(
                "external_id", flat=True).first() or ""
        form = StaffSlotForm(console, initial=initial, editing=True, wecom=wecom)
        return _form_page(request, title, form, back_url, removable=True)
    if request.POST.get("remove"):
        do_remove_code_staff(slot, console.staff)
        messages.success(request, _("%(name)s no longer takes scans of this code.") % {"name": slot.staff.display_name})
        return HttpResponseRedirect(back_url)
    form = StaffSlotForm(console, request.POST, editing=True, wecom=wecom)
    if not form.is_valid():
        return _form_page(request, title, form, back_url, status=422, removable=True)
    data = form.cleaned_data
    try:
        with transaction.atomic():
            _map_userid(code, slot.staff, console, data.get("userid"))
            do_update_code_staff(slot, console.staff, weight=data["weight"], daily_cap=data["daily_cap"],
                                 total_cap=data["total_cap"], schedule=data["schedule"], is_online=data["is_online"])
    except (ValidationFailed, Conflict) as exc:
        form.add_error(None, exc.message)
        return _form_page(request, title, form, back_url, status=422)
    messages.success(request, _("Staff slot saved."))
    return HttpResponseRedirect(back_url)


class GroupSlotForm(forms.Form):
    group = forms.ModelChoiceField(label=gettext_lazy("Group"), queryset=Group.objects.none())
    capacity = forms.IntegerField(label=gettext_lazy("Seats"), min_value=1, max_value=GROUP_CAPACITY_MAX, required=False,
                                  help_text=gettext_lazy("empty = the code's seats per group"))

    def __init__(self, console: Console, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["group"].queryset = Group.objects.in_workspace(console.workspace).filter(archived_at__isnull=True).order_by("name", "id")  # type: ignore[attr-defined]


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_code_group_add(request: HttpRequest, console: Console, code_id: int) -> HttpResponse:
    """Put a group in a group code's fill order with its seats."""
    code = _code(console, code_id)
    back_url = reverse("console:acquisition_code", args=[code.pk])
    title = _("Add a group to “%(name)s”") % {"name": code.name}
    if request.method != "POST":
        return _form_page(request, title, GroupSlotForm(console), back_url)
    form = GroupSlotForm(console, request.POST)
    if not form.is_valid():
        return _form_page(request, title, form, back_url, status=422)
    try:
        do_add_code_group(code, console.staff, group=form.cleaned_data["group"], capacity=form.cleaned_data["capacity"])
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _form_page(request, title, form, back_url, status=422)
    messages.success(request, _("Group “%(name)s” added.") % {"name": form.cleaned_data["group"].name})
    return HttpResponseRedirect(back_url)


class GroupSlotEditForm(forms.Form):
    capacity = forms.IntegerField(label=gettext_lazy("Seats"), min_value=1, max_value=GROUP_CAPACITY_MAX)


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_code_group_edit(request: HttpRequest, console: Console, code_id: int, slot_id: int) -> HttpResponse:
    """Change a group slot's seats or take the group off the code."""
    code = _code(console, code_id)
    slot = LiveCodeGroup.objects.in_workspace(console.workspace).select_related("group").get_in_workspace(
        console.workspace, pk=slot_id, live_code=code
    )
    back_url = reverse("console:acquisition_code", args=[code.pk])
    title = _("Group slot of %(name)s") % {"name": slot.group.name}
    if request.method != "POST":
        return _form_page(request, title, GroupSlotEditForm(initial={"capacity": slot.capacity}), back_url, removable=True)
    if request.POST.get("remove"):
        do_remove_code_group(slot, console.staff)
        messages.success(request, _("Group “%(name)s” taken off this code.") % {"name": slot.group.name})
        return HttpResponseRedirect(back_url)
    form = GroupSlotEditForm(request.POST)
    if not form.is_valid():
        return _form_page(request, title, form, back_url, status=422, removable=True)
    try:
        do_update_code_group(slot, console.staff, capacity=form.cleaned_data["capacity"])
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _form_page(request, title, form, back_url, status=422, removable=True)
    messages.success(request, _("Group slot saved."))
    return HttpResponseRedirect(back_url)


class LiveCodeEditForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    group_capacity = forms.IntegerField(label=gettext_lazy("Seats per group"), min_value=2, max_value=GROUP_CAPACITY_MAX)
    window_size = forms.IntegerField(label=gettext_lazy("Open groups window"), min_value=1, max_value=JOIN_WAY_MAX_GROUPS,
                                     help_text=gettext_lazy("a WeCom join way lists at most 5 groups"))
    low_watermark = forms.IntegerField(label=gettext_lazy("Open a new group below"), min_value=0, max_value=JOIN_WAY_MAX_GROUPS)
    expires_at = forms.DateTimeField(label=gettext_lazy("Expires at"), required=False, help_text=gettext_lazy("empty = never"))


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def acquisition_code_edit(request: HttpRequest, console: Console, code_id: int) -> HttpResponse:
    """Edit a live code's own settings: name, seats per group, window, watermark, expiry."""
    code = _code(console, code_id)
    back_url = reverse("console:acquisition_code", args=[code.pk])
    title = _("Settings of “%(name)s”") % {"name": code.name}
    if request.method != "POST":
        initial = {"name": code.name, "group_capacity": code.group_capacity, "window_size": code.window_size,
                   "low_watermark": code.low_watermark, "expires_at": code.expires_at}
        return _form_page(request, title, LiveCodeEditForm(initial=initial), back_url)
    form = LiveCodeEditForm(request.POST)
    if not form.is_valid():
        return _form_page(request, title, form, back_url, status=422)
    try:
        do_update_live_code(code, console.staff, **form.cleaned_data)
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _form_page(request, title, form, back_url, status=422)
    messages.success(request, _("Live code “%(name)s” saved.") % {"name": code.name})
    return HttpResponseRedirect(back_url)
