"""Demo acquisition data: channels with costs, live codes with scans, one finished and one
running fission campaign with a realistic invite tree. The lead calls
:func:`seed_acquisition` from the demo seeding; the data depends only on ``seed`` and
the day it runs (times are relative to the last local midnight)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from typing import Any

from django.utils import timezone

from siyu.accounts.models import Staff
from siyu.acquisition.actions import (
    do_add_code_group,
    do_add_code_staff,
    do_create_channel,
    do_create_live_code,
    do_record_spend,
    do_route_scan,
)
from siyu.acquisition.models import AcquisitionChannel, LiveCode
from siyu.campaigns.actions import (
    do_confirm_due_invites,
    do_create_campaign,
    do_join_campaign,
    do_record_invite,
    do_update_campaign,
)
from siyu.campaigns.models import Campaign, Participant
from siyu.channels.models import ChannelAccount
from siyu.communities.actions import do_create_group
from siyu.contacts.actions import do_create_contact, do_record_event
from siyu.contacts.models import Contact
from siyu.core.models import Workspace

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = "婷静敏丽娜芳霞燕艳玲雪梅晶颖倩琳欣悦涵萱"

CHANNELS = [
    # key, name, kind, cost model, per add
    ("parcel", "包裹卡", "parcel_card", "per_add", "2.00"),
    ("store", "门店海报", "store_poster", "per_period", "0"),
    ("xhs", "小红书笔记", "xiaohongshu", "per_add", "8.50"),
    ("partner", "异业合作·花店", "partner_shop", "per_period", "0"),
    ("live", "直播间", "live_stream", "none", "0"),
    ("fission", "裂变活动", "fission", "none", "0"),
]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def _grow_tree(
    rng: random.Random, campaign: Campaign, seeds: list[Participant], start: dt.datetime, end: dt.datetime, *, invites: int
) -> dict[str, int]:
    """Participants invite new contacts: early sharers share more, a few invitees become
    sharers themselves, some leave within the hold, one sharer bursts from one phone."""
    frontier = list(seeds)
    made = left = 0
    span = (end - start).total_seconds()
    while made < invites and frontier:
        inviter = rng.choices(frontier, weights=[max(1, 8 - p.depth * 3) for p in frontier])[0]
        when = max(inviter.joined_at + dt.timedelta(minutes=rng.randint(5, 600)), start + dt.timedelta(seconds=rng.random() * span * 0.8))
        if when >= end:
            continue
        contact = do_create_contact(campaign.workspace, None, name=_name(rng), source_channel="fission", source_campaign=campaign.key,
                                    created_at=when)
        burst = inviter.pk == seeds[0].pk and made % 7 == 0
        invite = do_record_invite(inviter.invite_code, contact, visitor_key="same-phone" if burst else f"v{made}", occurred_at=when)
        made += 1
        if rng.random() < 0.12:
            do_record_event(contact, "left_group", idempotency_key=f"demo-left:{invite.pk}",
                            occurred_at=min(when + dt.timedelta(hours=rng.choice((1, 6, 30))), end))
            left += 1
        elif rng.random() < 0.25:
            frontier.append(Participant.objects.get(campaign=campaign, contact=contact))
    return {"invites": made, "left": left}


def seed_acquisition(workspace: Workspace, seed: int = 42) -> dict[str, Any]:
    """Create the demo's channels (with costs), live codes (with 30 days of scans) and two
    fission campaigns (one finished, one running) on the workspace's sandbox account.
    Returns a summary. Run once per workspace."""
    rng = random.Random(seed)
    tz = workspace.tz
    midnight = timezone.now().astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    staff = list(Staff.objects.in_workspace(workspace).filter(is_active=True).order_by("id"))
    account = ChannelAccount.objects.in_workspace(workspace).filter(kind="sandbox").order_by("id").first()
    channels: dict[str, AcquisitionChannel] = {}
    for key, name, kind, cost_model, per_add in CHANNELS:
        channels[key] = do_create_channel(workspace, None, key=key, name=name, kind=kind, cost_model=cost_model, cost_per_add=per_add,
                                          owner=staff[0] if staff else None, welcome_message=f"欢迎来自{name}的你！")
    today = midnight.date()
    do_record_spend(channels["store"], None, starts_on=today - dt.timedelta(days=30), ends_on=today - dt.timedelta(days=1),
                    amount=Decimal("900.00"), note="海报印刷 + 门店物料")
    do_record_spend(channels["partner"], None, starts_on=today - dt.timedelta(days=30), ends_on=today - dt.timedelta(days=1),
                    amount=Decimal("1500.00"), note="花店联名月费")

    codes: dict[str, LiveCode] = {}
    codes["parcel"] = do_create_live_code(workspace, None, channel=channels["parcel"], name="包裹卡加导购", kind="staff",
                                          channel_account=account, backup_staff=staff[0] if staff else None)
    for i, member in enumerate(staff[1:4] or staff[:1]):
        do_add_code_staff(codes["parcel"], None, staff=member, weight=1 + i % 2, daily_cap=40, total_cap=4000,
                          schedule={"weekly": {str(d): [["09:00", "22:00"]] for d in range(7)}})
    for key, name in (("store", "门店福利群"), ("xhs", "小红书粉丝群"), ("fission", "裂变福利群")):
        codes[key] = do_create_live_code(workspace, None, channel=channels[key], name=name, kind="group", channel_account=account,
                                         group_capacity=200)
        do_add_code_group(codes[key], None, group=do_create_group(
            workspace, None, name=f"{name}1", channel_account=account, external_id=f"demo-{key}-1" if account else "",
            created_at=midnight - dt.timedelta(days=31)))
    scans = 0
    for day in range(30, 0, -1):
        for key, per_day in (("parcel", 12), ("store", 8), ("xhs", 15)):
            for _ in range(rng.randint(per_day // 2, per_day)):
                at = midnight - dt.timedelta(days=day) + dt.timedelta(hours=rng.uniform(9.5, 21.5))
                do_route_scan(codes[key].code, visitor_key=f"demo-{rng.getrandbits(48):x}", user_agent="MicroMessenger/8.0.50", now=at)
                scans += 1

    pool = list(Contact.objects.in_workspace(workspace).filter(merged_into__isnull=True).order_by("id")[:200])
    tiers = [{"threshold": 3, "kind": "coupon", "label": "20元无门槛券", "value": "20"},
             {"threshold": 8, "kind": "gift", "label": "真丝发圈礼盒"},
             {"threshold": 15, "kind": "points", "label": "500积分", "points": 500}]
    variants = [{"key": "moments", "scene": "moments", "text": "闺蜜们快来！邀请3位好友进群就送20元券～"},
                {"key": "oldgroup", "scene": "existing_group", "text": "老朋友专享：拉3位新朋友进群，立得20元无门槛券"},
                {"key": "transit", "scene": "transit_group", "text": "进群后把海报发给好友，满3人自动发券"},
                {"key": "formal", "scene": "formal_group", "text": "最后24小时！还差几位就能领真丝发圈礼盒"}]
    summary: dict[str, Any] = {"channels": len(channels), "live_codes": len(codes), "scans": scans, "campaigns": {}}
    for key, name, start_days, end_days in (("spring", "春装上新·邀友领券", 45, 31), ("summer", "夏日裂变·好友助力", 7, -7)):
        start, end = midnight - dt.timedelta(days=start_days), midnight - dt.timedelta(days=end_days)
        campaign = do_create_campaign(
            workspace, None, key=key, name=name, kind="group", status="running", live_code=codes["fission"], starts_at=start, ends_at=end,
            hold_days=3, tiers=tiers, variants=variants, commission_rates=["0.08", "0.03"], title="邀请3位好友 立得20元券",
            benefits="20元无门槛券\n满8人送真丝发圈礼盒\n满15人再送500积分", endorsement="衣澜女装 · 10万+姐妹的选择", urgency="限时7天 · 礼盒仅剩300份",
        )
        seeds = [do_join_campaign(campaign, c, variant=campaign.variants.all()[i % 4], joined_at=start + dt.timedelta(hours=i))[0]
                 for i, c in enumerate(rng.sample(pool, min(8, len(pool))))]
        grown = _grow_tree(rng, campaign, seeds, start, min(end, midnight), invites=90 if key == "spring" else 60)
        decided = do_confirm_due_invites(campaign, now=min(end + dt.timedelta(days=4), midnight))
        if end <= midnight:
            do_update_campaign(campaign, None, status="finished")
        summary["campaigns"][key] = {**grown, **decided}
    return summary
