"""Acquisition and fission console pages: channels with the attribution report, live
codes with slot stats, QR and pause/resume, campaign dashboards, the rewards review
queue and CSV exports. Data is made through the real actions."""

from __future__ import annotations

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.utils import timezone

from siyu.accounts.models import AuditEntry, Role
from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_channel,
    do_create_live_code,
    do_route_scan,
    do_set_live_code_status,
)
from siyu.acquisition.models import AcquisitionChannel, LiveCode, LiveCodeGroup, LiveCodeStaff
from siyu.campaigns.actions import (
    do_confirm_due_invites,
    do_create_campaign,
    do_invitee_left,
    do_join_campaign,
    do_record_invite,
)
from siyu.campaigns.models import RewardEntry
from siyu.communities.actions import do_create_group
from siyu.contacts.actions import do_record_event
from siyu.core.testing import make_contact, make_staff, make_tag, make_workspace

pytestmark = pytest.mark.django_db

LATER = dt.timedelta(days=4)


def _row(html: str, marker: str) -> str:
    """The table row (from ``marker`` to the row's end) that holds ``marker``."""
    rest = html[html.index(marker):]
    return rest[:rest.index("</tr>")]


@pytest.fixture
def shop():
    """A workspace with an owner, an operator, an analyst and an agent, a per-add channel
    with a staff code scanned twice and a group code, and another workspace's channel."""
    ws = make_workspace(name="Shop")
    owner = make_staff(ws, Role.OWNER, email="owner@example.com", display_name="Olivia")
    operator = make_staff(ws, Role.OPERATOR, email="op@example.com", display_name="Otto")
    analyst = make_staff(ws, Role.ANALYST, email="analyst@example.com")
    agent = make_staff(ws, Role.AGENT, email="agent@example.com", display_name="Amy")
    tag = make_tag(ws, "包裹卡客户", group="来源")
    channel = do_create_channel(ws, owner, key="parcel", name="包裹卡", kind="parcel_card", cost_model="per_add", cost_per_add="2.50",
                                owner=operator, tags=[tag])
    staff_code = do_create_live_code(ws, owner, channel=channel, name="包裹卡加好友", kind="staff")
    do_add_code_staff(staff_code, owner, staff=agent, daily_cap=50, total_cap=1000)
    group = do_create_group(ws, None, name="包裹卡福利群1")
    group_code = do_create_live_code(ws, owner, channel=channel, name="包裹卡进群", kind="group", group_capacity=150, auto_create_groups=False)
    do_add_code_group(group_code, owner, group=group)
    do_route_scan(staff_code.code, visitor_key="v1")
    do_route_scan(staff_code.code, visitor_key="v2")
    do_route_scan(group_code.code, visitor_key="v3")
    other_ws = make_workspace(name="Other")
    other_channel = do_create_channel(other_ws, None, key="poster", name="门店海报")
    other_code = do_create_live_code(other_ws, None, channel=other_channel, name="海报码", kind="staff")
    return {"ws": ws, "owner": owner, "operator": operator, "analyst": analyst, "agent": agent, "channel": channel, "tag": tag,
            "staff_code": staff_code, "group_code": group_code, "group": group, "other_channel": other_channel, "other_code": other_code}


# ---------------------------------------------------------------- channels


def test_channel_list_shows_kind_cost_owner_tags_and_code_count(shop, console_client):
    # when
    response = console_client(shop["owner"]).get("/console/acquisition/")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    row = _row(html[html.index('id="acq-channels"'):], "<code>parcel</code>")
    assert "包裹卡" in row
    assert "<td>Parcel card (包裹卡)</td><td>Per add</td>" in row
    assert '<td class="num">¥2.50</td>' in row
    assert "<td>Otto</td>" in row
    assert '<span class="tag">包裹卡客户</span>' in row
    assert f'<a href="/console/acquisition/codes/?channel={shop["channel"].pk}">2</a>' in row
    assert "<code>poster</code>" not in html  # another workspace's channel
    assert "New channel" in html


def test_creating_a_channel_through_the_form_runs_the_action(shop, console_client):
    # given
    client = console_client(shop["operator"])

    # when
    response = client.post("/console/acquisition/", {
        "key": "live", "name": "直播间", "kind": "live_stream", "cost_model": "per_period", "cost_per_add": "0",
        "owner": shop["agent"].pk, "tags": [shop["tag"].pk],
    })

    # then
    channel = AcquisitionChannel.objects.in_workspace(shop["ws"]).get(key="live")
    assert response.status_code == 302
    assert response["Location"] == f"/console/acquisition/channels/{channel.pk}/"
    assert (channel.name, channel.kind, channel.cost_model, channel.owner_id) == ("直播间", "live_stream", "per_period", shop["agent"].pk)
    assert list(channel.tags.values_list("name", flat=True)) == ["包裹卡客户"]
    assert AuditEntry.objects.filter(workspace=shop["ws"], action="acquisition_channel.created", actor=shop["operator"]).count() == 1


