import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from siyu.acquisition.actions import do_add_code_group, do_create_channel, do_create_live_code, do_record_arrival
from siyu.acquisition.queries import resolve_state
from siyu.campaigns.actions import do_confirm_due_invites, do_create_campaign, do_join_campaign
from siyu.campaigns.models import Invite
from siyu.campaigns.queries import campaign_dashboard, export_invites_csv, invite_tree
from siyu.communities.actions import do_create_group
from siyu.core.testing import make_contact, make_workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    ws = make_workspace("dash")
    channel = do_create_channel(ws, None, key="fission", name="裂变", kind="fission")
    code = do_create_live_code(ws, None, channel=channel, name="裂变入口", kind="group", auto_create_groups=False)
    do_add_code_group(code, None, group=do_create_group(ws, None, name="裂变群"))
    now = timezone.now()
    return do_create_campaign(
        ws, None, key="tea", name="好茶", kind="group", status="running", live_code=code, starts_at=now - dt.timedelta(days=1),
        ends_at=now + dt.timedelta(days=7), hold_days=0, tiers=[{"threshold": 2, "kind": "coupon", "label": "券"}],
        variants=[{"key": "moments", "scene": "moments", "text": "快来"}, {"key": "old", "scene": "existing_group", "text": "老群"}],
    )


def test_a_poster_scan_and_the_add_event_close_the_loop_into_an_invite(campaign):
    sharer, _ = do_join_campaign(campaign, make_contact(campaign.workspace, "分享者"), joined_at=timezone.now() - dt.timedelta(hours=1))
    Client().get(f"/c/{campaign.live_code.code}", {"i": sharer.invite_code})
    invitee = make_contact(campaign.workspace, "新朋友")

    assert resolve_state(f"fx:{sharer.invite_code}") == ("fission", "tea")
    do_record_arrival(invitee, state=f"fx:{sharer.invite_code}")

    invite = Invite.objects.get(invitee=invitee)
    assert (invite.inviter_id, invite.status) == (sharer.pk, "pending")
    assert invite.visitor_key == campaign.live_code.scans.get().visitor_key != ""


def test_dashboard_tree_and_export(campaign):
    ws = campaign.workspace
    moments, old = campaign.variants.order_by("id")
    alice, _ = do_join_campaign(campaign, make_contact(ws, "小艾"), variant=moments, joined_at=timezone.now() - dt.timedelta(hours=2))
    bob, _ = do_join_campaign(campaign, make_contact(ws, "老包"), variant=old, joined_at=timezone.now() - dt.timedelta(hours=2))
    for name in ("甲", "乙"):
        do_record_arrival(make_contact(ws, name), state=f"fx:{alice.invite_code}")
    do_record_arrival(make_contact(ws, "丙"), state=f"fx:{bob.invite_code}")
    do_confirm_due_invites(campaign)

    board = campaign_dashboard(campaign)
    tree = invite_tree(campaign)

    assert (board["participants"], board["seed_participants"], board["max_depth"]) == (5, 2, 1)
    assert board["invites"] == {"pending": 0, "confirmed": 3, "clawed_back": 0, "review": 0, "rejected": 0}
    assert [(v["key"], v["participants"], v["confirmed_invites"]) for v in board["variants"]] == [("moments", 3, 2), ("old", 2, 1)]
    assert [(row["name"], row["confirmed"]) for row in board["leaderboard"][:2]] == [("小艾", 2), ("老包", 1)]
    assert board["rewards"] == {"issued": 1}
    assert [(n["name"], [c["name"] for c in n["children"]]) for n in tree] == [("小艾", ["甲", "乙"]), ("老包", ["丙"])]
    assert export_invites_csv(campaign).splitlines()[1].split(",")[1:5] == ["小艾", alice.invite_code, "甲", "confirmed"]
