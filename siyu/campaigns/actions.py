"""Writes for fission campaigns (裂变): campaigns, participants, invites, the rewards ledger
and distribution commissions.

The ledger is honest by construction:

- an invite counts only for a contact new to the workspace (created by this very arrival,
  not a merged duplicate, not the inviter), once per invitee per campaign;
- it is held (``pending``) for ``hold_days`` and confirmed only if the invitee stayed;
  one who left the group or deleted the staff contact is ``clawed_back``;
- confirmations of one participant are serialised on the participant row, so a threshold
  is crossed exactly once however many confirmations race; a unique (participant, tier)
  constraint backs that up;
- bursts from one visitor key and chains of instant leavers are put up for review, and a
  flagged participant's rewards wait in ``review`` instead of being paid.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, require
from siyu.acquisition.models import LiveCode
from siyu.campaigns.errors import DistributionLevelRefused
from siyu.campaigns.models import (
    MAX_DISTRIBUTION_LEVELS,
    Campaign,
    CampaignKind,
    CampaignStatus,
    CommissionEntry,
    CopyVariant,
    Invite,
    InviteStatus,
    Participant,
    RewardEntry,
    RewardKind,
    RewardState,
    RewardTier,
    Scene,
)
from siyu.contacts.actions import do_record_event
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Workspace

INVITE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
INVITE_LENGTH = 10
#: an invitee is "new" only if their contact was created this close to the arrival
NEW_CONTACT_WINDOW = dt.timedelta(minutes=15)
BURST_WINDOW = dt.timedelta(hours=1)
INSTANT_LEAVE = dt.timedelta(hours=1)
#: timeline kinds that mean the invitee did not stay
LEFT_KINDS = ("left_group", "deleted_by_customer", "deleted_by_staff")
_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
CAMPAIGN_TEXT_FIELDS = ("rules", "title", "benefits", "endorsement", "urgency", "background", "progress_template")
CAMPAIGN_INT_FIELDS = ("hold_days", "burst_limit", "instant_leave_limit", "progress_interval_minutes")


def _new_invite_code() -> str:
    return "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))


def check_commission_rates(rates: Any) -> list[str]:
    """Validate distribution (分销) rates: at most two levels, each a fraction in (0, 0.5].
    A third level is refused with the legal reason (三级及以上分销可能构成传销)."""
    if rates is None:
        return []
    if not isinstance(rates, list | tuple):
        raise ValidationFailed("commission_rates: a list of rates, level 1 first", code="invalid_commission_rates")
    if len(rates) > MAX_DISTRIBUTION_LEVELS:
        raise DistributionLevelRefused(len(rates))
    clean = []
    for level, rate in enumerate(rates, start=1):
        try:
            value = Decimal(str(rate))
        except (InvalidOperation, ValueError) as exc:
            raise ValidationFailed(f"commission rate of level {level} is not a number", code="invalid_commission_rates") from exc
        if not Decimal("0") < value <= Decimal("0.5") or value != value.quantize(Decimal("0.0001")):
            raise ValidationFailed(f"commission rate of level {level} must be in (0, 0.5] with ≤ 4 decimals",
                                   code="invalid_commission_rates")
        clean.append(str(value))
    return clean


def _check_tiers(tiers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[int] = set()
    clean = []
    for tier in tiers:
        threshold = tier.get("threshold")
        if not isinstance(threshold, int) or threshold < 1 or threshold in seen:
            raise ValidationFailed("each reward tier needs a distinct threshold ≥ 1", code="invalid_tiers")
        if tier.get("kind") not in RewardKind.values:
            raise ValidationFailed(f"reward kind must be one of {', '.join(RewardKind.values)}", code="invalid_tiers")
        if not str(tier.get("label", "")).strip():
            raise ValidationFailed("each reward tier needs a label", code="invalid_tiers")
        seen.add(threshold)
        clean.append({"threshold": threshold, "kind": tier["kind"], "label": str(tier["label"]).strip()[:60],
                      "value": Decimal(str(tier.get("value", "0"))), "points": int(tier.get("points", 0))})
    return clean


def _check_variants(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys: set[str] = set()
    for variant in variants:
        if variant.get("scene") not in Scene.values:
            raise ValidationFailed(f"copy variant scene must be one of {', '.join(Scene.values)}", code="invalid_variants")
        key = str(variant.get("key", ""))
        if not re.match(r"^[a-z0-9_-]{1,16}$", key) or key in keys:
            raise ValidationFailed("each copy variant needs a distinct key (a-z 0-9 _ -, ≤ 16)", code="invalid_variants")
        if not str(variant.get("text", "")).strip():
            raise ValidationFailed("a copy variant needs text", code="invalid_variants")
        keys.add(key)
    if len(variants) > 5:
        raise ValidationFailed("at most 5 copy variants per campaign", code="invalid_variants")
    return variants


def do_create_campaign(
    workspace: Workspace,
    actor: Staff | None,
    *,
    key: str,
    name: str,
    kind: str,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    live_code: LiveCode | None = None,
    tiers: list[dict[str, Any]] | None = None,
    variants: list[dict[str, Any]] | None = None,
    commission_rates: list[Any] | None = None,
    status: str = CampaignStatus.DRAFT,
    **fields: Any,
) -> Campaign:
    """Create a fission campaign (裂变活动) with its reward tiers (诱饵), copy variants and
    optional two-level distribution. Records ``campaign.created``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if not _KEY_RE.match(key or ""):
        raise ValidationFailed("campaign key: 1–32 of a-z 0-9 _ -", code="invalid_key")
    if not (name or "").strip():
        raise ValidationFailed("campaign name must not be empty", code="name_required")
    if kind not in CampaignKind.values:
        raise ValidationFailed(f"campaign kind must be one of {', '.join(CampaignKind.values)}", code="invalid_kind")
    if status not in CampaignStatus.values:
        raise ValidationFailed(f"unknown status {status!r}", code="invalid_status")
    if ends_at <= starts_at:
        raise ValidationFailed("a campaign must end after it starts", code="invalid_period")
    if live_code is not None and live_code.workspace_id != workspace.pk:
        raise NotFound("live code not found", code="live_code_not_found")
    if unknown := set(fields) - set(CAMPAIGN_TEXT_FIELDS) - set(CAMPAIGN_INT_FIELDS):
        raise ValidationFailed(f"unknown campaign field {sorted(unknown)[0]!r}", code="unknown_field")
    rates = check_commission_rates(commission_rates)
    clean_tiers = _check_tiers(tiers or [])
    clean_variants = _check_variants(variants or [])
    with transaction.atomic():
        if Campaign.objects.in_workspace(workspace).filter(key=key).exists():
            raise Conflict(f"a campaign with key {key!r} already exists", code="campaign_exists")
        campaign = Campaign.objects.create(
            workspace=workspace, key=key, name=name.strip()[:100], kind=kind, status=status, live_code=live_code,
            starts_at=starts_at, ends_at=ends_at, commission_rates=rates, **fields,
        )
        for tier in clean_tiers:
            RewardTier.objects.create(workspace=workspace, campaign=campaign, **tier)
        for variant in clean_variants:
            CopyVariant.objects.create(workspace=workspace, campaign=campaign, key=variant["key"], scene=variant["scene"],
                                       text=variant["text"])
        record_audit(workspace, actor, "campaign.created", target=campaign,
                     after={"key": key, "kind": kind, "tiers": [t["threshold"] for t in clean_tiers], "commission_rates": rates})
    return campaign