def test_a_duplicate_channel_key_shows_the_error_in_the_form(shop, console_client):
    # when
    response = console_client(shop["owner"]).post("/console/acquisition/", {
        "key": "parcel", "name": "again", "kind": "other", "cost_model": "none", "cost_per_add": "0",
    })

    # then
    assert response.status_code == 422
    assert "a channel with key &#x27;parcel&#x27; already exists" in response.content.decode()
    assert AcquisitionChannel.objects.in_workspace(shop["ws"]).count() == 1


def test_channel_report_shows_scans_adds_cost_and_the_chart_data_for_the_chosen_period(shop, console_client):
    # given: two contacts whose first touch is the channel, added today
    make_contact(shop["ws"], name="新客甲", source_channel="parcel")
    make_contact(shop["ws"], name="新客乙", source_channel="parcel")
    today = timezone.localdate(timezone.now(), shop["ws"].tz)
    start = today - dt.timedelta(days=2)

    # when
    response = console_client(shop["analyst"]).get(
        f"/console/acquisition/channels/{shop['channel'].pk}/?from={start.isoformat()}&to={today.isoformat()}"
    )

    # then
    assert response.status_code == 200
    html = response.content.decode()
    total = _row(html, 'id="report-total"')
    cells = re.findall(r'<th class="num">([^<]*)</th>', total)
    assert cells == ["3", "3", "2", "0", "0", "¥0.00", "¥5.00", "¥2.50", "-100%"]
    data = json.loads(html[html.index('id="acq-report-data"'):].split(">", 1)[1].split("</script>", 1)[0])
    assert data["days"] == [(start + dt.timedelta(days=i)).isoformat() for i in range(3)]
    assert data["series"]["scans"] == [0, 0, 3]
    assert data["series"]["adds"] == [0, 0, 2]
    assert data["series"]["cost"] == [0.0, 0.0, 5.0]
    assert data["labels"]["adds"] == "Adds"


def test_an_invalid_period_falls_back_to_the_last_14_days_with_a_note(shop, console_client):
    # when
    response = console_client(shop["owner"]).get(f"/console/acquisition/channels/{shop['channel'].pk}/?from=2026-05-10&to=2026-05-01")

    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "That period is not valid; showing the last 14 days instead." in html
    assert html.count('<tr><td>20') == 14


# ---------------------------------------------------------------- live codes


def test_live_code_list_shows_kind_channel_status_and_scans_today_and_total(shop, console_client):
    # when
    html = console_client(shop["owner"]).get("/console/acquisition/codes/").content.decode()

    # then
    table = html[html.index('id="live-codes"'):]
    staff_row = _row(table, shop["staff_code"].code)
    assert "<td>包裹卡加好友</td><td>Staff (联系我)</td>" in staff_row
    assert '<span class="ok">Active</span>' in staff_row
    assert '<td class="num">2</td><td class="num">2</td>' in staff_row
    group_row = _row(table, shop["group_code"].code)
    assert '<td class="num">1</td><td class="num">1</td>' in group_row
    assert shop["other_code"].code not in html


def test_staff_code_detail_shows_slot_stats_qr_and_public_link(shop, console_client):
    # given
    code = shop["staff_code"]

    # when
    html = console_client(shop["owner"]).get(f"/console/acquisition/codes/{code.pk}/").content.decode()

    # then
    assert f'<img src="/c/{code.code}.png"' in html
    assert f'<a href="http://testserver/c/{code.code}" id="public-link">' in html
    assert f"<code>lc:{code.code}</code>" in html
    assert '<strong id="scans-today">2</strong>' in html
    assert '<strong id="scans-total">2</strong>' in html
    slots = html[html.index('id="slots"'):]
    assert ('<tr><td>Amy</td><td class="num">1</td><td class="num">2</td><td class="num">50</td><td class="num">2</td>'
            '<td class="num">1000</td><td><span class="ok">✓</span></td>'
            f'<td><a href="/console/acquisition/codes/{code.pk}/staff/{LiveCodeStaff.objects.get(live_code=code).pk}/">Edit</a></td></tr>') in slots
    assert "Pause" in html


