"""Fission console (裂变): campaigns, each campaign's live dashboard (participants,
invites by status, conversion by copy variant, leaderboard, funnel — all from
:func:`siyu.campaigns.queries.campaign_dashboard`, never recomputed here), the rewards
review queue and CSV exports.

Reading needs ``VIEW_ALL_CONTACTS`` (the leaderboard names contacts), exports need
``EXPORT_CONTACTS``, and review decisions go through ``do_set_reward_state``, which
requires ``OPERATE_CHANNELS``.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from django import forms
from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from siyu.accounts.permissions import Perm
from siyu.acquisition.models import LiveCode
from siyu.campaigns.actions import do_create_campaign, do_set_reward_state, do_update_campaign
from siyu.campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    InviteStatus,
    Participant,
    RewardEntry,
    RewardKind,
    RewardState,
    Scene,
)
from siyu.campaigns.queries import campaign_dashboard, export_invites_csv
from siyu.console.workspace import Console, back, console_view
from siyu.core.errors import Conflict, ValidationFailed

#: approve → issued (a gift: to ship); reject → void
DECISIONS = ("approve", "reject")


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def campaign_list(request: HttpRequest, console: Console) -> HttpResponse:
    campaigns = (
        Campaign.objects.in_workspace(console.workspace).select_related("live_code")
        .annotate(participants_n=Count("participants", distinct=True)).order_by("-starts_at", "-id")
    )
    in_review = RewardEntry.objects.in_workspace(console.workspace).filter(state=RewardState.REVIEW).count()
    return render(request, "console/campaigns/list.html", {"campaigns": list(campaigns), "in_review": in_review})


def _campaign(console: Console, campaign_id: int) -> Campaign:
    return Campaign.objects.in_workspace(console.workspace).select_related("live_code").get_in_workspace(console.workspace, pk=campaign_id)


def _chart_data(board: dict[str, Any], status_labels: dict[str, str]) -> dict[str, Any]:
    funnel = board["funnel"]
    return {
        "funnel": [
            {"name": _("Poster scans"), "value": funnel["poster_scans"]},
            {"name": _("Invites"), "value": funnel["invites"]},
            {"name": _("Counted"), "value": funnel["counted"]},
            {"name": _("Confirmed"), "value": funnel["confirmed"]},
            {"name": _("Rewarded participants"), "value": funnel["rewarded_participants"]},
        ],
        "invites": {"labels": [status_labels[s] for s in board["invites"]], "values": list(board["invites"].values())},
    }


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def campaign_dashboard_page(request: HttpRequest, console: Console, campaign_id: int) -> HttpResponse:
    campaign = _campaign(console, campaign_id)
    board = campaign_dashboard(campaign)
    status_labels = {value: str(label) for value, label in InviteStatus.choices}
    reward_labels = {value: str(label) for value, label in RewardState.choices}
    scene_labels = dict(Scene.choices)
    variants = [{**v, "scene_label": scene_labels.get(v["scene"], v["scene"])} for v in board["variants"]]
    return render(
        request,
        "console/campaigns/dashboard.html",
        {
            "campaign": campaign,
            "board": board,
            "variants": variants,
            "invites": [(status, status_labels[status], n) for status, n in board["invites"].items()],
            "rewards": [(reward_labels.get(state, state), n) for state, n in sorted(board["rewards"].items())],
            "tiers": list(campaign.tiers.all()),
            "in_review": RewardEntry.objects.filter(campaign=campaign, state=RewardState.REVIEW).count(),
            "chart_data": _chart_data(board, status_labels),
        },
    )


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def campaign_rewards(request: HttpRequest, console: Console) -> HttpResponse:
    """Rewards held for review (their sharer was flagged), oldest first, optionally of one campaign."""
    entries = (
        RewardEntry.objects.in_workspace(console.workspace).filter(state=RewardState.REVIEW)
        .select_related("campaign", "participant__contact").order_by("created_at", "id")
    )
    campaign = None
    raw = request.GET.get("campaign", "")
    if raw.isdigit():
        campaign = _campaign(console, int(raw))
        entries = entries.filter(campaign=campaign)
    return render(request, "console/campaigns/rewards.html", {"entries": list(entries), "campaign": campaign})


@require_POST
@console_view(Perm.OPERATE_CHANNELS)
def campaign_reward_decide(request: HttpRequest, console: Console, entry_id: int) -> HttpResponse:
    entry = RewardEntry.objects.in_workspace(console.workspace).select_related("campaign__workspace").get_in_workspace(
        console.workspace, pk=entry_id
    )
    decision = request.POST.get("decision", "")
    if decision not in DECISIONS:
        raise ValidationFailed(_("Choose approve or reject."), code="invalid_decision")
    if decision == "approve":
        state = RewardState.TO_SHIP if entry.kind == RewardKind.GIFT else RewardState.ISSUED
    else:
        state = RewardState.VOID
    do_set_reward_state(entry, console.staff, state=state, note=request.POST.get("note", "").strip())
    if state == RewardState.VOID:
        messages.success(request, _("Reward “%(label)s” rejected.") % {"label": entry.label})
    else:
        messages.success(request, _("Reward “%(label)s” approved.") % {"label": entry.label})
    return back(request, reverse("console:campaign_rewards"))


def export_participants_csv(campaign: Campaign) -> str:
    """Every participant with inviter, depth and counts (contact names only: no phone numbers)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["participant_id", "name", "invite_code", "inviter", "depth", "variant", "joined_at", "confirmed", "flagged", "flag_reason"])
    rows = Participant.objects.filter(campaign=campaign).select_related("contact", "inviter__contact", "variant").order_by("joined_at", "id")
    for p in rows:
        writer.writerow([p.pk, p.contact.name, p.invite_code, p.inviter.contact.name if p.inviter else "", p.depth,
                         p.variant.key if p.variant else "", p.joined_at.isoformat(), p.confirmed_count, int(p.flagged), p.flag_reason])
    return out.getvalue()