def do_update_campaign(campaign: Campaign, actor: Staff | None, **changes: Any) -> Campaign:
    """Change a campaign's status, period, texts or distribution rates (a third level is
    refused). Records ``campaign.updated``."""
    require(actor, Perm.OPERATE_CHANNELS)
    allowed = {"name", "status", "starts_at", "ends_at", "commission_rates", *CAMPAIGN_TEXT_FIELDS, *CAMPAIGN_INT_FIELDS}
    if unknown := set(changes) - allowed:
        raise ValidationFailed(f"unknown campaign field {sorted(unknown)[0]!r}", code="unknown_field")
    if "commission_rates" in changes:
        changes["commission_rates"] = check_commission_rates(changes["commission_rates"])
    if "status" in changes and changes["status"] not in CampaignStatus.values:
        raise ValidationFailed(f"unknown status {changes['status']!r}", code="invalid_status")
    if changes.get("ends_at", campaign.ends_at) <= changes.get("starts_at", campaign.starts_at):
        raise ValidationFailed("a campaign must end after it starts", code="invalid_period")
    with transaction.atomic():
        before = {k: getattr(campaign, k) for k in changes}
        for k, v in changes.items():
            setattr(campaign, k, v)
        campaign.save(update_fields=list(changes))
        record_audit(campaign.workspace, actor, "campaign.updated", target=campaign, before=before, after=changes)
    return campaign


