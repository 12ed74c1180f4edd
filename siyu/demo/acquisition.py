"""Demo acquisition data: channels with costs, live codes with their scans, one finished
and one running fission campaign with an invite tree.

It builds on what the demo already holds instead of inventing more people, so the
numbers agree with each other: channel keys are the contacts' first-touch sources (the
attribution report counts real adds, joins and orders), scans mirror the ``scan``
timeline events of the generated data (each linked to the contact it brought in, plus
visitors who scanned and never added), and the fission invitees are the contacts who
arrived as 老客推荐 during a campaign, invited by older customers; whoever left a group
within the hold is clawed back by the ledger itself.

Structure (channels, spend, codes, slots, campaigns, invites) goes through the actions;
the scans are generated bulk written with ``bulk_create`` like the rest of the demo's
history. The data depends only on ``seed`` and ``anchor`` (the last local midnight).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

from django.db.models import F
from django.utils import timezone

from siyu.accounts.models import Role, Staff
from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_channel,
    do_create_live_code,
    do_record_spend,
)
from siyu.acquisition.models import AcquisitionChannel, LiveCode, LiveCodeGroup, LiveCodeStaff, Scan, ScanOutcome
from siyu.campaigns.actions import (
    do_confirm_due_invites,
    do_create_campaign,
    do_join_campaign,
    do_record_invite,
    do_update_campaign,
)
from siyu.campaigns.models import Campaign, Invite, Participant
from siyu.channels.models import ChannelAccount
from siyu.communities.models import Group
from siyu.contacts.models import Contact, ContactEvent, Tag
from siyu.core.models import Workspace

# key (= the contacts' source_channel), name, kind, cost model, cost per add, spend over the last 30 days
CHANNELS: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("parcel_card", "包裹卡", "parcel_card", "per_add", "2.00", ""),
    ("store_poster", "门店海报", "store_poster", "per_period", "0", "900.00"),
    ("live_stream", "直播间", "live_stream", "none", "0", ""),
    ("xiaohongshu", "小红书笔记", "xiaohongshu", "per_add", "8.50", ""),
    ("douyin", "抖音", "douyin", "per_add", "6.00", ""),
    ("partner_shop", "异业合作·花店", "partner_shop", "per_period", "0", "1500.00"),
    ("staff_referral", "导购推荐", "staff_referral", "none", "0", ""),
    ("old_customer", "老客推荐·裂变", "fission", "none", "0", ""),
)
#: the 来源 tag a channel applies (the demo's source labels)
SOURCE_TAG = {"parcel_card": "包裹卡", "store_poster": "门店海报", "live_stream": "直播", "xiaohongshu": "小红书", "douyin": "抖音",
              "partner_shop": "异业合作", "staff_referral": "导购推荐", "old_customer": "老客推荐"}
STAFF_CODES = ("parcel_card", "store_poster", "live_stream", "partner_shop", "old_customer")
# channel, code name, how its groups are picked by name
GROUP_CODES: tuple[tuple[str, str, Any], ...] = (
    ("store_poster", "门店福利群活码", lambda n: "福利" in n and "线上" not in n and "直播" not in n and n.startswith("衣澜")),
    ("old_customer", "线上福利群活码", lambda n: n.startswith("衣澜线上福利")),
    ("live_stream", "直播福利群活码", lambda n: n.startswith("衣澜直播专属福利群")),
)
TIERS = [{"threshold": 2, "kind": "coupon", "label": "20元无门槛券", "value": "20"},
         {"threshold": 4, "kind": "gift", "label": "真丝发圈礼盒"},
         {"threshold": 8, "kind": "points", "label": "500积分", "points": 500}]
VARIANTS = [{"key": "moments", "scene": "moments", "text": "闺蜜们快来！邀请2位好友进群就送20元券～"},
            {"key": "oldgroup", "scene": "existing_group", "text": "老朋友专享：拉2位新朋友进群，立得20元无门槛券"},
            {"key": "transit", "scene": "transit_group", "text": "进群后把海报发给好友，满2人自动发券"},
            {"key": "formal", "scene": "formal_group", "text": "最后24小时！还差几位就能领真丝发圈礼盒"}]
# key, name, starts (days before the anchor), ends (days before the anchor; negative = still running)
CAMPAIGNS = (("spring", "春装上新·邀友领券", 60, 31), ("summer", "夏日裂变·好友助力", 14, -7))
#: visitors who scan and never add, per scan that brought someone in
LOOKERS_PER_ADD = 0.4
SEEDS_PER_CAMPAIGN = 6


def _visitor(rng: random.Random) -> str:
    return f"demo-{rng.getrandbits(64):016x}"


def _scan_events(workspace: Workspace) -> list[ContactEvent]:
    return list(ContactEvent.objects.in_workspace(workspace).filter(kind="scan").order_by("occurred_at", "id"))


def _create_channels(workspace: Workspace, owner: Staff | None, anchor: dt.datetime) -> dict[str, AcquisitionChannel]:
    tags = {t.name: t for t in Tag.objects.in_workspace(workspace).filter(group__name="来源")}
    today = anchor.date()
    channels = {}
    for key, name, kind, cost_model, per_add, spend in CHANNELS:
        tag = tags.get(SOURCE_TAG[key])
        channels[key] = do_create_channel(
            workspace, None, key=key, name=name, kind=kind, cost_model=cost_model, cost_per_add=per_add, owner=owner,
            welcome_message=f"欢迎来自{name}的你！回复「福利」领取新人券～", tags=[tag] if tag else [],
        )
        if spend:
            do_record_spend(channels[key], None, starts_on=today - dt.timedelta(days=30), ends_on=today - dt.timedelta(days=1),
                            amount=Decimal(spend), note="海报印刷 + 门店物料" if key == "store_poster" else "花店联名月费")
    return channels


def _staff_codes(
    rng: random.Random, workspace: Workspace, channels: dict[str, AcquisitionChannel], account: ChannelAccount | None,
    backup: Staff | None, events: list[ContactEvent], owners: dict[int, int | None], staff_by_id: dict[int, Staff],
) -> tuple[dict[str, LiveCode], list[Scan]]:
    """One staff code (加导购) per scanning source, its slots the agents the scans reached."""
    by_source: dict[str, list[ContactEvent]] = defaultdict(list)
    for event in events:
        if event.data.get("target") == "staff" and event.data.get("source") in STAFF_CODES:
            by_source[event.data["source"]].append(event)
    codes: dict[str, LiveCode] = {}
    scans: list[Scan] = []
    agents = sorted({sid for sid in owners.values() if sid is not None and staff_by_id[sid].role == Role.AGENT})
    for key in STAFF_CODES:
        code = do_create_live_code(workspace, None, channel=channels[key], name=f"{channels[key].name}·加导购", kind="staff",
                                   channel_account=account, backup_staff=backup)
        codes[key] = code
        reached = sorted({sid for e in by_source[key] if (sid := owners.get(e.contact_id)) is not None}) or agents[:3]
        for i, staff_id in enumerate(reached):
            do_add_code_staff(code, None, staff=staff_by_id[staff_id], weight=1 + i % 2, daily_cap=40, total_cap=4000,
                              schedule={"weekly": {str(d): [["09:00", "22:00"]] for d in range(7)}}, is_online=i % 7 != 6)
        for event in by_source[key]:
            scans.append(Scan(workspace=workspace, live_code=code, scanned_at=event.occurred_at, visitor_key=_visitor(rng),
                              user_agent="MicroMessenger/8.0.50", outcome=ScanOutcome.STAFF, staff_id=owners[event.contact_id],
                              contact_id=event.contact_id))
    return codes, scans


def _group_codes(
    rng: random.Random, workspace: Workspace, channels: dict[str, AcquisitionChannel], account: ChannelAccount | None,
    events: list[ContactEvent],
) -> tuple[dict[str, LiveCode], list[Scan]]:
    """Group codes (群活码) over the demo's traffic groups, holding the scans that preceded
    a join through a live code."""
    groups = list(Group.objects.in_workspace(workspace).filter(archived_at__isnull=True).order_by("id"))
    codes: dict[str, LiveCode] = {}
    scans: list[Scan] = []
    for key, name, picks in GROUP_CODES:
        chosen = [g for g in groups if picks(g.name)]
        if not chosen:
            continue
        code = do_create_live_code(
            workspace, None, channel=channels[key], name=name, kind="group", channel_account=None if key == "old_customer" else account,
            group_capacity=min(500, max(g.capacity for g in chosen)), auto_create_groups=False, window_size=5, low_watermark=1,
        )
        codes[f"{key}:group"] = code
        for group in chosen:
            do_add_code_group(code, None, group=group)
        ids = {g.pk for g in chosen}
        for event in events:
            if event.data.get("target") == "group" and event.data.get("group_id") in ids:
                scans.append(Scan(workspace=workspace, live_code=code, scanned_at=event.occurred_at, visitor_key=_visitor(rng),
                                  user_agent="MicroMessenger/8.0.50", outcome=ScanOutcome.GROUP, group_id=event.data["group_id"],
                                  contact_id=event.contact_id))
    return codes, scans


def _lookers(rng: random.Random, scans: list[Scan], codes: list[LiveCode], start: dt.datetime, end: dt.datetime) -> list[Scan]:
    """Visitors who scanned and never added (their seats were released after the TTL)."""
    by_code: dict[int, list[Scan]] = defaultdict(list)
    for scan in scans:
        by_code[scan.live_code.pk].append(scan)
    out = []
    span = (end - start).total_seconds()
    for code in codes:
        targets = [(s.outcome, s.staff_id, s.group_id) for s in by_code[code.pk]]
        if not targets:
            continue
        for _ in range(round(len(targets) * LOOKERS_PER_ADD)):
            outcome, staff_id, group_id = rng.choice(targets)
            day = start + dt.timedelta(seconds=rng.random() * span)
            at = day.replace(hour=rng.choice((9, 10, 12, 12, 13, 19, 20, 20, 21)), minute=rng.randrange(60))
            if not start <= at < end:
                continue
            out.append(Scan(workspace=code.workspace, live_code=code, scanned_at=at, visitor_key=_visitor(rng),
                            user_agent=rng.choice(("MicroMessenger/8.0.50", "MicroMessenger/8.0.47", "Mozilla/5.0 (iPhone)")),
                            outcome=outcome, staff_id=staff_id, group_id=group_id))
    return out


def _write_scans(scans: list[Scan], anchor: dt.datetime) -> None:
    Scan.objects.bulk_create(sorted(scans, key=lambda s: (s.scanned_at, s.visitor_key)), batch_size=1000)
    per_code = Counter(s.live_code.pk for s in scans)
    for code_id, n in per_code.items():
        LiveCode.objects.filter(pk=code_id).update(scan_count=F("scan_count") + n)
    # The slots' counters agree with the scans they routed.
    last_day = (anchor - dt.timedelta(days=1)).date()
    totals = Counter((s.live_code.pk, s.staff_id) for s in scans if s.staff_id is not None)
    day_counts = Counter((s.live_code.pk, s.staff_id) for s in scans if s.staff_id is not None and s.scanned_at.astimezone(anchor.tzinfo).date() == last_day)
    for slot in LiveCodeStaff.objects.filter(live_code_id__in=per_code):
        key = (slot.live_code_id, slot.staff_id)
        LiveCodeStaff.objects.filter(pk=slot.pk).update(total_count=totals[key], day=last_day, day_count=day_counts[key])


def _campaign_tree(
    rng: random.Random, campaign: Campaign, pool: list[Contact], invitees: list[Contact], cutoff: dt.datetime,
) -> dict[str, int]:
    """Older customers share first; each 老客推荐 arrival during the campaign is invited by
    someone already in it (early and prolific sharers more often), and joins the tree in
    turn, so the tree grows a few levels deep."""
    start = campaign.starts_at
    variants = list(campaign.variants.all())
    sharers: list[Participant] = []
    seeded = 0
    for i, contact in enumerate(rng.sample(pool, min(SEEDS_PER_CAMPAIGN, len(pool)))):
        participant, _ = do_join_campaign(campaign, contact, variant=variants[i % len(variants)], joined_at=start + dt.timedelta(hours=i))
        sharers.append(participant)
        seeded += 1
    made = 0
    for invitee in invitees:
        when = invitee.created_at
        if not start <= when < min(campaign.ends_at, cutoff):
            continue
        able = [p for p in sharers if p.joined_at < when]
        if not able:
            continue
        inviter = rng.choices(able, weights=[max(1, 6 - 2 * p.depth) for p in able])[0]
        invite = do_record_invite(inviter.invite_code, invitee, visitor_key=_visitor(rng), occurred_at=when)
        made += 1
        joined = Participant.objects.filter(campaign=campaign, contact=invitee).first()
        if invite.status != "rejected" and joined is not None and rng.random() < 0.6:
            sharers.append(joined)
    return {"seeds": seeded, "invites": made}


def seed_acquisition(workspace: Workspace, seed: int = 42, *, anchor: dt.datetime | None = None) -> dict[str, Any]:
    """Create the demo's acquisition channels (with costs and spend), live codes (with the
    scans of the workspace's history) and two fission campaigns (one finished, one
    running) whose invitees are the 老客推荐 contacts who arrived during them. ``anchor``
    is the end of the demo's history (default: the last local midnight). Returns a
    summary. Run once per workspace."""
    rng = random.Random(seed)
    anchor = anchor or timezone.now().astimezone(workspace.tz).replace(hour=0, minute=0, second=0, microsecond=0)
    staff = list(Staff.objects.in_workspace(workspace).filter(is_active=True).order_by("id"))
    staff_by_id = {s.pk: s for s in staff}
    lead = next((s for s in staff if s.role in (Role.OPERATOR, Role.ADMIN)), staff[0] if staff else None)
    account = ChannelAccount.objects.in_workspace(workspace).filter(kind="sandbox").order_by("id").first()
    channels = _create_channels(workspace, lead, anchor)
    owners = dict(Contact.objects.in_workspace(workspace).values_list("pk", "owner_id"))
    events = _scan_events(workspace)
    staff_codes, staff_scans = _staff_codes(rng, workspace, channels, account, lead, events, owners, staff_by_id)
    group_codes, group_scans = _group_codes(rng, workspace, channels, account, events)
    codes = {**staff_codes, **group_codes}
    scans = staff_scans + group_scans
    scans += _lookers(rng, scans, list(codes.values()), anchor - dt.timedelta(days=30), anchor)
    _write_scans(scans, anchor)

    fission_code = group_codes.get("old_customer:group") or staff_codes["old_customer"]
    summary: dict[str, Any] = {"channels": len(channels), "live_codes": len(codes), "scans": len(scans), "campaigns": {}}
    for key, name, start_days, end_days in CAMPAIGNS:
        start, end = anchor - dt.timedelta(days=start_days), anchor - dt.timedelta(days=end_days)
        campaign = do_create_campaign(
            workspace, None, key=key, name=name, kind="group", status="running", live_code=fission_code, starts_at=start, ends_at=end,
            hold_days=3, tiers=TIERS, variants=VARIANTS, commission_rates=["0.08", "0.03"], title="邀请2位好友 立得20元券",
            benefits="20元无门槛券\n满4人送真丝发圈礼盒\n满8人再送500积分", endorsement="衣澜女装 · 10万+姐妹的选择", urgency="限时活动 · 礼盒仅剩300份",
        )
        pool = list(Contact.objects.in_workspace(workspace).filter(merged_into__isnull=True, created_at__lt=start).order_by("id")[:400])
        invitees = list(Contact.objects.in_workspace(workspace).filter(source_channel="old_customer", merged_into__isnull=True,
                                                                        created_at__gte=start, created_at__lt=min(end, anchor))
                        .order_by("created_at", "id"))
        grown = _campaign_tree(rng, campaign, pool, invitees, anchor)
        # Decide the holds that are over by the anchor (a second before it: nothing is dated at or after it).
        decided = do_confirm_due_invites(campaign, now=min(end + dt.timedelta(days=campaign.hold_days + 1), anchor - dt.timedelta(seconds=1)))
        if end <= anchor:
            do_update_campaign(campaign, None, status="finished")
        statuses = Counter(Invite.objects.filter(campaign=campaign).values_list("status", flat=True))
        summary["campaigns"][key] = {**grown, "decided": decided, "statuses": dict(sorted(statuses.items())),
                                     "participants": Participant.objects.filter(campaign=campaign).count()}
    summary["group_slots"] = LiveCodeGroup.objects.in_workspace(workspace).count()
    return summary