def test_group_code_detail_shows_seats_capacity_and_members(shop, console_client):
    # when
    html = console_client(shop["owner"]).get(f"/console/acquisition/codes/{shop['group_code'].pk}/").content.decode()

    # then
    slots = html[html.index('id="slots"'):]
    slot = LiveCodeGroup.objects.get(live_code=shop["group_code"])
    assert ('<tr><td>包裹卡福利群1</td><td class="num">1</td><td class="num">150</td><td class="num">0</td><td>—</td>'
            f'<td><a href="/console/acquisition/codes/{shop["group_code"].pk}/groups/{slot.pk}/">Edit</a></td></tr>') in slots


def test_pause_then_resume_changes_the_status_with_an_audit_entry_each(shop, console_client):
    # given
    client = console_client(shop["operator"])
    code = shop["staff_code"]

    # when
    paused = client.post(f"/console/acquisition/codes/{code.pk}/status/", {"status": "paused"})
    code.refresh_from_db()
    status_after_pause = code.status
    resumed = client.post(f"/console/acquisition/codes/{code.pk}/status/", {"status": "active"})
    code.refresh_from_db()

    # then
    assert (paused.status_code, paused["Location"]) == (302, f"/console/acquisition/codes/{code.pk}/")
    assert resumed.status_code == 302
    assert (status_after_pause, code.status) == ("paused", "active")
    entries = AuditEntry.objects.filter(workspace=shop["ws"], action="live_code.status_set", actor=shop["operator"]).order_by("id")
    assert [e.after["status"] for e in entries] == ["paused", "active"]


def test_a_paused_code_offers_resume(shop, console_client):
    # given
    do_set_live_code_status(shop["staff_code"], None, status="paused")

    # when
    html = console_client(shop["owner"]).get(f"/console/acquisition/codes/{shop['staff_code'].pk}/").content.decode()

    # then
    assert '<input type="hidden" name="status" value="active">' in html
    assert '<span id="code-status">Paused</span>' in html


def test_creating_a_staff_code_adds_its_staff_slots(shop, console_client):
    # when
    response = console_client(shop["owner"]).post("/console/acquisition/codes/", {
        "channel": shop["channel"].pk, "name": "门店收银台", "kind": "staff", "staff": [shop["agent"].pk, shop["operator"].pk],
        "daily_cap": "30", "total_cap": "0", "group_capacity": "200",
    })

    # then
    code = LiveCode.objects.in_workspace(shop["ws"]).get(name="门店收银台")
    assert response.status_code == 302
    assert response["Location"] == f"/console/acquisition/codes/{code.pk}/"
    assert sorted(LiveCodeStaff.objects.filter(live_code=code).values_list("staff_id", "daily_cap")) == sorted(
        [(shop["agent"].pk, 30), (shop["operator"].pk, 30)]
    )


def test_creating_a_group_code_adds_its_groups(shop, console_client):
    # given
    group = do_create_group(shop["ws"], None, name="新群")

    # when
    response = console_client(shop["owner"]).post("/console/acquisition/codes/", {
        "channel": shop["channel"].pk, "name": "进群码", "kind": "group", "groups": [group.pk], "daily_cap": "0", "total_cap": "0",
        "group_capacity": "100",
    })

    # then
    code = LiveCode.objects.in_workspace(shop["ws"]).get(name="进群码")
    assert response.status_code == 302
    assert list(LiveCodeGroup.objects.filter(live_code=code).values_list("group_id", "capacity")) == [(group.pk, 100)]


def test_a_staff_code_without_staff_is_refused_and_nothing_is_created(shop, console_client):
    # when
    response = console_client(shop["owner"]).post("/console/acquisition/codes/", {
        "channel": shop["channel"].pk, "name": "空码", "kind": "staff", "daily_cap": "0", "total_cap": "0", "group_capacity": "200",
    })

    # then
    assert response.status_code == 422
    assert "A staff code needs at least one staff member." in response.content.decode()
    assert not LiveCode.objects.filter(name="空码").exists()


# ---------------------------------------------------------------- permissions and workspaces


@pytest.mark.parametrize("url", ["/console/acquisition/", "/console/acquisition/codes/", "/console/campaigns/", "/console/campaigns/rewards/"])
def test_agents_may_not_open_acquisition_or_fission_pages(shop, console_client, url):
    assert console_client(shop["agent"]).get(url).status_code == 403


def test_analysts_read_but_may_not_create_or_pause(shop, console_client):
    # given
    client = console_client(shop["analyst"])
    code = shop["staff_code"]

    # when
    page = client.get(f"/console/acquisition/codes/{code.pk}/")
    pause = client.post(f"/console/acquisition/codes/{code.pk}/status/", {"status": "paused"})
    create = client.post("/console/acquisition/", {"key": "x", "name": "x", "kind": "other", "cost_model": "none", "cost_per_add": "0"})

    # then
    code.refresh_from_db()
    assert page.status_code == 200
    assert "Pause" not in page.content.decode()
    assert (pause.status_code, create.status_code, code.status) == (403, 403, "active")
    assert not AcquisitionChannel.objects.filter(key="x").exists()