def do_join_campaign(
    campaign: Campaign,
    contact: Contact,
    *,
    inviter: Participant | None = None,
    variant: CopyVariant | None = None,
    joined_at: dt.datetime | None = None,
) -> tuple[Participant, bool]:
    """Make a contact a participant with their own invite code (one per campaign);
    returns (participant, created). Records ``campaign.participant_joined``."""
    if contact.workspace_id != campaign.workspace_id:
        raise NotFound("contact not found", code="contact_not_found")
    existing = Participant.objects.filter(campaign=campaign, contact=contact).first()
    if existing is not None:
        return existing, False
    when = joined_at or timezone.now()
    try:
        with transaction.atomic():
            code = _new_invite_code()
            while Participant.objects.filter(invite_code=code).exists():
                code = _new_invite_code()
            participant = Participant.objects.create(
                workspace_id=campaign.workspace_id, campaign=campaign, contact=contact, invite_code=code, inviter=inviter,
                depth=(inviter.depth + 1) if inviter else 0, variant=variant, joined_at=when,
            )
            record_audit(campaign.workspace, None, "campaign.participant_joined", target=participant,
                         after={"campaign": campaign.key, "contact": contact.pk, "inviter": inviter.pk if inviter else None})
    except IntegrityError:
        return Participant.objects.get(campaign=campaign, contact=contact), False
    return participant, True


def _not_counted_reason(campaign: Campaign, inviter: Participant, invitee: Contact, when: dt.datetime) -> str:
    if campaign.status != CampaignStatus.RUNNING or not campaign.starts_at <= when <= campaign.ends_at:
        return "campaign_not_running"
    if invitee.pk == inviter.contact_id:
        return "self_invite"
    if invitee.merged_into_id is not None or Contact.objects.filter(merged_into=invitee).exists():
        return "merged_duplicate"
    if invitee.created_at < when - NEW_CONTACT_WINDOW or invitee.created_at < inviter.joined_at:
        return "already_a_contact"
    if Participant.objects.filter(campaign=campaign, contact=invitee).exists():
        return "already_participant"
    return ""


