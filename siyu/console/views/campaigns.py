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

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from siyu.accounts.permissions import Perm
from siyu.campaigns.actions import do_set_reward_state
from siyu.campaigns.models import Campaign, InviteStatus, Participant, RewardEntry, RewardKind, RewardState, Scene
from siyu.campaigns.queries import campaign_dashboard, export_invites_csv
from siyu.console.workspace import Console, back, console_view
from siyu.core.errors import ValidationFailed

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
