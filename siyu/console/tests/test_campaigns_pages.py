"""Fission campaign create/edit forms in the console (through the real actions)."""

from __future__ import annotations

import pytest

from siyu.accounts.models import AuditEntry, Role
from siyu.acquisition.actions import do_create_channel, do_create_live_code
from siyu.campaigns.models import Campaign
from siyu.core.testing import make_staff, make_workspace

pytestmark = pytest.mark.django_db

VARIANTS = "moments: 朋友圈文案\nexisting_group: 老群文案\ntransit_group: 中转群文案"


@pytest.fixture
def shop():
    ws = make_workspace(name="Shop")
    owner = make_staff(ws, Role.OWNER, email="owner@example.com")
    analyst = make_staff(ws, Role.ANALYST, email="analyst@example.com")
    channel = do_create_channel(ws, owner, key="fission", name="裂变", kind="fission")
    code = do_create_live_code(ws, owner, channel=channel, name="裂变群码", kind="group")
    return {"ws": ws, "owner": owner, "analyst": analyst, "code": code}


def _form(shop, **overrides):
    return {"key": "spring", "name": "春季裂变", "kind": "group", "status": "running", "live_code": shop["code"].pk,
            "starts_at": "2026-03-01T10:00", "ends_at": "2026-03-15T22:00", "hold_days": "3",
            "tiers": "3 coupon 20元券 20\n10 gift 帆布袋\n20 points 500积分 500", "variants": VARIANTS,
            "commission_rates": "0.08, 0.03", "title": "邀请3位好友", "benefits": "20元券", **overrides}


def test_creating_a_campaign_with_tiers_variants_and_two_levels(shop, console_client):
    # when
    response = console_client(shop["owner"]).post("/console/campaigns/new/", _form(shop))

    # then
    campaign = Campaign.objects.in_workspace(shop["ws"]).get(key="spring")
    assert response.status_code == 302 and response["Location"] == f"/console/campaigns/{campaign.pk}/"
    assert (campaign.status, campaign.live_code_id, campaign.hold_days, campaign.commission_rates) == (
        "running", shop["code"].pk, 3, ["0.08", "0.03"])
    assert list(campaign.tiers.values_list("threshold", "kind", "label", "points")) == [
        (3, "coupon", "20元券", 0), (10, "gift", "帆布袋", 0), (20, "points", "500积分", 500)]
    assert list(campaign.variants.values_list("key", "scene")) == [
        ("moments1", "moments"), ("existing_gro2", "existing_group"), ("transit_grou3", "transit_group")]
    assert AuditEntry.objects.filter(action="campaign.created", actor=shop["owner"]).count() == 1


def test_a_third_distribution_level_is_refused_with_the_legal_reason(shop, console_client):
    response = console_client(shop["owner"]).post("/console/campaigns/new/", _form(shop, commission_rates="0.08, 0.03, 0.01"))

    assert response.status_code == 422
    assert "三级及以上分销可能构成传销（《禁止传销条例》）" in response.content.decode()
    assert not Campaign.objects.filter(key="spring").exists()


def test_fewer_than_three_copy_variants_are_refused(shop, console_client):
    response = console_client(shop["owner"]).post("/console/campaigns/new/", _form(shop, variants="moments: 只有一条"))

    assert response.status_code == 422
    assert "Write 3 to 5 copy variants" in response.content.decode()


def test_finishing_a_campaign_through_the_edit_form(shop, console_client):
    # given
    client = console_client(shop["owner"])
    client.post("/console/campaigns/new/", _form(shop))
    campaign = Campaign.objects.get(key="spring")

    # when
    page = client.get(f"/console/campaigns/{campaign.pk}/edit/")
    response = client.post(f"/console/campaigns/{campaign.pk}/edit/", {
        "name": "春季裂变", "status": "finished", "starts_at": "2026-03-01T10:00", "ends_at": "2026-03-15T22:00", "hold_days": "3",
        "commission_rates": "0.08", "title": "", "benefits": ""})

    # then
    campaign.refresh_from_db()
    assert page.status_code == 200 and 'value="0.08, 0.03"' in page.content.decode()
    assert response.status_code == 302
    assert (campaign.status, campaign.commission_rates) == ("finished", ["0.08"])


def test_analysts_may_not_create_or_edit_campaigns(shop, console_client):
    client = console_client(shop["analyst"])

    assert client.get("/console/campaigns/new/").status_code == 403
    assert client.post("/console/campaigns/new/", _form(shop)).status_code == 403
    assert not Campaign.objects.exists()