def do_record_invite(invite_code: str, invitee: Contact, *, visitor_key: str = "", occurred_at: dt.datetime | None = None) -> Invite:
    """Record that ``invitee`` arrived through a sharer's invite code. Counted invites are
    held (``pending``) for the hold period, suspicious ones go to ``review``, and ones that
    cannot count (not new, self, merged duplicate, campaign not running) are stored as
    ``rejected`` with the reason. Once per invitee per campaign. Records
    ``campaign.invite_recorded`` and an ``invited`` timeline event."""
    when = occurred_at or timezone.now()
    inviter = Participant.objects.select_related("campaign").filter(invite_code=invite_code,
                                                                    workspace_id=invitee.workspace_id).first()
    if inviter is None:
        raise NotFound("invite code not found", code="invite_code_not_found")
    campaign = inviter.campaign
    existing = Invite.objects.filter(campaign=campaign, invitee=invitee).first()
    if existing is not None:
        return existing
    reason = _not_counted_reason(campaign, inviter, invitee, when)
    status = InviteStatus.REJECTED if reason else InviteStatus.PENDING
    try:
        with transaction.atomic():
            inviter = Participant.objects.select_for_update().get(pk=inviter.pk)
            if not reason and visitor_key:
                recent = Invite.objects.filter(inviter=inviter, visitor_key=visitor_key[:64], created_at__gte=when - BURST_WINDOW).count()
                if recent + 1 >= campaign.burst_limit:
                    status, reason = InviteStatus.REVIEW, "burst_from_one_visitor"
            if not reason and inviter.flagged:
                status, reason = InviteStatus.REVIEW, "inviter_flagged"
            invite = Invite.objects.create(
                workspace_id=campaign.workspace_id, campaign=campaign, inviter=inviter, invitee=invitee, status=status, reason=reason,
                visitor_key=visitor_key[:64], created_at=when, hold_until=when + dt.timedelta(days=campaign.hold_days),
            )
            if status != InviteStatus.REJECTED:
                do_join_campaign(campaign, invitee, inviter=inviter, variant=inviter.variant, joined_at=when)
            do_record_event(invitee, "invited", idempotency_key=f"invite:{invite.pk}", occurred_at=when,
                            data={"campaign": campaign.key, "inviter": inviter.contact_id, "status": status, "reason": reason})
            record_audit(campaign.workspace, None, "campaign.invite_recorded", target=invite,
                         after={"inviter": inviter.pk, "invitee": invitee.pk, "status": status, "reason": reason})
            if status == InviteStatus.PENDING:
                _send_progress(inviter, when)
    except IntegrityError:
        return Invite.objects.get(campaign=campaign, invitee=invitee)
    return invite


def _left_since(invite: Invite) -> ContactEvent | None:
    # Only a departure within the hold costs the credit: a confirmation that runs late must
    # not hold a leave after the hold against the inviter.
    return (
        ContactEvent.objects.filter(contact_id=invite.invitee_id, kind__in=LEFT_KINDS, occurred_at__gte=invite.created_at,
                                    occurred_at__lt=invite.hold_until)
        .order_by("occurred_at").first()
    )


def _claw_back(invite: Invite, inviter: Participant, left: ContactEvent, now: dt.datetime) -> None:
    invite.status, invite.reason, invite.decided_at = InviteStatus.CLAWED_BACK, f"{left.kind}_within_hold", now
    invite.save(update_fields=["status", "reason", "decided_at"])
    record_audit(inviter.campaign.workspace, None, "campaign.invite_clawed_back", target=invite, after={"reason": invite.reason})
    instant = [
        i for i in Invite.objects.filter(inviter=inviter, status=InviteStatus.CLAWED_BACK)
        if (e := _left_since(i)) is not None and e.occurred_at - i.created_at <= INSTANT_LEAVE
    ]
    if len(instant) >= inviter.campaign.instant_leave_limit and not inviter.flagged:
        inviter.flagged, inviter.flag_reason = True, f"chain_of_instant_leavers ({len(instant)})"
        inviter.save(update_fields=["flagged", "flag_reason"])
        RewardEntry.objects.filter(participant=inviter, state__in=(RewardState.ISSUED, RewardState.TO_SHIP)).update(
            state=RewardState.REVIEW, note="inviter flagged: chain of instant leavers", updated_at=now
        )
        record_audit(inviter.campaign.workspace, None, "campaign.participant_flagged", target=inviter, after={"reason": inviter.flag_reason})


