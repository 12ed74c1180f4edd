import collections
import datetime as dt
from decimal import Decimal

import pytest

from siyu.acquisition.models import AcquisitionChannel, LiveCode, LiveCodeGroup, LiveCodeStaff, Scan
from siyu.acquisition.queries import channel_report
from siyu.campaigns.models import Campaign, Invite, Participant, RewardEntry
from siyu.contacts.models import Contact, ContactEvent
from siyu.core.models import Workspace
from siyu.demo.acquisition import STAFF_CODES
from siyu.demo.generate import TZ, anchor_for
from siyu.demo.seed import DEMO_SLUG, do_seed_demo_workspace

pytestmark = pytest.mark.django_db

SMALL = 300
DAY = dt.date(2026, 3, 10)
ANCHOR = anchor_for(DAY)


@pytest.fixture
def demo() -> Workspace:
    do_seed_demo_workspace(contacts=SMALL, seed=42, today=DAY)
    return Workspace.objects.get(slug=DEMO_SLUG)


def test_channels_are_the_contacts_first_touch_sources_with_their_costs(demo):
    # when
    channels = {c.key: c for c in AcquisitionChannel.objects.in_workspace(demo).prefetch_related("tags")}

    # then
    assert sorted(channels) == ["douyin", "live_stream", "old_customer", "parcel_card", "partner_shop", "staff_referral", "store_poster",
                                "xiaohongshu"]
    assert set(Contact.objects.in_workspace(demo).values_list("source_channel", flat=True)) <= set(channels)
    assert (channels["parcel_card"].cost_model, channels["parcel_card"].cost_per_add) == ("per_add", Decimal("2.00"))
    assert [str(s.amount) for s in channels["store_poster"].spends.all()] == ["900.00"]
    assert [t.name for t in channels["parcel_card"].tags.all()] == ["包裹卡"]
    assert channels["old_customer"].kind == "fission"


def test_attribution_report_counts_the_demo_adds_and_their_cost(demo):
    # given
    parcel = AcquisitionChannel.objects.in_workspace(demo).get(key="parcel_card")
    start, end = (ANCHOR - dt.timedelta(days=30)).date(), (ANCHOR - dt.timedelta(days=1)).date()
    adds = Contact.objects.in_workspace(demo).filter(source_channel="parcel_card", created_at__gte=ANCHOR - dt.timedelta(days=30),
                                                     created_at__lt=ANCHOR).count()

    # when
    report = channel_report(demo, parcel, start, end)

    # then
    assert report.total.adds == adds > 0
    assert report.total.cost == Decimal("2.00") * adds
    assert report.total.scans == Scan.objects.in_workspace(demo).filter(live_code__channel=parcel).count() > adds


def test_scans_mirror_the_scan_events_and_the_counters_agree(demo):
    # given
    codes = list(LiveCode.objects.in_workspace(demo))
    group_ids = set(LiveCodeGroup.objects.in_workspace(demo).values_list("group_id", flat=True))
    events = ContactEvent.objects.in_workspace(demo).filter(kind="scan")
    expected = {
        (e.contact_id, e.occurred_at) for e in events
        if (e.data.get("target") == "staff" and e.data.get("source") in STAFF_CODES)
        or (e.data.get("target") == "group" and e.data.get("group_id") in group_ids)
    }

    # when
    scans = list(Scan.objects.in_workspace(demo))

    # then
    assert {(s.contact_id, s.scanned_at) for s in scans if s.contact_id is not None} == expected
    lookers = [s for s in scans if s.contact_id is None]
    assert 0 < len(lookers) < len(expected)
    assert all(ANCHOR - dt.timedelta(days=30) <= s.scanned_at < ANCHOR for s in lookers)
    per_code = collections.Counter(s.live_code_id for s in scans)
    assert {c.pk: c.scan_count for c in codes} == {c.pk: per_code[c.pk] for c in codes}
    for slot in LiveCodeStaff.objects.in_workspace(demo):
        assert slot.total_count == Scan.objects.filter(live_code_id=slot.live_code_id, staff_id=slot.staff_id).count()
    # a seat stays taken when its member leaves later: spammers the bot removed (in the
    # demo's chat history, seeded after the codes) still count
    removed = collections.Counter(
        group_id for group_id in ContactEvent.objects.in_workspace(demo).filter(
            kind="left_group", data__reason="removed by moderation: advertising").values_list("data__group_id", flat=True)
    )
    assert removed
    for slot in LiveCodeGroup.objects.in_workspace(demo).select_related("group"):
        still_open = slot.group.memberships.filter(left_at__isnull=True).count()
        assert slot.seats_taken == min(slot.capacity, still_open + removed[slot.group_id])
    assert {c.kind for c in codes} == {"staff", "group"}


def test_one_finished_and_one_running_campaign_grow_an_honest_invite_tree(demo):
    # when
    campaigns = {c.key: c for c in Campaign.objects.in_workspace(demo)}

    # then
    assert {k: c.status for k, c in campaigns.items()} == {"spring": "finished", "summer": "running"}
    assert campaigns["spring"].ends_at < ANCHOR < campaigns["summer"].ends_at
    assert not Invite.objects.filter(campaign=campaigns["spring"], status="pending").exists()
    invites = list(Invite.objects.in_workspace(demo).select_related("invitee", "inviter", "campaign"))
    assert len(invites) > 0
    for invite in invites:
        assert invite.invitee.source_channel == "old_customer"
        assert invite.created_at == invite.invitee.created_at
        assert invite.campaign.starts_at <= invite.created_at < min(invite.campaign.ends_at, ANCHOR)
        assert invite.inviter.joined_at < invite.created_at
        left = ContactEvent.objects.filter(contact=invite.invitee, kind="left_group", occurred_at__gte=invite.created_at,
                                           occurred_at__lt=invite.hold_until).exists()
        if invite.status == "confirmed":
            assert not left
        if invite.status == "clawed_back":
            assert left
    for participant in Participant.objects.in_workspace(demo).filter(inviter__isnull=False).select_related("inviter"):
        assert participant.depth == participant.inviter.depth + 1
    for participant in Participant.objects.in_workspace(demo):
        confirmed = Invite.objects.filter(inviter=participant, status="confirmed").count()
        assert participant.confirmed_count == confirmed
        assert RewardEntry.objects.filter(participant=participant).count() == len([t for t in (2, 4, 8) if confirmed >= t])
    assert ContactEvent.objects.in_workspace(demo).filter(kind__in=("invited", "reward"), occurred_at__gte=ANCHOR).count() == 0
    assert all(e.occurred_at.astimezone(TZ) < ANCHOR for e in ContactEvent.objects.in_workspace(demo).filter(kind="invited"))
