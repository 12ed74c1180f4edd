import datetime as dt
from pathlib import Path

import pytest
from django.utils import timezone
from PIL import Image

from siyu.acquisition.actions import do_create_channel, do_create_live_code
from siyu.campaigns.actions import do_create_campaign, do_join_campaign, do_update_campaign
from siyu.campaigns.posters import HEIGHT, WIDTH, render_poster
from siyu.core.testing import make_contact, make_workspace
from siyu.moderation.qr import decode_qr

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign():
    ws = make_workspace("poster")
    channel = do_create_channel(ws, None, key="fission", name="裂变", kind="fission")
    code = do_create_live_code(ws, None, channel=channel, name="裂变入口", kind="group")
    now = timezone.now()
    return do_create_campaign(
        ws, None, key="tea", name="好茶裂变", kind="group", status="running", live_code=code, starts_at=now, ends_at=now + dt.timedelta(days=7),
        title="邀请3位好友 免费领新茶", benefits="明前龙井试饮装\n会员专享 9 折", endorsement="老字号茶庄 · 30 年", urgency="仅限前 500 名，周日截止",
    )


def _decode(path):
    payloads = decode_qr(Path(path).read_bytes())
    assert len(payloads) == 1, payloads
    return payloads[0]


def test_a_posters_qr_decodes_to_the_participants_own_invite_url(campaign):
    alice, _ = do_join_campaign(campaign, make_contact(campaign.workspace, "小艾"))
    bob, _ = do_join_campaign(campaign, make_contact(campaign.workspace, "老包"))

    path, drawn = render_poster(campaign, alice, "https://siyu.example.com")
    other, _ = render_poster(campaign, bob, "https://siyu.example.com")

    assert drawn is True
    assert Image.open(path).size == (WIDTH, HEIGHT)
    assert _decode(path) == f"https://siyu.example.com/c/{campaign.live_code.code}?i={alice.invite_code}"
    assert _decode(other) == f"https://siyu.example.com/c/{campaign.live_code.code}?i={bob.invite_code}"


def test_posters_of_many_participants_all_decode(campaign):
    # invite codes are random: a QR that only some payloads render readably would make
    # the poster test pass or fail by chance, so read a batch of them
    participants = [do_join_campaign(campaign, make_contact(campaign.workspace, f"参与者{i}"))[0] for i in range(25)]
    unread = [p.invite_code for p in participants
              if _decode(render_poster(campaign, p, "https://siyu.example.com")[0]) != f"https://siyu.example.com/c/{campaign.live_code.code}?i={p.invite_code}"]
    assert unread == []


def test_posters_are_cached_until_what_they_show_changes(campaign):
    alice, _ = do_join_campaign(campaign, make_contact(campaign.workspace, "小艾"))
    first, drawn = render_poster(campaign, alice, "https://x.test")
    again, drawn_again = render_poster(campaign, alice, "https://x.test")
    do_update_campaign(campaign, None, urgency="最后 24 小时")
    changed, drawn_changed = render_poster(campaign, alice, "https://x.test")

    assert (drawn, drawn_again, drawn_changed) == (True, False, True)
    assert first == again != changed
