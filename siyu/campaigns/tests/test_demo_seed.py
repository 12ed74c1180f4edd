import pytest

from siyu.acquisition.models import AcquisitionChannel, Scan
from siyu.campaigns.models import Campaign, Invite, RewardEntry
from siyu.channels.actions import do_create_channel_account
from siyu.core.testing import make_contact, make_staff, make_workspace
from siyu.demo.acquisition import seed_acquisition

pytestmark = pytest.mark.django_db


def test_demo_seeds_channels_codes_and_a_finished_and_a_running_campaign():
    ws = make_workspace("demo-acq")
    for i in range(4):
        make_staff(ws, display_name=f"导购{i}")
    do_create_channel_account(ws, None, kind="sandbox", name="sbx")
    for i in range(30):
        make_contact(ws, f"老客{i}")

    summary = seed_acquisition(ws, seed=7)

    assert (summary["channels"], summary["live_codes"]) == (6, 4)
    assert Scan.objects.in_workspace(ws).count() == summary["scans"] > 0
    assert list(AcquisitionChannel.objects.in_workspace(ws).values_list("key", flat=True)) == ["fission", "live", "parcel", "partner", "store", "xhs"]
    assert dict(Campaign.objects.in_workspace(ws).values_list("key", "status")) == {"spring": "finished", "summer": "running"}
    assert not Invite.objects.filter(campaign__key="spring", status="pending").exists()
    assert Invite.objects.filter(campaign__key="spring", status="clawed_back").count() == summary["campaigns"]["spring"]["left"]
    assert RewardEntry.objects.filter(campaign__key="spring").exists()
