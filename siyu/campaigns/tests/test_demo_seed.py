import datetime as dt

import pytest
from django.utils import timezone

from siyu.acquisition.models import AcquisitionChannel, LiveCode, Scan
from siyu.campaigns.models import Campaign, Invite, Participant, RewardEntry
from siyu.channels.actions import do_create_channel_account
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.demo.acquisition import seed_acquisition

pytestmark = pytest.mark.django_db


def test_seeding_a_workspace_without_history_gives_channels_codes_and_campaigns_of_its_own_arrivals():
    # given: older customers, and 老客推荐 arrivals during the finished campaign (60 to 31 days ago)
    ws = make_workspace("demo-acq")
    anchor = timezone.now().astimezone(ws.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    for i in range(4):
        make_staff(ws, display_name=f"导购{i}")
    do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    for i in range(30):
        make_contact(ws, f"老客{i}", created_at=anchor - dt.timedelta(days=90))
    arrivals = [make_contact(ws, f"新客{i}", source_channel="old_customer", created_at=anchor - dt.timedelta(days=55 - 2 * i))
                for i in range(8)]

    # when
    summary = seed_acquisition(ws, seed=7, anchor=anchor)

    # then
    assert (summary["channels"], summary["live_codes"], summary["scans"]) == (8, 5, 0)
    assert Scan.objects.in_workspace(ws).count() == 0
    assert LiveCode.objects.in_workspace(ws).filter(kind="staff").count() == 5
    assert AcquisitionChannel.objects.in_workspace(ws).count() == 8
    assert dict(Campaign.objects.in_workspace(ws).values_list("key", "status")) == {"spring": "finished", "summer": "running"}
    assert summary["campaigns"]["spring"]["invites"] == 8
    assert summary["campaigns"]["summer"]["invites"] == 0
    assert set(Invite.objects.in_workspace(ws).values_list("invitee_id", flat=True)) == {c.pk for c in arrivals}
    assert set(Invite.objects.in_workspace(ws).values_list("status", flat=True)) == {"confirmed"}
    spring = Participant.objects.filter(campaign__key="spring")
    assert sum(p.confirmed_count for p in spring) == 8
    assert RewardEntry.objects.filter(campaign__key="spring").count() == sum(
        len([t for t in (2, 4, 8) if p.confirmed_count >= t]) for p in spring
    )