def test_another_workspaces_channel_and_code_are_not_found(shop, console_client):
    # given
    client = console_client(shop["owner"])
    other_code = shop["other_code"]

    # then
    assert client.get(f"/console/acquisition/channels/{shop['other_channel'].pk}/").status_code == 404
    assert client.get(f"/console/acquisition/codes/{other_code.pk}/").status_code == 404
    assert client.post(f"/console/acquisition/codes/{other_code.pk}/status/", {"status": "paused"}).status_code == 404
    other_code.refresh_from_db()
    assert other_code.status == "active"


def test_nav_shows_acquisition_and_fission_to_those_who_may_see_them(shop, console_client):
    owner_html = console_client(shop["owner"]).get("/console/acquisition/").content.decode()
    agent_html = console_client(shop["agent"]).get("/console/contacts/").content.decode()

    assert '<a href="/console/acquisition/" class="active">' in owner_html
    assert 'href="/console/campaigns/"' in owner_html
    assert 'href="/console/acquisition/"' not in agent_html


# ---------------------------------------------------------------- campaigns


@pytest.fixture
def fission(shop):
    """A running campaign on the group code: one honest sharer with 3 confirmed invites
    (one reward issued), and one sharer flagged by a chain of instant leavers whose
    earlier honest invite earns a reward held for review."""
    ws = shop["ws"]
    now = timezone.now()
    campaign = do_create_campaign(
        ws, shop["owner"], key="spring", name="春季裂变", kind="group", status="running", live_code=shop["group_code"],
        starts_at=now - dt.timedelta(days=1), ends_at=now + dt.timedelta(days=30), hold_days=3,
        tiers=[{"threshold": 1, "kind": "coupon", "label": "5元券", "value": "5"}],
        variants=[{"key": "moments", "scene": "moments", "text": "朋友圈文案"}],
    )
    variant = campaign.variants.get()
    honest, _ = do_join_campaign(campaign, make_contact(ws, "诚实分享者"), variant=variant, joined_at=now - dt.timedelta(hours=2))
    for i in range(3):
        do_record_invite(honest.invite_code, make_contact(ws, f"好友{i}"))
    gamer, _ = do_join_campaign(campaign, make_contact(ws, "刷单者"), joined_at=now - dt.timedelta(hours=2))
    do_record_invite(gamer.invite_code, make_contact(ws, "真朋友"))
    for i in range(3):
        invite = do_record_invite(gamer.invite_code, make_contact(ws, f"秒退{i}"))
        do_record_event(invite.invitee, "left_group", idempotency_key=f"left-{i}", occurred_at=invite.created_at + dt.timedelta(minutes=5))
        do_invitee_left(invite.invitee)
    do_confirm_due_invites(campaign, now=now + LATER)
    held = RewardEntry.objects.get(participant=gamer)
    other_ws_campaign = do_create_campaign(
        shop["other_channel"].workspace, None, key="other", name="别家活动", kind="personal", starts_at=now, ends_at=now + dt.timedelta(days=1),
    )
    return {"campaign": campaign, "honest": honest, "gamer": gamer, "held": held, "other_campaign": other_ws_campaign}


def test_campaign_list_shows_participants_and_the_review_count(shop, fission, console_client):
    html = console_client(shop["analyst"]).get("/console/campaigns/").content.decode()

    row = _row(html, "<code>spring</code>")
    assert "<td>Group fission (社群裂变)</td><td>Running</td>" in row
    assert f"<code>{shop['group_code'].code}</code>" in row
    assert '<td class="num">9</td>' in row  # 2 sharers + 3 friends + 1 real friend + 3 instant leavers
    assert "1 reward waits for review" in html
    assert "别家活动" not in html


def test_campaign_dashboard_shows_the_dashboard_query_numbers(shop, fission, console_client):
    # when
    html = console_client(shop["analyst"]).get(f"/console/campaigns/{fission['campaign'].pk}/").content.decode()

    # then
    assert '<strong id="kpi-participants">9</strong>' in html
    assert '<tr id="invites-confirmed"><td>Confirmed</td><td class="num">4</td></tr>' in html
    assert '<tr id="invites-clawed_back"><td>Clawed back (left within the hold)</td><td class="num">3</td></tr>' in html
    variants = html[html.index('id="variants"'):]
    assert ('<tr><td><code>moments</code></td><td>Moments (朋友圈)</td><td class="num">4</td><td class="num">3</td>'
            '<td class="num">0.75</td></tr>') in variants
    board = html[html.index('id="leaderboard"'):]
    assert board.index("诚实分享者") < board.index("刷单者")
    ledger = html[html.index('id="rewards-ledger"'):]
    assert '<tr><td>Held for review</td><td class="num">1</td></tr>' in ledger
    assert '<tr><td>Issued</td><td class="num">1</td></tr>' in ledger
    data = json.loads(html[html.index('id="campaign-data"'):].split(">", 1)[1].split("</script>", 1)[0])
    assert [step["value"] for step in data["funnel"]] == [0, 7, 7, 4, 2]
    assert "Export participants (CSV)" in html


