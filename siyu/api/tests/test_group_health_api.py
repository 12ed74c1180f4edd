import datetime as dt
import zoneinfo

import pytest
from django.utils import timezone

from siyu.accounts.models import Role
from siyu.api.tests.conftest import client_for
from siyu.channels.actions import do_create_channel_account
from siyu.communities.actions import (
    do_add_member,
    do_create_group,
    do_infer_member_roles,
    do_record_group_health,
    do_record_group_message,
)
from siyu.communities.models import Alert, GroupRepull, MemberRole
from siyu.communities.tests.test_health import LAST, fading_group
from siyu.core.testing import make_contact, make_staff, make_workspace

pytestmark = pytest.mark.django_db
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def test_health_returns_the_stored_days_oldest_first(workspace, owner, api):
    group, _ = fading_group(workspace, owner, members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=2), LAST)

    body = api.get(f"/groups/{group.pk}/health", {"days": 2}).json()

    assert body["group_id"] == group.pk and body["state"] == "fading"
    assert [d["day"] for d in body["days"]] == ["2026-06-03", "2026-06-04"]
    assert body["latest"] == {
        "day": "2026-06-04", "state": "fading", "messages": 2, "talkers": 2, "members": 10, "active_ratio": 0.2,
        "messages_avg7": 2.0, "talkers_avg7": 2.0, "messages_base": 6.0, "talkers_base": 6.0, "newcomers": 0,
        "newcomer_retention": None, "silence_days": 0, "ads_caught": 0,
        "reasons": ["日均消息 2.0 条，此前 6.0 条（下降 67%）", "日均发言人数 2.0 人，此前 6.0 人（下降 67%）"],
    }
    assert api.get(f"/groups/{group.pk}/health", {"days": 0}).json()["error"]["code"] == "invalid_days"


def test_health_refresh_fills_up_to_yesterday(workspace, owner, api):
    group = do_create_group(workspace, None, name="新群", created_at=timezone.now() - dt.timedelta(days=2))
    body = api.post(f"/groups/{group.pk}/health/refresh").json()
    assert len(body["days"]) in (2, 3)  # two or three local days, depending on the hour
    assert body["days"][-1]["day"] == (timezone.now().astimezone(SHANGHAI).date() - dt.timedelta(days=1)).isoformat()


def test_heatmap(workspace, api):
    group = do_create_group(workspace, None, name="福利群")
    member = make_contact(workspace)
    monday = timezone.now().astimezone(SHANGHAI).date() - dt.timedelta(days=7)
    monday -= dt.timedelta(days=monday.weekday())
    do_record_group_message(group, member, external_id="m1", text="在吗",
                            sent_at=dt.datetime.combine(monday, dt.time(20, 30), tzinfo=SHANGHAI))

    body = api.get(f"/groups/{group.pk}/heatmap").json()

    assert (body["days"], body["time_zone"], body["best_hours"]) == (30, "Asia/Shanghai", [20])
    assert body["grid"][0][20] == 1 and sum(map(sum, body["grid"])) == 1


def test_roles_list_hand_set_and_inferred_with_reasons(workspace, owner, api):
    group = do_create_group(workspace, None, name="会员群")
    _admin, _ = do_add_member(group, make_contact(workspace, name="管理员"), None, role=MemberRole.ADMIN)
    _lurker, _ = do_add_member(group, make_contact(workspace, name="潜水员"), None)
    do_infer_member_roles(group, day=LAST)

    items = api.get(f"/groups/{group.pk}/roles").json()["items"]

    assert [(i["contact_name"], i["role"], i["role_assigned"], i["reason"], i["evaluated_on"]) for i in items] == [
        ("管理员", "admin", True, "set by hand", None),
        ("潜水员", "lurker", False, "30 天内未发言", "2026-06-04"),
    ]


def test_repull_and_alerts(workspace, owner, api, django_capture_on_commit_callbacks):
    account = do_create_channel_account(workspace, None, kind="sandbox", name="sbx")
    yesterday = timezone.now().astimezone(workspace.tz).date() - dt.timedelta(days=1)
    group, contacts = fading_group(workspace, owner, members=8, account=account, external_id="room-old", last=yesterday)
    do_record_group_health(group, yesterday - dt.timedelta(days=3), yesterday)

    alerts = api.get("/alerts").json()
    assert alerts["count"] == 1 and alerts["items"][0]["group_name"] == "静安福利群"
    assert alerts["items"][0]["kind"] == "group_fading"

    with django_capture_on_commit_callbacks(execute=True):
        first = api.post(f"/groups/{group.pk}/repull", {"new_name": "二期群", "archive_old": False})
    again = api.post(f"/groups/{group.pk}/repull", {"new_name": "别的名字"})

    assert first.status_code == 201 and again.status_code == 200
    body = first.json()
    assert (body["new_group_name"], body["status"], sorted(body["invited"])) == ("二期群", "done", sorted(c.pk for c in contacts[:6]))
    assert again.json()["id"] == body["id"]
    # the re-pull resolved the alert
    assert api.get("/alerts").json()["count"] == 0
    resolved = api.get("/alerts", {"state": "resolved"}).json()["items"][0]
    assert resolved["resolution"] == "re-pulled into 二期群"


def test_resolve_alert(workspace, owner, api):
    group, _ = fading_group(workspace, owner, members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)
    alert = Alert.objects.get(group=group)

    body = api.post(f"/alerts/{alert.pk}/resolve", {"note": "周六办分享会"}).json()

    assert body["resolution"] == "周六办分享会" and body["resolved_by_id"] == owner.pk
    assert api.get("/alerts", {"state": "bogus"}).json()["error"]["code"] == "invalid_state"


def test_agents_may_read_but_not_repull_or_resolve(workspace, owner):
    group, _ = fading_group(workspace, owner, members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)
    alert = Alert.objects.get(group=group)
    agent = client_for(make_staff(workspace, Role.AGENT))

    assert agent.get(f"/groups/{group.pk}/health").status_code == 200
    assert agent.post(f"/groups/{group.pk}/repull", {}).status_code == 403
    assert agent.post(f"/alerts/{alert.pk}/resolve", {}).status_code == 403
    assert GroupRepull.objects.count() == 0


def test_every_endpoint_treats_another_workspace_as_missing(workspace, owner):
    group, _ = fading_group(workspace, owner, members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)
    alert = Alert.objects.get(group=group)
    other = make_workspace()
    stranger = client_for(make_staff(other, Role.OWNER))
    do_create_group(other, None, name="their group")

    for response in (
        stranger.get(f"/groups/{group.pk}/health"),
        stranger.post(f"/groups/{group.pk}/health/refresh"),
        stranger.get(f"/groups/{group.pk}/heatmap"),
        stranger.get(f"/groups/{group.pk}/roles"),
        stranger.post(f"/groups/{group.pk}/repull", {}),
        stranger.post(f"/alerts/{alert.pk}/resolve", {}),
    ):
        assert (response.status_code, response.json()["error"]["code"]) in ((404, "group_not_found"), (404, "alert_not_found"))
    assert stranger.get("/alerts", {"state": "all"}).json() == {"count": 0, "items": []}
    assert stranger.get("/alerts", {"group_id": group.pk, "state": "all"}).json()["count"] == 0
    assert GroupRepull.objects.count() == 0
    alert.refresh_from_db()
    assert alert.resolved_at is None
