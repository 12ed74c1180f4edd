"""Reads for fission campaigns: the live dashboard numbers, the invite tree and exports."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.db.models import Count, Q, Sum

from siyu.acquisition.models import Scan
from siyu.campaigns.models import Campaign, CommissionEntry, Invite, InviteStatus, Participant, RewardEntry


def campaign_dashboard(campaign: Campaign, *, top: int = 10) -> dict[str, Any]:
    """Participants, invites by status, conversion by copy variant, leaderboard, funnel
    (poster scans → invites → counted → confirmed → rewarded) and the ledger by state."""
    invites = dict(Invite.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    by_status = {status: invites.get(status, 0) for status in InviteStatus.values}
    participants = Participant.objects.filter(campaign=campaign)
    variants = []
    for variant in campaign.variants.annotate(
        participants_n=Count("participants", distinct=True),
        confirmed_n=Count("participants__invites", filter=Q(participants__invites__status=InviteStatus.CONFIRMED), distinct=True),
    ):
        variants.append({
            "key": variant.key, "scene": variant.scene, "participants": variant.participants_n, "confirmed_invites": variant.confirmed_n,
            "invites_per_participant": round(variant.confirmed_n / variant.participants_n, 2) if variant.participants_n else 0.0,
        })
    leaderboard = [
        {"participant_id": p.pk, "contact_id": p.contact_id, "name": p.contact.name, "confirmed": p.confirmed_count,
         "pending": p.pending_n, "flagged": p.flagged}
        for p in participants.select_related("contact").annotate(pending_n=Count("invites", filter=Q(invites__status=InviteStatus.PENDING)))
        .order_by("-confirmed_count", "-pending_n", "joined_at", "id")[:top]
    ]
    scans = Scan.objects.filter(live_code_id=campaign.live_code_id).exclude(invite_code="").count() if campaign.live_code_id else 0
    rewarded = RewardEntry.objects.filter(campaign=campaign).exclude(state="void").values("participant").distinct().count()
    rewards = dict(RewardEntry.objects.filter(campaign=campaign).values_list("state").annotate(n=Count("id")).values_list("state", "n"))
    commission = CommissionEntry.objects.filter(campaign=campaign, state="pending").aggregate(total=Sum("amount"))["total"]
    return {
        "campaign": campaign.key,
        "status": campaign.status,
        "participants": participants.count(),
        "seed_participants": participants.filter(inviter__isnull=True).count(),
        "max_depth": max(participants.values_list("depth", flat=True), default=0),
        "invites": by_status,
        "variants": variants,
        "leaderboard": leaderboard,
        "funnel": {
            "poster_scans": scans,
            "invites": sum(by_status.values()),
            "counted": by_status["pending"] + by_status["confirmed"] + by_status["clawed_back"],
            "confirmed": by_status["confirmed"],
            "rewarded_participants": rewarded,
        },
        "rewards": rewards,
        "commission_pending": str(commission or "0.00"),
        "flagged_participants": participants.filter(flagged=True).count(),
    }


def invite_tree(campaign: Campaign, root: Participant | None = None, *, max_nodes: int = 2000) -> list[dict[str, Any]]:
    """The invite tree as nested nodes (who invited whom, depth, when)."""
    rows = list(Participant.objects.filter(campaign=campaign).select_related("contact").order_by("depth", "joined_at", "id")[:max_nodes])
    nodes = {p.pk: {"participant_id": p.pk, "name": p.contact.name, "depth": p.depth, "joined_at": p.joined_at,
                    "confirmed": p.confirmed_count, "children": []} for p in rows}
    roots = []
    for p in rows:
        parent = nodes.get(p.inviter_id) if p.inviter_id else None
        if parent is not None:
            parent["children"].append(nodes[p.pk])
        elif (root is None and p.inviter_id is None) or (root is not None and p.pk == root.pk):
            roots.append(nodes[p.pk])
    return roots


def export_invites_csv(campaign: Campaign) -> str:
    """Every invite with its inviter, status and reason (contact names only: no phone numbers)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["invite_id", "inviter", "inviter_code", "invitee", "status", "reason", "created_at", "hold_until", "decided_at"])
    for invite in Invite.objects.filter(campaign=campaign).select_related("inviter__contact", "invitee").order_by("id"):
        writer.writerow([invite.pk, invite.inviter.contact.name, invite.inviter.invite_code, invite.invitee.name, invite.status, invite.reason,
                         invite.created_at.isoformat(), invite.hold_until.isoformat(), invite.decided_at.isoformat() if invite.decided_at else ""])
    return out.getvalue()