def test_another_workspaces_campaign_is_not_found(shop, fission, console_client):
    client = console_client(shop["owner"])

    assert client.get(f"/console/campaigns/{fission['other_campaign'].pk}/").status_code == 404
    assert client.get(f"/console/campaigns/{fission['other_campaign'].pk}/export/").status_code == 404


def test_review_queue_lists_held_rewards_with_the_reason(shop, fission, console_client):
    html = console_client(shop["owner"]).get("/console/campaigns/rewards/").content.decode()

    row = _row(html, f'id="reward-{fission["held"].pk}"')
    assert "刷单者" in row
    assert "<td>5元券</td><td>Coupon issued</td><td>chain_of_instant_leavers (3)</td>" in row
    assert 'value="approve"' in row
    assert html.count('<tr id="reward-') == 1


def test_approving_a_held_reward_issues_it_with_an_audit_entry(shop, fission, console_client):
    # given
    entry = fission["held"]

    # when
    response = console_client(shop["operator"]).post(f"/console/campaigns/rewards/{entry.pk}/", {"decision": "approve", "note": "核实为真实好友"})

    # then
    entry.refresh_from_db()
    assert (response.status_code, response["Location"]) == (302, "/console/campaigns/rewards/")
    assert (entry.state, entry.note) == ("issued", "核实为真实好友")
    audit = AuditEntry.objects.get(workspace=shop["ws"], action="campaign.reward_state_set")
    assert (audit.actor_id, audit.before, audit.after) == (shop["operator"].pk, {"state": "review"}, {"state": "issued", "note": "核实为真实好友"})


def test_rejecting_a_held_reward_voids_it(shop, fission, console_client):
    # given
    entry = fission["held"]

    # when
    console_client(shop["owner"]).post(f"/console/campaigns/rewards/{entry.pk}/", {"decision": "reject"})

    # then
    entry.refresh_from_db()
    assert entry.state == "void"
    assert AuditEntry.objects.filter(workspace=shop["ws"], action="campaign.reward_state_set", actor=shop["owner"]).count() == 1


def test_analysts_may_not_decide_rewards_and_other_workspaces_rewards_are_not_found(shop, fission, console_client):
    # given
    entry = fission["held"]
    stranger = make_staff(shop["other_channel"].workspace, Role.OWNER, email="stranger@example.com")

    # when
    analyst = console_client(shop["analyst"]).post(f"/console/campaigns/rewards/{entry.pk}/", {"decision": "approve"})
    foreign = console_client(stranger).post(f"/console/campaigns/rewards/{entry.pk}/", {"decision": "approve"})

    # then
    entry.refresh_from_db()
    assert (analyst.status_code, foreign.status_code, entry.state) == (403, 404, "review")


def test_csv_exports_of_participants_and_invites(shop, fission, console_client):
    # given
    client = console_client(shop["analyst"])
    url = f"/console/campaigns/{fission['campaign'].pk}/export/"

    # when
    participants = client.get(url + "?what=participants")
    invites = client.get(url + "?what=invites")

    # then
    assert participants["Content-Disposition"] == 'attachment; filename="spring-participants.csv"'
    lines = participants.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "participant_id,name,invite_code,inviter,depth,variant,joined_at,confirmed,flagged,flag_reason"
    assert len(lines) == 10
    honest = next(line.split(",") for line in lines if "诚实分享者" in line)
    assert (honest[3], honest[4], honest[5], honest[7], honest[8]) == ("", "0", "moments", "3", "0")
    invite_lines = invites.content.decode("utf-8-sig").splitlines()
    assert invite_lines[0].startswith("invite_id,inviter,inviter_code,invitee,status")
    assert len(invite_lines) == 8


def test_agents_may_not_export(shop, fission, console_client):
    assert console_client(shop["agent"]).get(f"/console/campaigns/{fission['campaign'].pk}/export/").status_code == 403


def test_pages_read_in_chinese(shop, console_client):
    # when
    html = console_client(shop["owner"], lang="zh-hans").get(f"/console/acquisition/codes/{shop['staff_code'].pk}/").content.decode()

    # then
    assert "引流</a>" in html
    assert "裂变</a>" in html
    assert '<span id="code-status">启用中</span>' in html
    assert "员工（联系我）" in html