@require_GET
@console_view(Perm.EXPORT_CONTACTS)
def campaign_export(request: HttpRequest, console: Console, campaign_id: int) -> HttpResponse:
    campaign = _campaign(console, campaign_id)
    what = request.GET.get("what", "participants")
    if what not in ("participants", "invites"):
        raise ValidationFailed(_("Export participants or invites."), code="invalid_export")
    body = export_invites_csv(campaign) if what == "invites" else export_participants_csv(campaign)
    response = HttpResponse("\ufeff" + body, content_type="text/csv; charset=utf-8")  # BOM: Excel opens UTF-8 Chinese names
    response["Content-Disposition"] = f'attachment; filename="{campaign.key}-{what}.csv"'
    return response


# ---------------------------------------------------------------- create / edit


class CampaignForm(forms.Form):
    key = forms.SlugField(label=gettext_lazy("Key"), max_length=32)
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    kind = forms.ChoiceField(label=gettext_lazy("Kind"), choices=CampaignKind.choices)
    status = forms.ChoiceField(label=gettext_lazy("Status"), choices=CampaignStatus.choices, initial=CampaignStatus.DRAFT)
    live_code = forms.ModelChoiceField(label=gettext_lazy("Live code invitees enter through"), queryset=LiveCode.objects.none(),
                                       required=False)
    starts_at = forms.DateTimeField(label=gettext_lazy("Starts"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    ends_at = forms.DateTimeField(label=gettext_lazy("Ends"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    hold_days = forms.IntegerField(label=gettext_lazy("Hold days"), min_value=0, max_value=60, initial=3,
                                   help_text=gettext_lazy("an invite counts only if the invitee stays this long"))
    tiers = forms.CharField(
        label=gettext_lazy("Reward tiers"), widget=forms.Textarea(attrs={"rows": 3}),
        help_text=gettext_lazy('one per line: "invites kind label [value]", kind coupon, gift or points — e.g. "3 coupon 20元券 20"'),
    )
    variants = forms.CharField(
        label=gettext_lazy("Copy variants"), widget=forms.Textarea(attrs={"rows": 5}),
        help_text=gettext_lazy('3 to 5 lines "scene: text", scene moments, existing_group, transit_group or formal_group'),
    )
    commission_rates = forms.CharField(
        label=gettext_lazy("Distribution commission rates"), required=False,
        help_text=gettext_lazy("level 1, level 2 — e.g. “0.08, 0.03”; empty = no distribution; at most two levels"),
    )
    title = forms.CharField(label=gettext_lazy("Poster title"), max_length=60, required=False)
    benefits = forms.CharField(label=gettext_lazy("Benefits (one per line)"), required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, console: Console, *args: Any, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["live_code"].queryset = LiveCode.objects.in_workspace(console.workspace).order_by("name", "id")  # type: ignore[attr-defined]
        if editing:
            # Tiers, variants and the code shape invites already made: they stay as created.
            for name in ("key", "kind", "live_code", "tiers", "variants"):
                del self.fields[name]

    def clean_tiers(self) -> list[dict[str, Any]]:
        tiers = []
        for line in self.cleaned_data.get("tiers", "").splitlines():
            parts = line.split()
            if not parts:
                continue
            if len(parts) < 3 or not parts[0].isdigit() or parts[1] not in RewardKind.values:
                raise forms.ValidationError(_("Tier line “%(line)s”: expected “invites kind label [value]”.") % {"line": line.strip()})
            tier: dict[str, Any] = {"threshold": int(parts[0]), "kind": parts[1], "label": parts[2]}
            if len(parts) > 3:
                if parts[1] == RewardKind.POINTS:
                    tier["points"] = int(parts[3]) if parts[3].isdigit() else 0
                else:
                    tier["value"] = parts[3]
            tiers.append(tier)
        if not tiers:
            raise forms.ValidationError(_("A campaign needs at least one reward tier."))
        return tiers

    def clean_variants(self) -> list[dict[str, Any]]:
        variants: list[dict[str, Any]] = []
        for line in self.cleaned_data.get("variants", "").splitlines():
            if not line.strip():
                continue
            scene, sep, text = line.partition(":")
            if not sep or scene.strip() not in Scene.values:
                raise forms.ValidationError(_("Variant line “%(line)s”: expected “scene: text”.") % {"line": line.strip()})
            variants.append({"key": f"{scene.strip()[:12]}{len(variants) + 1}", "scene": scene.strip(), "text": text.strip()})
        if not 3 <= len(variants) <= 5:
            raise forms.ValidationError(_("Write 3 to 5 copy variants (one for each place the campaign is shared)."))
        return variants

    def clean_commission_rates(self) -> list[str]:
        raw = self.cleaned_data.get("commission_rates", "").replace("，", ",")
        return [r.strip() for r in raw.split(",") if r.strip()]


def _campaign_form_page(request: HttpRequest, title: str, form: CampaignForm, back_url: str, status: int = 200) -> HttpResponse:
    return render(request, "console/acquisition/form.html", {"title": title, "form": form, "back_url": back_url}, status=status)


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def campaign_create(request: HttpRequest, console: Console) -> HttpResponse:
    """Create a fission campaign: bait tiers, type, period, live code, copy variants, hold
    days and up to two levels of distribution (a third is refused with the legal reason)."""
    title, back_url = _("New fission campaign"), reverse("console:campaigns")
    if request.method != "POST":
        return _campaign_form_page(request, title, CampaignForm(console), back_url)
    form = CampaignForm(console, request.POST)
    if not form.is_valid():
        return _campaign_form_page(request, title, form, back_url, status=422)
    data = form.cleaned_data
    try:
        campaign = do_create_campaign(
            console.workspace, console.staff, key=data["key"], name=data["name"], kind=data["kind"], status=data["status"],
            live_code=data["live_code"], starts_at=data["starts_at"], ends_at=data["ends_at"], hold_days=data["hold_days"],
            tiers=data["tiers"], variants=data["variants"], commission_rates=data["commission_rates"], title=data["title"],
            benefits=data["benefits"],
        )
    except (ValidationFailed, Conflict) as exc:
        form.add_error(None, exc.message)
        return _campaign_form_page(request, title, form, back_url, status=422)
    messages.success(request, _("Campaign “%(name)s” created.") % {"name": campaign.name})
    return HttpResponseRedirect(reverse("console:campaign", args=[campaign.pk]))


@require_http_methods(["GET", "POST"])
@console_view(Perm.OPERATE_CHANNELS)
def campaign_edit(request: HttpRequest, console: Console, campaign_id: int) -> HttpResponse:
    """Change a campaign's status (draft → running → finished), period, hold, texts and
    distribution rates."""
    campaign = _campaign(console, campaign_id)
    title, back_url = _("Edit campaign “%(name)s”") % {"name": campaign.name}, reverse("console:campaign", args=[campaign.pk])
    if request.method != "POST":
        initial = {"name": campaign.name, "status": campaign.status, "starts_at": campaign.starts_at, "ends_at": campaign.ends_at,
                   "hold_days": campaign.hold_days, "commission_rates": ", ".join(campaign.commission_rates), "title": campaign.title,
                   "benefits": campaign.benefits}
        return _campaign_form_page(request, title, CampaignForm(console, initial=initial, editing=True), back_url)
    form = CampaignForm(console, request.POST, editing=True)
    if not form.is_valid():
        return _campaign_form_page(request, title, form, back_url, status=422)
    data = form.cleaned_data
    try:
        do_update_campaign(campaign, console.staff, **{k: data[k] for k in (
            "name", "status", "starts_at", "ends_at", "hold_days", "commission_rates", "title", "benefits")})
    except ValidationFailed as exc:
        form.add_error(None, exc.message)
        return _campaign_form_page(request, title, form, back_url, status=422)
    messages.success(request, _("Campaign “%(name)s” saved.") % {"name": campaign.name})
    return HttpResponseRedirect(back_url)