def do_confirm_invite(invite: Invite, *, now: dt.datetime | None = None) -> str:
    """Decide one held invite once its hold is over: ``confirmed`` if the invitee stayed
    (then reward every tier the participant's confirmed count reaches, exactly once), or
    ``clawed_back`` if they left the group or deleted the staff contact. Returns the
    invite's status (``held`` while the hold runs). Records ``campaign.invite_confirmed``
    / ``campaign.invite_clawed_back`` and ``campaign.reward_granted``."""
    now = now or timezone.now()
    with transaction.atomic():
        # The participant row is the lock that makes threshold crossing exactly-once.
        inviter = Participant.objects.select_for_update(of=("self",)).select_related("campaign", "campaign__workspace").get(pk=invite.inviter_id)
        current = Invite.objects.select_for_update().get(pk=invite.pk)
        if current.status != InviteStatus.PENDING:
            return current.status
        left = _left_since(current)
        if left is not None:
            _claw_back(current, inviter, left, now)
            return current.status
        if current.hold_until > now:
            return "held"
        current.status, current.decided_at = InviteStatus.CONFIRMED, now
        current.save(update_fields=["status", "decided_at"])
        inviter.confirmed_count += 1
        inviter.save(update_fields=["confirmed_count"])
        record_audit(inviter.campaign.workspace, None, "campaign.invite_confirmed", target=current,
                     after={"inviter": inviter.pk, "confirmed_count": inviter.confirmed_count})
        _grant_reached_tiers(inviter, now)
        _send_progress(inviter, now)
    return InviteStatus.CONFIRMED


def _grant_reached_tiers(participant: Participant, now: dt.datetime) -> list[RewardEntry]:
    campaign = participant.campaign
    granted = []
    have = set(RewardEntry.objects.filter(participant=participant).values_list("tier_id", flat=True))
    for tier in RewardTier.objects.filter(campaign=campaign, threshold__lte=participant.confirmed_count).exclude(pk__in=have):
        if participant.flagged:
            state = RewardState.REVIEW
        else:
            state = RewardState.TO_SHIP if tier.kind == RewardKind.GIFT else RewardState.ISSUED
        try:
            with transaction.atomic():
                entry = RewardEntry.objects.create(
                    workspace_id=campaign.workspace_id, campaign=campaign, participant=participant, tier=tier, kind=tier.kind,
                    label=tier.label, value=tier.value, points=tier.points, state=state, created_at=now, updated_at=now,
                    note=participant.flag_reason if participant.flagged else "",
                )
        except IntegrityError:
            continue  # already granted by a concurrent confirmation: the constraint says once
        record_audit(campaign.workspace, None, "campaign.reward_granted", target=entry,
                     after={"participant": participant.pk, "tier": tier.threshold, "kind": tier.kind, "state": state})
        do_record_event(participant.contact, "reward", idempotency_key=f"reward:{entry.pk}", occurred_at=now,
                        data={"campaign": campaign.key, "label": tier.label, "state": state})
        granted.append(entry)
    return granted


