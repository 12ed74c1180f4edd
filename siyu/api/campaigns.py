"""Fission campaigns API: campaigns, participants and posters, the dashboard, invite tree,
rewards ledger and exports. Mounted by the lead under ``/api/v1/``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.http import FileResponse, HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from pydantic import Field, field_validator

from siyu.accounts.permissions import Perm, require
from siyu.acquisition.models import LiveCode
from siyu.api.auth import me, ws
from siyu.api.common import ERRORS
from siyu.campaigns import actions
from siyu.campaigns.errors import DistributionLevelRefused
from siyu.campaigns.models import Campaign, CopyVariant, Participant, RewardEntry
from siyu.campaigns.posters import render_poster
from siyu.campaigns.queries import campaign_dashboard, export_invites_csv, invite_tree
from siyu.contacts.queries import get_visible_contact

router = Router(tags=["campaigns"])


class TierIO(Schema):
    threshold: int
    kind: str
    label: str
    value: Decimal = Decimal("0")
    points: int = 0


class VariantIO(Schema):
    key: str
    scene: str
    text: str


class CampaignOut(Schema):
    id: int
    key: str
    name: str
    kind: str
    status: str
    live_code_id: int | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    hold_days: int
    rules: str
    title: str
    benefits: str
    endorsement: str
    urgency: str
    commission_rates: list[str]
    tiers: list[TierIO]
    variants: list[VariantIO]

    @staticmethod
    def resolve_tiers(obj: Campaign) -> list[dict[str, Any]]:
        return [{"threshold": t.threshold, "kind": t.kind, "label": t.label, "value": t.value, "points": t.points} for t in obj.tiers.all()]

    @staticmethod
    def resolve_variants(obj: Campaign) -> list[dict[str, Any]]:
        return [{"key": v.key, "scene": v.scene, "text": v.text} for v in obj.variants.all()]


def _two_levels(rates: list[Decimal] | None) -> list[Decimal] | None:
    # Refused here too so that the API answers the legal reason before anything else.
    if rates is not None and len(rates) > 2:
        raise DistributionLevelRefused(len(rates))
    return rates


class CampaignIn(Schema):
    key: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=100)
    kind: str
    status: str = "draft"
    live_code_id: int | None = None
    starts_at: dt.datetime
    ends_at: dt.datetime
    hold_days: int = Field(3, ge=0, le=60)
    rules: str = ""
    title: str = ""
    benefits: str = ""
    endorsement: str = ""
    urgency: str = ""
    tiers: list[TierIO] = []
    variants: list[VariantIO] = []
    commission_rates: list[Decimal] = Field([], description="distribution: at most two levels (三级及以上分销可能构成传销)")

    @field_validator("commission_rates", mode="after")
    @classmethod
    def _check_levels(cls, rates: list[Decimal]) -> list[Decimal] | None:
        return _two_levels(rates)


class CampaignPatch(Schema):
    name: str | None = None
    status: str | None = None
    starts_at: dt.datetime | None = None
    ends_at: dt.datetime | None = None
    rules: str | None = None
    title: str | None = None
    benefits: str | None = None
    endorsement: str | None = None
    urgency: str | None = None
    commission_rates: list[Decimal] | None = None

    @field_validator("commission_rates", mode="after")
    @classmethod
    def _check_levels(cls, rates: list[Decimal] | None) -> list[Decimal] | None:
        return _two_levels(rates)


class JoinIn(Schema):
    contact_id: int
    variant_key: str = ""


class ParticipantOut(Schema):
    id: int
    contact_id: int
    invite_code: str
    inviter_id: int | None
    depth: int
    confirmed_count: int
    flagged: bool
    flag_reason: str
    joined_at: dt.datetime


class RewardOut(Schema):
    id: int
    participant_id: int
    kind: str
    label: str
    value: Decimal
    points: int
    state: str
    note: str
    created_at: dt.datetime


class RewardStateIn(Schema):
    state: str
    note: str = ""


def _campaign(request: HttpRequest, campaign_id: int) -> Campaign:
    return Campaign.objects.get_in_workspace(ws(request), pk=campaign_id)  # type: ignore[no-any-return]


def _dicts(payload: Schema, names: tuple[str, ...]) -> dict[str, Any]:
    data = payload.dict()
    return {k: data[k] for k in names}


@router.get("/campaigns", response={200: list[CampaignOut], **ERRORS})
def list_campaigns(request: HttpRequest) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return Campaign.objects.in_workspace(ws(request)).prefetch_related("tiers", "variants")


@router.post("/campaigns", response={201: CampaignOut, **ERRORS})
def create_campaign(request: HttpRequest, payload: CampaignIn) -> Any:
    data = payload.dict()
    live_code_id = data.pop("live_code_id")
    live_code = LiveCode.objects.get_in_workspace(ws(request), pk=live_code_id) if live_code_id else None
    data["commission_rates"] = [str(r) for r in data["commission_rates"]]
    campaign = actions.do_create_campaign(ws(request), me(request), live_code=live_code, **data)
    return Status(201, campaign)


@router.get("/campaigns/{int:campaign_id}", response={200: CampaignOut, **ERRORS})
def get_campaign(request: HttpRequest, campaign_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return _campaign(request, campaign_id)


@router.patch("/campaigns/{int:campaign_id}", response={200: CampaignOut, **ERRORS})
def update_campaign(request: HttpRequest, campaign_id: int, payload: CampaignPatch) -> Any:
    changes = payload.dict(exclude_unset=True)
    if changes.get("commission_rates") is not None:
        changes["commission_rates"] = [str(r) for r in changes["commission_rates"]]
    return actions.do_update_campaign(_campaign(request, campaign_id), me(request), **changes)


@router.get("/campaigns/{int:campaign_id}/dashboard", response={200: dict[str, Any], **ERRORS})
def dashboard(request: HttpRequest, campaign_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return campaign_dashboard(_campaign(request, campaign_id))


@router.get("/campaigns/{int:campaign_id}/tree", response={200: list[dict[str, Any]], **ERRORS})
def tree(request: HttpRequest, campaign_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    return invite_tree(_campaign(request, campaign_id))


@router.get("/campaigns/{int:campaign_id}/invites.csv", response={200: None, **ERRORS})
def export_invites(request: HttpRequest, campaign_id: int) -> Any:
    require(me(request), Perm.EXPORT_CONTACTS)
    campaign = _campaign(request, campaign_id)
    response = HttpResponse(export_invites_csv(campaign), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{campaign.key}-invites.csv"'
    return response


@router.post("/campaigns/{int:campaign_id}/participants", response={201: ParticipantOut, 200: ParticipantOut, **ERRORS})
def join(request: HttpRequest, campaign_id: int, payload: JoinIn) -> Any:
    require(me(request), Perm.OPERATE_CHANNELS)
    campaign = _campaign(request, campaign_id)
    contact = get_visible_contact(ws(request), me(request), payload.contact_id)
    variant = CopyVariant.objects.get_in_workspace(ws(request), campaign=campaign, key=payload.variant_key) if payload.variant_key else None
    participant, created = actions.do_join_campaign(campaign, contact, variant=variant)
    return Status(201 if created else 200, participant)


@router.get("/campaigns/{int:campaign_id}/participants/{int:participant_id}/poster.png", response={200: None, **ERRORS})
def poster(request: HttpRequest, campaign_id: int, participant_id: int) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    campaign = _campaign(request, campaign_id)
    participant = Participant.objects.select_related("contact").get_in_workspace(ws(request), pk=participant_id, campaign=campaign)
    path, _ = render_poster(campaign, participant, request.build_absolute_uri("/").rstrip("/"))
    return FileResponse(path.open("rb"), content_type="image/png")


@router.post("/campaigns/{int:campaign_id}/confirm-due", response={200: dict[str, int], **ERRORS})
def confirm_due(request: HttpRequest, campaign_id: int) -> Any:
    require(me(request), Perm.OPERATE_CHANNELS)
    return actions.do_confirm_due_invites(_campaign(request, campaign_id))


@router.get("/campaigns/{int:campaign_id}/rewards", response={200: list[RewardOut], **ERRORS})
def rewards(request: HttpRequest, campaign_id: int, state: str | None = None) -> Any:
    require(me(request), Perm.VIEW_GROUPS)
    qs = RewardEntry.objects.in_workspace(ws(request)).filter(campaign=_campaign(request, campaign_id))
    return qs.filter(state=state) if state else qs


@router.post("/campaigns/rewards/{int:reward_id}/state", response={200: RewardOut, **ERRORS})
def set_reward_state(request: HttpRequest, reward_id: int, payload: RewardStateIn) -> Any:
    entry = RewardEntry.objects.select_related("campaign__workspace").get_in_workspace(ws(request), pk=reward_id)
    return actions.do_set_reward_state(entry, me(request), state=payload.state, note=payload.note)