# ---------------------------------------------------------------- edit forms


def test_editing_a_channel_sets_welcome_message_groups_and_cost(shop, console_client):
    # given
    client = console_client(shop["operator"])
    url = f"/console/acquisition/channels/{shop['channel'].pk}/edit/"
    assert 'value="包裹卡"' in client.get(url).content.decode()

    # when
    response = client.post(url, {"name": "包裹卡2代", "kind": "parcel_card", "cost_model": "per_add", "cost_per_add": "3.20",
                                 "owner": shop["owner"].pk, "tags": [shop["tag"].pk], "groups": [shop["group"].pk],
                                 "welcome_message": "欢迎！", "is_active": "on"})

    # then
    channel = AcquisitionChannel.objects.get(pk=shop["channel"].pk)
    assert response.status_code == 302 and response["Location"] == f"/console/acquisition/channels/{channel.pk}/"
    assert (channel.name, str(channel.cost_per_add), channel.welcome_message, channel.owner_id) == ("包裹卡2代", "3.20", "欢迎！",
                                                                                                 shop["owner"].pk)
    assert list(channel.groups.values_list("name", flat=True)) == ["包裹卡福利群1"]
    assert AuditEntry.objects.filter(action="acquisition_channel.updated", actor=shop["operator"]).count() == 1


def test_editing_a_channel_with_a_negative_cost_shows_the_error(shop, console_client):
    response = console_client(shop["owner"]).post(f"/console/acquisition/channels/{shop['channel'].pk}/edit/", {
        "name": "x", "kind": "parcel_card", "cost_model": "per_add", "cost_per_add": "-1"})

    assert response.status_code == 422
    assert "Ensure this value is greater than or equal to 0." in response.content.decode()
    assert AcquisitionChannel.objects.get(pk=shop["channel"].pk).name == "包裹卡"


def test_recording_spend_and_a_period_that_ends_before_it_starts(shop, console_client):
    # given
    client = console_client(shop["operator"])
    url = f"/console/acquisition/channels/{shop['channel'].pk}/spend/"

    # when
    ok = client.post(url, {"starts_on": "2026-03-01", "ends_on": "2026-03-31", "amount": "1200.00", "note": "三月印刷"})
    bad = client.post(url, {"starts_on": "2026-03-31", "ends_on": "2026-03-01", "amount": "5"})

    # then
    assert ok.status_code == 302
    assert list(shop["channel"].spends.values_list("amount", "note")) == [(Decimal("1200.00"), "三月印刷")]
    assert bad.status_code == 422
    assert "a spend period must not end before it starts" in bad.content.decode()


def test_adding_and_editing_a_staff_slot_with_a_schedule_then_removing_it(shop, console_client):
    # given
    client = console_client(shop["owner"])
    code = shop["staff_code"]

    # when: add Otto with a schedule, then change his caps and take him offline
    added = client.post(f"/console/acquisition/codes/{code.pk}/staff/", {
        "staff": shop["operator"].pk, "weight": "2", "daily_cap": "30", "total_cap": "900", "is_online": "on",
        "schedule": "mon-fri 09:00-18:00\n2026-02-14 10:00-22:00\nsun off"})
    slot = LiveCodeStaff.objects.get(live_code=code, staff=shop["operator"])
    form = client.get(f"/console/acquisition/codes/{code.pk}/staff/{slot.pk}/").content.decode()
    edited = client.post(f"/console/acquisition/codes/{code.pk}/staff/{slot.pk}/", {
        "weight": "3", "daily_cap": "10", "total_cap": "0", "schedule": "sat 10:00-16:00"})
    slot.refresh_from_db()
    snapshot = (slot.weight, slot.daily_cap, slot.total_cap, slot.is_online, slot.schedule)
    removed = client.post(f"/console/acquisition/codes/{code.pk}/staff/{slot.pk}/", {"remove": "1"})

    # then
    assert (added.status_code, edited.status_code, removed.status_code) == (302, 302, 302)
    assert "mon 09:00-18:00\nTue 09:00-18:00".lower().split("\n")[0] in form and "2026-02-14 10:00-22:00" in form and "sun off" in form
    assert snapshot == (3, 10, 0, False, {"weekly": {"5": [["10:00", "16:00"]]}})
    assert not LiveCodeStaff.objects.filter(pk=slot.pk).exists()
    assert [a for a in AuditEntry.objects.filter(target_id=str(code.pk)).values_list("action", flat=True)
            if a.startswith("live_code.staff_")].count("live_code.staff_removed") == 1


