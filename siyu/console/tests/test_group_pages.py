"""Group pages: health state and metrics, trend and heatmap data, members with hand-set and
inferred roles, the moderation log with undo, alerts, and the re-pull form."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.utils import timezone, translation

from siyu.accounts.models import Role
from siyu.channels.actions import do_create_channel_account
from siyu.communities.actions import (
    do_add_member,
    do_create_group,
    do_infer_member_roles,
    do_rebuild_activity,
    do_record_group_health,
    do_record_group_message,
)
from siyu.communities.models import Alert, Group, GroupRepull, MemberRole, Membership
from siyu.communities.tests.test_health import LAST, fading_group
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.moderation.actions import do_moderate_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def ws():
    return make_workspace(name="Shop")


@pytest.fixture
def owner(ws):
    return make_staff(ws, Role.OWNER, email="owner@example.com")


def _json(html: str, element_id: str):
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_group_list_shows_health_state_and_open_alerts(ws, owner, console_client):
    group, _ = fading_group(ws, owner, members=10)
    quiet = do_create_group(ws, None, name="没有快照的群")
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)

    html = console_client(owner).get("/console/groups/").content.decode()

    row = html.split(f'href="/console/groups/{group.pk}/"')[1].split("</tr>")[0]
    assert '<span class="state state-fading">Fading</span>' in row
    assert html.split(f'href="/console/groups/{quiet.pk}/"')[1].split("</tr>")[0].count('<span class="muted">—</span>') == 1
    assert 'Alerts <span class="badge">1</span>' in html


def test_group_detail_shows_health_trend_heatmap_and_roles(ws, owner, console_client):
    # given a fading group with snapshots, a hand-set admin and inferred roles — health
    # reasons and role evidence are stored in the language active when they are recorded:
    # English here, whatever an earlier test's request left active on this thread
    group, _contacts = fading_group(ws, owner, members=10)
    with translation.override("en"):
        do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)
    admin, _ = do_add_member(group, make_contact(ws, name="管理员小林"), None, role=MemberRole.ADMIN)
    do_rebuild_activity(ws)  # the counters the inbound pipeline keeps, from the stored messages
    with translation.override("en"):
        do_infer_member_roles(group, day=LAST)

    # when the owner opens the group
    html = console_client(owner).get(f"/console/groups/{group.pk}/").content.decode()

    # then the health card shows the latest day's state and numbers
    health = html.split('id="group-health"')[1].split("</section>")[0]
    assert '<span class="state state-fading">Fading</span> <span class="muted">2026-06-04</span>' in health
    assert "messages 2.0/day vs 6.0/day before (−67%); talkers 2.0/day vs 6.0/day before (−67%)" in health
    assert '<span class="muted">Active talkers</span><strong>2</strong>' in health
    assert '<span class="muted">Active ratio</span><strong>20%</strong>' in health
    trend = _json(html, "health-trend-data")
    assert trend["days"] == ["2026-06-01", "2026-06-02", "2026-06-03", "2026-06-04"]
    assert trend["series"]["talkers"] == [2, 2, 2, 2] and trend["series"]["ratio"] == [20.0, 20.0, 20.0, 20.0]
    # and the heatmap of the last 30 days (relative to now: these 2026-06 messages are older) has 7×24 cells
    heat = _json(html, "heatmap-data")
    assert len(heat["cells"]) == 168 and heat["days"][0] == "Mon"
    # and members show hand-set (✋) and inferred roles with their explanation on hover
    assert html.count('title="set by hand">✋</span>') == 1
    assert html.count('title="30 messages in 30 days">ⓘ</span>') == 2  # the two who still talk
    assert html.count('title="23 messages in 30 days">ⓘ</span>') == 4  # the four who stopped a week ago
    assert html.count('title="no messages in 30 days">ⓘ</span>') == 4
    assert Membership.objects.get(pk=admin.pk).role == "admin"
    # and the alert, the re-pull form
    assert 'id="group-alerts"' in html and "Group is fading" in html
    assert f'action="/console/groups/{group.pk}/repull/"' in html


def test_moderation_log_on_the_group_page_links_undo(ws, owner, console_client):
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    group = do_create_group(ws, None, name="福利群", channel_account=account, external_id="room-1")
    spammer = make_contact(ws, name="广告哥")
    do_add_member(group, spammer, None)
    message, _ = do_record_group_message(group, spammer, external_id="ad", text="看看 http://cheap.example.top/x",
                                         data={"sender_external_id": "u1"})
    case = do_moderate_message(message, account)
    assert case is not None

    html = console_client(owner).get(f"/console/groups/{group.pk}/").content.decode()

    log = html.split('id="group-moderation"')[1].split("</section>")[0]
    assert "广告哥" in log and '<span class="badge">delete</span>' in log
    assert f'action="/console/moderation/cases/{case.pk}/undo/"' in log


def test_alerts_page_lists_and_resolves(ws, owner, console_client):
    group, _ = fading_group(ws, owner, members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)
    alert = Alert.objects.get(group=group)
    client = console_client(owner)

    html = client.get("/console/groups/alerts/").content.decode()
    assert f'id="alert-{alert.pk}"' in html and "静安福利群" in html

    response = client.post(f"/console/groups/alerts/{alert.pk}/resolve/", {"note": "已安排分享会"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.resolution == "已安排分享会"
    assert f'id="alert-{alert.pk}"' not in client.get("/console/groups/alerts/").content.decode()
    assert f'id="alert-{alert.pk}"' in client.get("/console/groups/alerts/?state=resolved").content.decode()


def test_repull_from_the_console(ws, owner, console_client, django_capture_on_commit_callbacks):
    account = do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    yesterday = timezone.now().astimezone(ws.tz).date() - dt.timedelta(days=1)
    group, contacts = fading_group(ws, owner, members=8, account=account, external_id="room-old", last=yesterday)

    with django_capture_on_commit_callbacks(execute=True):
        response = console_client(owner).post(f"/console/groups/{group.pk}/repull/",
                                              {"new_name": "新群", "min_messages": "1", "window_days": "30", "archive_old": "1"})

    repull = GroupRepull.objects.get(old_group=group)
    assert response.status_code == 302 and response["Location"] == f"/console/groups/{repull.new_group_id}/"
    assert sorted(repull.invited) == sorted(c.pk for c in contacts[:6])
    assert Group.objects.get(pk=group.pk).archived_at is not None


def test_agents_cannot_repull_or_resolve_and_other_workspaces_look_missing(ws, owner, console_client):
    group, _ = fading_group(ws, owner, members=10)
    do_record_group_health(group, LAST - dt.timedelta(days=3), LAST)
    alert = Alert.objects.get(group=group)
    agent = make_staff(ws, Role.AGENT)
    stranger = make_staff(make_workspace(), Role.OWNER)

    assert console_client(agent).post(f"/console/groups/{group.pk}/repull/", {}).status_code == 403
    assert console_client(agent).post(f"/console/groups/alerts/{alert.pk}/resolve/", {}).status_code == 403
    assert console_client(stranger).get(f"/console/groups/{group.pk}/").status_code == 404
    assert console_client(stranger).post(f"/console/groups/{group.pk}/repull/", {}).status_code == 404
    assert console_client(stranger).post(f"/console/groups/alerts/{alert.pk}/resolve/", {}).status_code == 404
    assert f'id="alert-{alert.pk}"' not in console_client(stranger).get("/console/groups/alerts/").content.decode()
    assert GroupRepull.objects.count() == 0


def test_group_page_in_chinese_shows_a_pending_role_change(ws, owner, console_client):
    # given a lurker who spoke once: "onlooker" is the candidate, held for 1 evaluation
    group = do_create_group(ws, None, name="会员群")
    member = make_contact(ws, name="小王")
    do_add_member(group, member, None)
    do_infer_member_roles(group, day=LAST - dt.timedelta(days=1))
    do_record_group_message(group, member, external_id="hi", text="大家好", sent_at=dt.datetime(2026, 6, 4, 12, tzinfo=dt.UTC))
    do_rebuild_activity(ws)
    do_infer_member_roles(group, day=LAST)

    html = console_client(owner, lang="zh-hans").get(f"/console/groups/{group.pk}/").content.decode()

    assert "即将成为吃瓜群众（已1天）" in html
    assert "还没有健康度快照" in html and "活跃时段" in html