def do_confirm_due_invites(campaign: Campaign, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Decide every held invite of a campaign whose hold is over (a periodic pass; safe to
    run twice or concurrently). Returns counts by outcome."""
    now = now or timezone.now()
    counts: dict[str, int] = {}
    for invite in Invite.objects.filter(campaign=campaign, status=InviteStatus.PENDING, hold_until__lte=now).order_by("id"):
        outcome = do_confirm_invite(invite, now=now)
        key = str(outcome)
        counts[key] = counts.get(key, 0) + 1
    return counts


def do_invitee_left(invitee: Contact, *, now: dt.datetime | None = None) -> int:
    """Claw back the held invites of a contact who left the group or deleted the staff
    contact (call after recording the ``left_group`` / ``deleted_by_*`` event). Returns
    how many were clawed back."""
    count = 0
    for invite in Invite.objects.filter(invitee=invitee, status=InviteStatus.PENDING):
        if do_confirm_invite(invite, now=now) == InviteStatus.CLAWED_BACK:
            count += 1
    return count


REWARD_TRANSITIONS = {
    RewardState.REVIEW: {RewardState.ISSUED, RewardState.TO_SHIP, RewardState.VOID},
    RewardState.TO_SHIP: {RewardState.SHIPPED, RewardState.VOID},
    RewardState.ISSUED: {RewardState.VOID},
}


def do_set_reward_state(entry: RewardEntry, actor: Staff | None, *, state: str, note: str = "") -> RewardEntry:
    """Move a reward along its ledger (review → issued / to ship / void, to ship →
    shipped). Records ``campaign.reward_state_set``."""
    require(actor, Perm.OPERATE_CHANNELS)
    if state not in REWARD_TRANSITIONS.get(RewardState(entry.state), set()):
        raise Conflict(f"a reward cannot go from {entry.state} to {state}", code="invalid_reward_transition")
    if state == RewardState.ISSUED and entry.kind == RewardKind.GIFT:
        raise Conflict("a gift is shipped, not issued: use to_ship", code="invalid_reward_transition")
    with transaction.atomic():
        before = entry.state
        entry.state, entry.note, entry.updated_at = state, note[:200] or entry.note, timezone.now()
        entry.save(update_fields=["state", "note", "updated_at"])
        record_audit(entry.campaign.workspace, actor, "campaign.reward_state_set", target=entry, before={"state": before},
                     after={"state": state, "note": note})
    return entry


def do_record_order_commission(order: Any) -> list[CommissionEntry]:
    """Distribution (分销): commission on a paid order of an invitee, to who invited them
    (level 1) and who invited that person (level 2), at the rates of the campaign the
    buyer joined through. Never a third level. Idempotent per order and level. Records
    ``campaign.commission_recorded``."""
    if order.contact_id is None or order.status not in ("paid", "partially_refunded"):
        return []
    buyer = Participant.objects.select_related("campaign", "inviter__inviter").filter(
        contact_id=order.contact_id, inviter__isnull=False, campaign__workspace_id=order.workspace_id,
    ).exclude(campaign__commission_rates=[]).order_by("-joined_at").first()
    if buyer is None:
        return []
    campaign = buyer.campaign
    rates = [Decimal(r) for r in campaign.commission_rates[:MAX_DISTRIBUTION_LEVELS]]
    chain = [buyer.inviter, buyer.inviter.inviter if buyer.inviter else None][: len(rates)]
    entries = []
    with transaction.atomic():
        for level, (beneficiary, rate) in enumerate(zip(chain, rates, strict=False), start=1):
            if beneficiary is None or beneficiary.contact_id == order.contact_id:
                break
            amount = (order.net_amount * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            entry, created = CommissionEntry.objects.get_or_create(
                campaign=campaign, order_id=order.pk, level=level,
                defaults={"workspace_id": campaign.workspace_id, "beneficiary": beneficiary, "buyer_id": order.contact_id,
                          "rate": rate, "base_amount": order.net_amount, "amount": amount, "created_at": timezone.now()},
            )
            if created:
                record_audit(campaign.workspace, None, "campaign.commission_recorded", target=entry,
                             after={"order": order.pk, "level": level, "beneficiary": beneficiary.pk, "amount": amount})
            entries.append(entry)
    return entries


def _send_progress(participant: Participant, now: dt.datetime) -> None:
    """Tell the sharer how far they are from the next reward (「还差 2 位好友即可领取」),
    through the campaign's channel, at most once per ``progress_interval_minutes``."""
    campaign = participant.campaign
    last = participant.last_progress_at
    if last is not None and now - last < dt.timedelta(minutes=campaign.progress_interval_minutes):
        return
    counted = participant.confirmed_count + Invite.objects.filter(inviter=participant, status=InviteStatus.PENDING).count()
    tier = RewardTier.objects.filter(campaign=campaign, threshold__gt=counted).order_by("threshold").first()
    account = campaign.live_code.channel_account if campaign.live_code_id and campaign.live_code else None
    if tier is None or account is None:
        return
    from siyu.channels.base import Command, CommandKind, UnsupportedCommand
    from siyu.channels.outbox import do_enqueue
    from siyu.contacts.models import ChannelIdentity

    identity = ChannelIdentity.objects.filter(contact_id=participant.contact_id, account=account).first()
    if identity is None:
        return
    text = campaign.progress_template.format(count=counted, missing=tier.threshold - counted, reward=tier.label)
    try:
        do_enqueue(account, Command(CommandKind.SEND_MESSAGE, f"fission-progress:{participant.pk}:{counted}", identity.external_id,
                                    {"to": "contact", "text": text}))
    except UnsupportedCommand:
        return
    participant.last_progress_at = now
    participant.save(update_fields=["last_progress_at"])
