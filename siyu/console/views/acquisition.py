"""Acquisition console (引流): channels with their cost and the attribution report
(scans → adds → joined group → first order → revenue, cost per add, ROI, by day), and
live codes (活码) with their slot stats, QR, pause/resume and a create form.

Reading needs ``VIEW_ALL_CONTACTS`` (the report counts every contact of a channel);
writing goes through :mod:`siyu.acquisition.actions`, which require ``OPERATE_CHANNELS``.
Numbers come from :mod:`siyu.acquisition.queries`; the views only reshape them.
"""

from __future__ import annotations

import datetime as dt
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

from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm
from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_channel,
    do_create_live_code,
    do_set_live_code_status,
)
from siyu.acquisition.models import (
    GROUP_CAPACITY_MAX,
    AcquisitionChannel,
    CostModel,
    LiveCode,
    LiveCodeKind,
    LiveCodeStatus,
    ScanOutcome,
    SourceKind,
)
from siyu.acquisition.queries import channel_report, live_code_stats
from siyu.communities.models import Group
from siyu.console.workspace import Console, console_view
from siyu.contacts.models import Tag
from siyu.core.errors import ValidationFailed

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
    code = LiveCode.objects.in_workspace(console.workspace).select_related("channel", "backup_staff").get_in_workspace(
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