def test_a_bad_schedule_line_is_shown_in_the_form(shop, console_client):
    response = console_client(shop["owner"]).post(f"/console/acquisition/codes/{shop['staff_code'].pk}/staff/", {
        "staff": shop["operator"].pk, "weight": "1", "daily_cap": "0", "total_cap": "0", "schedule": "monday 9-18"})

    assert response.status_code == 422
    assert "Schedule line “monday 9-18”" in response.content.decode()
    assert not LiveCodeStaff.objects.filter(live_code=shop["staff_code"], staff=shop["operator"]).exists()


def test_adding_a_group_to_a_group_code_and_twice_is_refused(shop, console_client):
    # given
    client = console_client(shop["owner"])
    code = shop["group_code"]
    second = do_create_group(shop["ws"], None, name="包裹卡福利群2")

    # when
    ok = client.post(f"/console/acquisition/codes/{code.pk}/groups/", {"group": second.pk, "capacity": "120"})
    again = client.post(f"/console/acquisition/codes/{code.pk}/groups/", {"group": second.pk})

    # then
    assert ok.status_code == 302
    assert list(LiveCodeGroup.objects.filter(live_code=code).values_list("group__name", "capacity")) == [
        ("包裹卡福利群1", 150), ("包裹卡福利群2", 120)]
    assert again.status_code == 422
    assert "group 包裹卡福利群2 is already on this code" in again.content.decode()


@pytest.mark.parametrize("path", ["channels/{channel}/edit/", "channels/{channel}/spend/", "codes/{staff_code}/staff/",
                                  "codes/{group_code}/groups/"])
def test_analysts_and_agents_may_not_use_the_edit_forms(shop, console_client, path):
    url = "/console/acquisition/" + path.format(channel=shop["channel"].pk, staff_code=shop["staff_code"].pk,
                                                group_code=shop["group_code"].pk)
    for who in ("analyst", "agent"):
        assert console_client(shop[who]).get(url).status_code == 403
        assert console_client(shop[who]).post(url, {"name": "x"}).status_code == 403


def test_another_workspaces_channel_cannot_be_edited(shop, console_client):
    response = console_client(shop["owner"]).post(f"/console/acquisition/channels/{shop['other_channel'].pk}/edit/", {
        "name": "hijack", "kind": "other", "cost_model": "none", "cost_per_add": "0"})

    assert response.status_code == 404
    assert AcquisitionChannel.objects.get(pk=shop["other_channel"].pk).name == "门店海报"


# ---------------------------------------------------------------- editing codes and group slots; WeCom sync state


def test_editing_a_live_codes_own_settings(shop, console_client):
    # given
    code = shop["group_code"]
    client = console_client(shop["operator"])

    # when
    form = client.get(f"/console/acquisition/codes/{code.pk}/edit/")
    saved = client.post(f"/console/acquisition/codes/{code.pk}/edit/", {
        "name": "包裹卡进群 2", "group_capacity": "180", "window_size": "3", "low_watermark": "1", "expires_at": ""})
    refused = client.post(f"/console/acquisition/codes/{code.pk}/edit/", {
        "name": "x", "group_capacity": "180", "window_size": "2", "low_watermark": "3", "expires_at": ""})

    # then
    assert form.status_code == 200 and 'value="包裹卡进群"' in form.content.decode()
    assert (saved.status_code, saved["Location"]) == (302, f"/console/acquisition/codes/{code.pk}/")
    code.refresh_from_db()
    assert (code.name, code.group_capacity, code.window_size, code.low_watermark, code.expires_at) == ("包裹卡进群 2", 180, 3, 1, None)
    assert refused.status_code == 422
    assert "low watermark must be between 0 and the window size" in refused.content.decode()
    assert AuditEntry.objects.filter(action="live_code.updated", target_id=str(code.pk)).count() == 1


def test_editing_and_removing_a_group_slot(shop, console_client):
    # given
    code = shop["group_code"]
    slot = LiveCodeGroup.objects.get(live_code=code)
    client = console_client(shop["operator"])
    detail = client.get(f"/console/acquisition/codes/{code.pk}/").content.decode()

    # when
    resized = client.post(f"/console/acquisition/codes/{code.pk}/groups/{slot.pk}/", {"capacity": "120"})
    too_small = client.post(f"/console/acquisition/codes/{code.pk}/groups/{slot.pk}/", {"capacity": "0"})
    removed = client.post(f"/console/acquisition/codes/{code.pk}/groups/{slot.pk}/", {"remove": "1"})

    # then
    assert f'href="/console/acquisition/codes/{code.pk}/groups/{slot.pk}/"' in detail
    assert resized.status_code == 302
    assert too_small.status_code == 422
    assert removed.status_code == 302
    assert LiveCodeGroup.objects.filter(pk=slot.pk).exists() is False
    assert list(AuditEntry.objects.filter(action__in=["live_code.group_updated", "live_code.group_removed"]).order_by("id")
                .values_list("action", flat=True)) == ["live_code.group_updated", "live_code.group_removed"]


