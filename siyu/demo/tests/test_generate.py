"""The generator alone (no database): shape and determinism of the default-size plan."""

import collections
import datetime as dt
import random

import pytest

from siyu.demo import rhythm
from siyu.demo.generate import TZ, Plan, build_plan

DAY = dt.date(2026, 3, 10)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return build_plan(5000, 42, DAY)


def _summary(plan: Plan) -> list[tuple]:
    return [(e.contact, e.kind, e.occurred_at, sorted(e.data.items()), e.group, e.staff, e.tag) for e in plan.events]


def test_same_arguments_give_the_same_plan_and_seeds_differ():
    # when
    first, again, other = build_plan(400, 9, DAY), build_plan(400, 9, DAY), build_plan(400, 10, DAY)

    # then
    assert _summary(again) == _summary(first)
    assert [(c.name, c.phone, c.created_at, c.tags) for c in again.contacts] == [(c.name, c.phone, c.created_at, c.tags) for c in first.contacts]
    assert [c.name for c in other.contacts] != [c.name for c in first.contacts]


def test_default_plan_volume(plan):
    kinds = collections.Counter(e.kind for e in plan.events)
    assert 30_000 <= len(plan.events) <= 80_000
    assert kinds.most_common(1)[0][0] == "message"
    assert set(kinds) == {"added", "message", "scan", "order", "joined_group", "left_group", "tagged"}
    assert len(plan.contacts) == 5000 and len(plan.groups) >= 20


def test_groups_fill_to_capacity_some_full_some_dying(plan):
    ever = collections.Counter(m.group for m in plan.memberships)
    still = collections.Counter(m.group for m in plan.memberships if m.left_at is None)
    for group in plan.groups:
        assert 20 <= ever[group.index] <= group.spec.capacity, group.spec.name
        if group.archived_at is None:
            assert 20 <= still[group.index] <= 500
    assert any(still[g.index] == g.spec.capacity for g in plan.groups)
    dying = [g for g in plan.groups if g.spec.dying]
    assert dying and all(still[g.index] < 0.5 * ever[g.index] for g in dying)


def test_contacts_look_like_a_womens_fashion_brand(plan):
    genders = collections.Counter(c.gender for c in plan.contacts)
    assert genders["female"] > 0.75 * 5000 and genders["male"] > 0.08 * 5000
    sources = collections.Counter(c.source.key for c in plan.contacts)
    assert set(sources) == {
        "parcel_card", "store_poster", "live_stream", "xiaohongshu", "douyin", "partner_shop", "staff_referral", "old_customer"
    }
    assert sources.most_common(1)[0][0] in ("parcel_card", "staff_referral")
    local = sum(1 for c in plan.contacts if c.city in {"上海", "杭州", "成都", "广州", "北京"})
    assert 0.6 * 5000 < local < 0.8 * 5000
    # More recent = more contacts (the pool is growing).
    quarters = collections.Counter(min(3, (plan.anchor - c.created_at).days // 91) for c in plan.contacts)
    assert quarters[0] > quarters[2] > quarters[3]
    assert all(plan.anchor - dt.timedelta(days=366) <= c.created_at < plan.anchor for c in plan.contacts)
    stages = collections.Counter(c.stage for c in plan.contacts)
    assert stages["nurtured"] > stages["repeat"] > stages["vip"] > 0


def test_weekday_and_weekend_rhythms(plan):
    weekday: collections.Counter[int] = collections.Counter()
    weekend: collections.Counter[int] = collections.Counter()
    for event in plan.events:
        if event.kind == "message":
            local = event.occurred_at.astimezone(TZ)
            (weekend if local.weekday() >= 5 else weekday)[local.hour] += 1
    assert [hour for hour, _ in weekday.most_common(3)] == [20, 9, 12]
    # Weekends sleep in: the morning peak moves from 09:30 towards 10:30.
    assert weekday[9] > 2 * weekday[10] and weekend[10] > weekend[9]


def test_day_profile_samples_stay_inside_the_day():
    rng = random.Random(1)
    hours = [rhythm.sample_hour(rng, weekday) for weekday in range(7) for _ in range(2000)]
    assert all(0 <= h < 24 for h in hours)
