import datetime as dt

import pytest
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.testing import TestClient

from siyu.acquisition.actions import do_create_channel, do_create_live_code
from siyu.acquisition.models import LiveCode
from siyu.api import acquisition, campaigns
from siyu.api.auth import TokenAuth
from siyu.campaigns.actions import do_create_campaign
from siyu.core.errors import SiyuError
from siyu.core.testing import make_staff, make_token, make_workspace

pytestmark = pytest.mark.django_db

# The lead mounts these routers on the project API; tests mount them on their own API
# with the same auth and error shape.
api = NinjaAPI(auth=TokenAuth(), urls_namespace="acq-test")
api.add_router("/", acquisition.router)
api.add_router("/", campaigns.router)


@api.exception_handler(SiyuError)
def _siyu_error(request: HttpRequest, exc: SiyuError) -> HttpResponse:
    return api.create_response(request, {"error": exc.as_dict()}, status=exc.status)


def client(staff):
    return TestClient(api, headers={"Authorization": f"Bearer {make_token(staff)}"})


@pytest.fixture
def me(workspace):
    return make_staff(workspace, email="api@acq.test")


def test_channels_and_live_codes_round_trip(me):
    c = client(me)
    channel = c.post("/acquisition/channels", json={"key": "xhs", "name": "小红书笔记", "kind": "xiaohongshu",
                                                    "cost_model": "per_add", "cost_per_add": "3.20"})
    assert channel.status_code == 201
    assert (channel.json()["key"], channel.json()["cost_per_add"]) == ("xhs", "3.20")
    code = c.post("/acquisition/live-codes", json={"channel_id": channel.json()["id"], "name": "笔记加好友", "kind": "staff"})
    assert code.status_code == 201
    body = code.json()
    assert (body["state"], body["url"]) == (f"lc:{body['code']}", f"http://testlocation/c/{body['code']}")
    slot = c.post(f"/acquisition/live-codes/{body['id']}/staff", json={"staff_id": me.pk, "daily_cap": 50,
                                                                         "schedule": {"weekly": {"0": [["09:00", "18:00"]]}}})
    assert (slot.status_code, slot.json()["daily_cap"]) == (201, 50)
    bad = c.post(f"/acquisition/live-codes/{body['id']}/staff", json={"staff_id": me.pk, "schedule": {"weekly": {"0": [["18:00", "09:00"]]}}})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_schedule")
    report = c.get(f"/acquisition/channels/{channel.json()['id']}/report?start=2026-11-01&end=2026-11-03")
    assert [d["day"] for d in report.json()["days"]] == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_another_workspaces_rows_look_missing(me, channel):
    other_ws = make_workspace("other")
    other_channel = do_create_channel(other_ws, None, key="x", name="x")
    other_code = do_create_live_code(other_ws, None, channel=other_channel, name="x", kind="group")
    now = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    other_campaign = do_create_campaign(other_ws, None, key="x", name="x", kind="group", starts_at=now, ends_at=now + dt.timedelta(days=1))
    c = client(me)
    responses = [
        c.get(f"/acquisition/channels/{other_channel.pk}"),
        c.get(f"/acquisition/live-codes/{other_code.pk}"),
        c.post(f"/acquisition/live-codes/{other_code.pk}/status", json={"status": "paused"}),
        c.post("/acquisition/live-codes", json={"channel_id": other_channel.pk, "name": "x", "kind": "staff"}),
        c.get(f"/campaigns/{other_campaign.pk}/dashboard"),
        c.patch(f"/campaigns/{other_campaign.pk}", json={"name": "mine"}),
    ]
    assert [r.status_code for r in responses] == [404] * 6
    assert LiveCode.objects.get(pk=other_code.pk).status == "active"


def test_a_third_distribution_level_is_refused_by_the_api_with_the_legal_reason(me, channel):
    c = client(me)
    payload = {"key": "mlm", "name": "三级", "kind": "personal", "starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-12-10T00:00:00Z",
               "commission_rates": ["0.1", "0.05", "0.02"]}
    refused = c.post("/campaigns", json=payload)
    ok = c.post("/campaigns", json={**payload, "commission_rates": ["0.1", "0.05"]})
    patched = c.patch(f"/campaigns/{ok.json()['id']}", json={"commission_rates": ["0.1", "0.05", "0.01"]})

    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "distribution_level_refused"
    assert "三级及以上分销可能构成传销" in refused.json()["error"]["message"]
    assert (ok.status_code, ok.json()["commission_rates"]) == (201, ["0.1", "0.05"])
    assert (patched.status_code, patched.json()["error"]["code"]) == (422, "distribution_level_refused")