def test_an_agent_cannot_edit_group_slots_and_another_workspaces_slot_is_404(shop, console_client):
    # given
    code = shop["group_code"]
    slot = LiveCodeGroup.objects.get(live_code=code)
    other_code = shop["other_code"]

    # when
    agent = console_client(shop["agent"]).post(f"/console/acquisition/codes/{code.pk}/groups/{slot.pk}/", {"remove": "1"})
    foreign = console_client(shop["owner"]).get(f"/console/acquisition/codes/{other_code.pk}/edit/")

    # then
    assert agent.status_code == 403
    assert foreign.status_code == 404
    assert LiveCodeGroup.objects.filter(pk=slot.pk).exists()


def test_a_failed_wecom_sync_shows_its_error_on_the_staff_slot(shop, console_client):
    # given: a staff code on a WeCom account whose sync failed
    from siyu.acquisition.models import SyncStatus
    from siyu.channels.models import ChannelAccount, ChannelKind

    account = ChannelAccount.objects.create(workspace=shop["ws"], kind=ChannelKind.WECOM, name="企业微信", external_id="ww1")
    code = do_create_live_code(shop["ws"], shop["owner"], channel=shop["channel"], name="企微加好友", kind="staff", channel_account=account)
    slot = do_add_code_staff(code, shop["owner"], staff=shop["agent"])
    LiveCodeStaff.objects.filter(pk=slot.pk).update(sync_status=SyncStatus.FAILED, sync_error="WeCom errcode 40098: not verified")

    # when
    html = console_client(shop["owner"]).get(f"/console/acquisition/codes/{code.pk}/").content.decode()
    form = console_client(shop["owner"]).get(f"/console/acquisition/codes/{code.pk}/staff/{slot.pk}/").content.decode()

    # then
    row = _row(html, "Amy")
    assert "Sync failed" in row and "WeCom errcode 40098: not verified" in row
    assert 'name="userid"' in form


# ---------------------------------------------------------------- the demo workspace


def test_every_acquisition_and_campaign_page_of_the_small_demo_shows_its_numbers(console_client):
    # given
    from siyu.accounts.models import Staff
    from siyu.acquisition.queries import channel_report
    from siyu.campaigns.models import Campaign, Participant
    from siyu.core.models import Workspace
    from siyu.demo.seed import DEMO_SLUG, do_seed_demo_workspace

    do_seed_demo_workspace(contacts=300, seed=7, today=dt.date(2026, 3, 10))
    ws = Workspace.objects.get(slug=DEMO_SLUG)
    owner = Staff.objects.in_workspace(ws).filter(role=Role.OWNER).first()
    assert owner is not None
    client = console_client(owner)
    channels = list(AcquisitionChannel.objects.in_workspace(ws))
    codes = list(LiveCode.objects.in_workspace(ws))
    campaigns = list(Campaign.objects.in_workspace(ws))
    assert channels and codes and len(campaigns) >= 2

    # when / then: lists
    channel_list = client.get("/console/acquisition/").content.decode()
    assert all(c.name in channel_list for c in channels)
    code_list = client.get("/console/acquisition/codes/").content.decode()
    for code in codes:
        assert code.name in code_list
        assert str(code.scan_count) in _row(code_list, code.name)
    # detail of every channel with its report numbers, and of every code with its total scans
    start, end = dt.date(2026, 2, 8), dt.date(2026, 3, 9)
    scanned = 0
    for channel in channels:
        total = channel_report(ws, channel, start, end).total
        scanned += total.scans
        page = client.get(f"/console/acquisition/channels/{channel.pk}/?from={start}&to={end}").content.decode()
        row = _row(page, 'id="report-total"')
        assert f'<th class="num">{total.scans}</th><th class="num">{total.visitors}</th><th class="num">{total.adds}</th>' in row
    assert scanned > 0
    for code in codes:
        page = client.get(f"/console/acquisition/codes/{code.pk}/").content.decode()
        assert f'<strong id="scans-total">{code.scan_count}</strong>' in page
    campaign_list = client.get("/console/campaigns/").content.decode()
    for campaign in campaigns:
        assert campaign.name in campaign_list
        dashboard = client.get(f"/console/campaigns/{campaign.pk}/")
        assert dashboard.status_code == 200
        participants = Participant.objects.filter(campaign=campaign).count()
        assert participants > 0 and str(participants) in dashboard.content.decode()
    rewards = client.get("/console/campaigns/rewards/")
    assert rewards.status_code == 200
