"""The demo's data as a plan, computed without touching the database.

:func:`build_plan` turns (number of contacts, seed, today) into staff, contacts with
their tags and consents, groups with memberships, and timeline events. It is a pure
function: the same arguments give the same plan, because every random choice comes from
streams derived from ``random.Random(seed)`` in a fixed order and every time is relative
to the anchor (``today`` 00:00 Asia/Shanghai). Rows refer to each other by index or key;
:mod:`siyu.demo.seed` resolves them to database ids while writing.

Consistency the plan keeps (tests check it):
- activity (messages, scans, orders, tags given in the window) lies in the 30 days before
  the anchor; an ``added`` event sits at each contact's ``created_at`` and a
  ``joined_group``/``left_group`` event at each membership's start/end, which may be older;
- a contact with an order is a buyer; two or more orders only happen to repeat/VIP buyers;
- the tags that the demo's tag rules would give are already there, with the rule's reason,
  so the rules' first pass changes nothing;
- open memberships never exceed a group's capacity (at any time: a group's memberships,
  closed ones included, stay within capacity).
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import math
import random
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from siyu.core.phones import normalize_phone
from siyu.demo import brand, names, rhythm

TIME_ZONE = "Asia/Shanghai"
TZ = zoneinfo.ZoneInfo(TIME_ZONE)
WINDOW_DAYS = 30
HISTORY_DAYS = 365
# Contacts arrive faster lately: density ∝ exp(-age / GROWTH_DAYS) over the last year.
GROWTH_DAYS = 200.0
# The default demo size; group sizes in brand.py are given for it.
REFERENCE_CONTACTS = 5000

BUYER_STAGES = ("first_purchase", "repeat", "vip", "at_risk", "churned", "recalled")
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155", "156",
    "157", "158", "159", "166", "173", "176", "177", "180", "181", "182", "183", "184", "185", "186", "187", "188",
    "189", "199",
)


# ---------------------------------------------------------------- plan rows


@dataclass(frozen=True)
class PlanStaff:
    key: str
    email: str
    display_name: str
    role: str
    store: str  # store name, "" for head office


@dataclass
class PlanTag:
    group: str
    name: str
    source: str  # TagSource value
    added_by: str | None = None  # staff key
    rule: str | None = None  # RuleSpec key
    reason: str = ""
    event_at: dt.datetime | None = None  # when a ``tagged`` event is recorded (None: before the window)


@dataclass
class PlanContact:
    index: int
    name: str
    gender: str
    birthday: dt.date | None
    age_band: str | None
    province: str
    city: str
    phone: str  # E.164 or ""
    store: str  # store key
    owner: str  # staff key
    source: brand.Source
    campaign: str
    stage: str
    engagement: str  # silent / light / active
    created_at: dt.datetime
    size: str | None
    styles: list[str]
    spending: str | None
    external_ref: str
    tags: list[PlanTag] = field(default_factory=list)
    consents: list[tuple[str, bool, bool, str]] = field(default_factory=list)  # purpose, granted, do_not_disturb, source

    @property
    def external_id(self) -> str:
        return f"sbx_u_{self.index + 1:06d}"


@dataclass
class PlanGroup:
    index: int
    spec: brand.GroupSpec
    created_at: dt.datetime
    ends_on: dt.date | None
    archived_at: dt.datetime | None
    admins: list[str]

    @property
    def external_id(self) -> str:
        return f"sbx_g_{self.index + 1:03d}"


@dataclass
class PlanMembership:
    group: int
    contact: int
    role: str
    role_assigned: bool
    join_source: str
    joined_at: dt.datetime
    left_at: dt.datetime | None = None
    leave_reason: str = ""


@dataclass
class PlanEvent:
    contact: int
    kind: str
    occurred_at: dt.datetime
    data: dict[str, Any]
    # Resolved to database ids by the writer and added to ``data``.
    group: int | None = None
    staff: str | None = None
    tag: tuple[str, str] | None = None


@dataclass
class Plan:
    seed: int
    anchor: dt.datetime  # end of the activity window: today 00:00 local, as UTC
    window_start: dt.datetime
    staff: list[PlanStaff]
    contacts: list[PlanContact]
    groups: list[PlanGroup]
    memberships: list[PlanMembership]
    events: list[PlanEvent]


# ---------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1024)
def _day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=TZ).astimezone(dt.UTC)


def local_time(day: dt.date, hour: float) -> dt.datetime:
    """``day`` at ``hour`` (fractional) Asia/Shanghai, as aware UTC, to the second.
    Adding to the UTC midnight is exact because Shanghai has no daylight saving time."""
    return _day_start(day) + dt.timedelta(seconds=int(hour * 3600))


def anchor_for(today: dt.date) -> dt.datetime:
    return local_time(today, 0)


def _weighted(rng: random.Random, options: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _time_on(rng: random.Random, day: dt.date) -> dt.datetime:
    """A moment on ``day`` drawn from that weekday's activity profile."""
    return local_time(day, rhythm.sample_hour(rng, day.weekday()))


def _weighted_sample(rng: random.Random, items: Sequence[int], weights: Sequence[float], k: int) -> list[int]:
    """``k`` distinct items, favouring heavy ones (Efraimidis–Spirakis keys)."""
    keyed = sorted(((rng.random() ** (1.0 / w), item) for item, w in zip(items, weights, strict=True)), reverse=True)
    return [item for _, item in keyed[:k]]


# ---------------------------------------------------------------- staff


def staff_plan() -> list[PlanStaff]:
    staff = [
        PlanStaff(s.key, f"{s.key}@{brand.EMAIL_DOMAIN}", s.display_name, s.role, "") for s in brand.HEAD_OFFICE
    ]
    for store in brand.STORES:
        staff.append(
            PlanStaff(
                f"{store.key}.manager", f"{store.key}.manager@{brand.EMAIL_DOMAIN}", f"{store.manager}（{store.name}店长）",
                "operator", store.name,
            )
        )
        for number, agent in enumerate(store.agents, start=1):
            staff.append(
                PlanStaff(
                    f"{store.key}.{number}", f"{store.key}.{number}@{brand.EMAIL_DOMAIN}", f"{agent}（{store.name}导购）",
                    "agent", store.name,
                )
            )
    return staff


# ---------------------------------------------------------------- the generator


class _Generator:
    def __init__(self, contacts: int, seed: int, today: dt.date) -> None:
        self.n = contacts
        self.seed = seed
        self.today = today
        self.anchor = anchor_for(today)
        self.window_start = self.anchor - dt.timedelta(days=WINDOW_DAYS)
        self.window_days = [today - dt.timedelta(days=WINDOW_DAYS - i) for i in range(WINDOW_DAYS)]
        self.window_ends = [local_time(d + dt.timedelta(days=1), 0) for d in self.window_days]
        master = random.Random(seed)
        # One stream per stage, drawn in a fixed order: changing how many numbers one
        # stage consumes does not reshuffle the others.
        streams = ("contacts", "phones", "groups", "memberships", "group_talk", "private", "orders", "scans", "tags")
        self.rng = {name: random.Random(master.getrandbits(64)) for name in streams}
        self.staff = staff_plan()
        self.stores = {s.key: s for s in brand.STORES}
        self.contacts: list[PlanContact] = []
        self.groups: list[PlanGroup] = []
        self.memberships: list[PlanMembership] = []
        self.events: list[PlanEvent] = []
        self.message_times: dict[int, list[dt.datetime]] = {}
        self.order_times: dict[int, list[dt.datetime]] = {}
        self.used_phones: set[str] = set()

    def build(self) -> Plan:
        for index in range(self.n):
            self.contacts.append(self._contact(index))
        self._groups()
        self._memberships()
        self._group_talk()
        self._private_talk()
        self._orders()
        self._scans()
        self._tags()
        for contact in self.contacts:
            for tag in contact.tags:
                if tag.event_at is not None:
                    data = {"tag": f"{tag.group}/{tag.name}", "source": tag.source, **({"reason": tag.reason} if tag.reason else {})}
                    self.events.append(PlanEvent(contact.index, "tagged", tag.event_at, data, tag=(tag.group, tag.name)))
            self.events.append(
                PlanEvent(
                    contact.index, "added", contact.created_at,
                    {"source_channel": contact.source.key, "source_campaign": contact.campaign},
                )
            )
        # Number events in time order so that keys read like a log.
        self.events.sort(key=lambda e: (e.occurred_at, e.contact, e.kind))
        return Plan(
            seed=self.seed, anchor=self.anchor, window_start=self.window_start, staff=self.staff, contacts=self.contacts,
            groups=self.groups, memberships=self.memberships, events=self.events,
        )

    def in_window(self, when: dt.datetime) -> bool:
        return self.window_start <= when < self.anchor

    # ------------------------------------------------------------ contacts

    def _created_day(self, rng: random.Random) -> dt.date:
        roll = rng.random()
        # The two big sales bring a burst of new contacts (parcel cards, live streams).
        for name, share, spread in (("618", 0.06, 4), ("双11", 0.08, 5)):
            if roll < share:
                _, peak = _last_peak(self.today - dt.timedelta(days=1), name)
                day = peak + dt.timedelta(days=rng.randint(-spread, 2))
                if 1 <= (self.today - day).days <= HISTORY_DAYS:
                    return day
                break
            roll -= share
        scale = 1 - math.exp(-HISTORY_DAYS / GROWTH_DAYS)
        age = -GROWTH_DAYS * math.log(1 - rng.random() * scale)
        return self.today - dt.timedelta(days=min(HISTORY_DAYS, int(age) + 1))

    def _phone(self) -> str:
        rng = self.rng["phones"]
        while True:
            raw = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            e164 = normalize_phone(raw)
            if e164 not in self.used_phones:
                self.used_phones.add(e164)
                return e164

    def _contact(self, index: int) -> PlanContact:
        rng = self.rng["contacts"]
        created_day = self._created_day(rng)
        created_at = _time_on(rng, created_day)
        age_days = (self.today - created_day).days
        local = rng.random() < 0.72
        if local:
            store = _weighted(rng, [(s, s.weight) for s in brand.STORES])
            city, province = store.city, store.province
        else:
            city, province, store_key, _ = _weighted(rng, [(c, c[3]) for c in brand.OTHER_CITIES])
            store = self.stores[store_key]
        if rng.random() < 0.04:  # never said where they live
            city, province = "", ""
        gender = _weighted(rng, [("female", 0.84), ("male", 0.13), ("unknown", 0.03)])
        name = names.person_name(rng, female=gender != "male")
        band, low, high = _weighted(
            rng, [(("18-24", 18, 24), 0.24), (("25-30", 25, 30), 0.36), (("31-40", 31, 40), 0.30), (("41+", 41, 55), 0.10)]
        )
        age = rng.randint(low, high)
        birthday: dt.date | None = None
        if rng.random() < 0.78:
            last_birthday = dt.date(self.today.year - age, self.today.month, min(self.today.day, 28))
            birthday = last_birthday - dt.timedelta(days=rng.randrange(365))
        age_band: str | None = band if birthday is not None or rng.random() < 0.4 else None
        source = _weighted(rng, [(s, s.local_weight if local else s.remote_weight) for s in brand.SOURCES])
        season = brand.campaign_season(created_day)
        campaign = "" if source.key == "staff_referral" else f"{season}{source.label}"
        agents = [s for s in self.staff if s.role == "agent" and s.store == store.name]
        # The first agent of a store has been there longest and holds the most customers.
        owner = _weighted(rng, [(a.key, 1.4 if a.key.endswith(".1") else 1.0) for a in agents])
        stage = self._stage(rng, age_days)
        engagement = _weighted(rng, _ENGAGEMENT[stage])
        size = None
        knows_size = {"new": 0.1, "nurtured": 0.45}.get(stage, 0.9)
        if rng.random() < knows_size:
            sizes = _SIZES_MALE if gender == "male" else _SIZES_FEMALE
            size = _weighted(rng, sizes)
        styles: list[str] = []
        style_count = _weighted(rng, [(0, 0.6 if stage == "new" else 0.25), (1, 0.5), (2, 0.25)])
        style_weights = list(_STYLES_BY_BAND[band])
        while len(styles) < style_count:
            style = _weighted(rng, style_weights)
            styles.append(style)
            style_weights = [(s, w) for s, w in style_weights if s != style]
        spending = _weighted(rng, _SPENDING[stage]) if rng.random() < 0.85 else None
        phone = self._phone() if rng.random() < (0.92 if stage in BUYER_STAGES else 0.7) else ""
        contact = PlanContact(
            index=index, name=name, gender=gender, birthday=birthday, age_band=age_band, province=province, city=city,
            phone=phone, store=store.key, owner=owner, source=source, campaign=campaign, stage=stage, engagement=engagement,
            created_at=created_at, size=size, styles=styles, spending=spending,
            external_ref=f"YL{index + 10001:08d}" if stage in BUYER_STAGES else "",
        )
        contact.consents = self._consents(rng, contact)
        return contact

    def _stage(self, rng: random.Random, age_days: int) -> str:
        if age_days <= 14:
            return _weighted(rng, [("new", 0.4), ("nurtured", 0.4), ("first_purchase", 0.17), ("repeat", 0.03)])
        if age_days <= WINDOW_DAYS:
            return _weighted(rng, [("new", 0.1), ("nurtured", 0.55), ("first_purchase", 0.28), ("repeat", 0.07)])
        if age_days <= 90:
            return _weighted(
                rng, [("nurtured", 0.4), ("first_purchase", 0.3), ("repeat", 0.15), ("vip", 0.02), ("at_risk", 0.08), ("churned", 0.05)]
            )
        return _weighted(
            rng,
            [("nurtured", 0.25), ("first_purchase", 0.22), ("repeat", 0.18), ("vip", 0.07), ("at_risk", 0.12),
             ("churned", 0.12), ("recalled", 0.04)],
        )

    def _consents(self, rng: random.Random, contact: PlanContact) -> list[tuple[str, bool, bool, str]]:
        consents: list[tuple[str, bool, bool, str]] = []
        if rng.random() < 0.65:
            consents.append(("service", True, False, "添加好友时同意"))
        roll = rng.random()
        if roll < 0.03:
            consents.append(("marketing", False, True, "客户要求勿扰"))
        elif roll < (0.55 if contact.stage in BUYER_STAGES else 0.33):
            consents.append(("marketing", True, False, "小程序会员授权"))
        if rng.random() < 0.2:
            consents.append(("group_archive", True, False, "入群时同意会话存档"))
        return consents

    # ------------------------------------------------------------ groups

    def _groups(self) -> None:
        rng = self.rng["groups"]
        operators = ["ops1", "ops2"]
        for index, spec in enumerate(brand.group_specs(self.today)):
            created_day = self.today - dt.timedelta(days=spec.created_days_ago)
            created_at = local_time(created_day, 10 + rng.random() * 8)
            ends_on = self.today + dt.timedelta(days=spec.ends_in_days) if spec.ends_in_days is not None else None
            archived_at = local_time(ends_on + dt.timedelta(days=1), 10 + rng.random()) if spec.archived and ends_on else None
            admins = [k for k in operators if k != spec.owner][: 1 + (spec.size >= 250)]
            self.groups.append(PlanGroup(index, spec, created_at, ends_on, archived_at, admins))

    def _audience(self, spec: brand.GroupSpec) -> Callable[[PlanContact], bool]:
        kind, _, arg = spec.audience.partition(":")
        recent = self.anchor - dt.timedelta(days=21)
        tests: dict[str, Callable[[PlanContact], bool]] = {
            "store": lambda c: c.store == arg,
            "online": lambda c: c.source.key in ("parcel_card", "live_stream", "xiaohongshu", "douyin"),
            "live": lambda c: c.source.key == "live_stream" or (c.engagement != "silent" and c.city not in _STORE_CITIES),
            "newcomer": lambda c: c.created_at >= recent and c.stage in ("new", "nurtured", "first_purchase"),
            "trial": lambda c: c.stage in ("nurtured", "first_purchase", "repeat") and c.city in _STORE_CITIES,
            "flash": lambda c: c.stage in ("first_purchase", "repeat", "vip", "recalled"),
            "buyers": lambda c: c.stage in BUYER_STAGES or c.stage == "nurtured",
            "recall": lambda c: c.stage in ("at_risk", "churned", "recalled"),
            "xhs": lambda c: c.source.key == "xiaohongshu",
            "vip": lambda c: c.stage == "vip" or (c.stage == "repeat" and c.spending == "高"),
            "paid": lambda c: c.stage in ("repeat", "vip"),
            "style": lambda c: arg in c.styles,
            "active": lambda c: c.engagement == "active",
            "store-vip": lambda c: c.store == arg and c.stage in ("repeat", "vip"),
        }
        return tests[kind]

    def _memberships(self) -> None:
        rng = self.rng["memberships"]
        scale = min(1.0, self.n / REFERENCE_CONTACTS)
        for group in self.groups:
            spec = group.spec
            join_end = group.archived_at or self.anchor
            fits = self._audience(spec)
            candidates = [c.index for c in self.contacts if fits(c) and c.created_at < join_end - dt.timedelta(hours=2)]
            target = min(spec.capacity, len(candidates), max(min(20, len(candidates)), round(spec.size * scale)))
            weights = [_JOIN_WEIGHT[self.contacts[i].engagement] for i in candidates]
            chosen = sorted(_weighted_sample(rng, candidates, weights, target))
            special = self._special_roles(rng, chosen)
            for contact_index in chosen:
                contact = self.contacts[contact_index]
                start = max(group.created_at, contact.created_at + dt.timedelta(hours=1))
                joined_at = self._join_time(rng, spec, start, join_end)
                role = special.get(contact_index) or _weighted(rng, _ROLE_BY_ENGAGEMENT[contact.engagement])
                join_source = _weighted(rng, _JOIN_SOURCES[spec.group_type])
                membership = PlanMembership(group.index, contact_index, role, contact_index in special, join_source, joined_at)
                if group.archived_at is not None:
                    membership.left_at, membership.leave_reason = group.archived_at, "群已解散"
                elif rng.random() < spec.leave_rate * _LEAVE_FACTOR[contact.engagement]:
                    membership.left_at = self._leave_time(rng, spec, joined_at)
                    membership.leave_reason = "主动退群" if membership.left_at else ""
                self.memberships.append(membership)
            if spec.group_type == "traffic" and not spec.dying and group.archived_at is None and target < spec.capacity:
                self._rebel(rng, group)
        for membership in self.memberships:
            group = self.groups[membership.group]
            self.events.append(
                PlanEvent(
                    membership.contact, "joined_group", membership.joined_at,
                    {"group": group.spec.name, "join_source": membership.join_source}, group=group.index,
                )
            )
            if membership.left_at is not None:
                self.events.append(
                    PlanEvent(
                        membership.contact, "left_group", membership.left_at,
                        {"group": group.spec.name, "reason": membership.leave_reason}, group=group.index,
                    )
                )
            scan_at = membership.joined_at - dt.timedelta(seconds=15 + self.rng["scans"].randrange(120))
            if membership.join_source == "live_code" and self.in_window(scan_at):
                # The join came through the group's live code (群活码): the scan just before it.
                self.events.append(
                    PlanEvent(
                        membership.contact, "scan", scan_at,
                        {"live_code": f"{group.spec.name}·入群活码", "target": "group"}, group=group.index,
                    )
                )

    def _special_roles(self, rng: random.Random, chosen: list[int]) -> dict[int, str]:
        """Hand-assigned roles (seed 004): a hidden expert or two, a few core members and one
        mascot, picked among the active talkers."""
        active = [i for i in chosen if self.contacts[i].engagement == "active"]
        rng.shuffle(active)
        roles: dict[int, str] = {}
        experts = 1 + (len(chosen) >= 150)
        cores = max(1, len(chosen) // 30)
        for role, count in (("expert", experts), ("mascot", 1), ("core", cores)):
            for _ in range(count):
                if active:
                    roles[active.pop()] = role
        return roles

    def _rebel(self, rng: random.Random, group: PlanGroup) -> None:
        """Someone joins only to post an ad and is removed minutes later (反动派)."""
        if rng.random() < 0.5:
            return
        taken = {m.contact for m in self.memberships if m.group == group.index}
        pool = [c.index for c in self.contacts if c.engagement == "silent" and c.index not in taken and c.created_at < self.window_start]
        if not pool:
            return
        contact_index = rng.choice(pool)
        days = [d for d in self.window_days if local_time(d, 0) > group.created_at]
        if not days:
            return
        joined_at = _time_on(rng, rng.choice(days))
        posted_at = joined_at + dt.timedelta(minutes=rng.randint(1, 8))
        left_at = posted_at + dt.timedelta(minutes=rng.randint(2, 25))
        if left_at >= self.anchor:
            return
        self.memberships.append(
            PlanMembership(group.index, contact_index, "rebel", True, "invite", joined_at, left_at, "发广告被移出")
        )
        text = rng.choice(brand.AD_LINES)
        self.events.append(
            PlanEvent(contact_index, "message", posted_at, {"chat": "group", "group": group.spec.name, "text": text}, group=group.index)
        )
        self.message_times.setdefault(contact_index, []).append(posted_at)

    def _join_time(self, rng: random.Random, spec: brand.GroupSpec, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        span = (end - start).total_seconds()
        # Groups fill fastest right after launch; dying groups stopped growing long ago.
        skew = 2.5 if spec.dying else 1.6
        for _ in range(6):
            moment = start + dt.timedelta(seconds=span * rng.random() ** skew)
            day = moment.astimezone(TZ).date()
            candidate = _time_on(rng, day)
            if start <= candidate < end:
                return candidate
        return start + dt.timedelta(seconds=span * rng.random())

    def _leave_time(self, rng: random.Random, spec: brand.GroupSpec, joined_at: dt.datetime) -> dt.datetime | None:
        # Members of a dying group are leaving now; elsewhere people drift out any time.
        earliest = max(joined_at + dt.timedelta(hours=1), self.window_start) if spec.dying else joined_at + dt.timedelta(hours=1)
        if earliest >= self.anchor:
            return None
        span = (self.anchor - earliest).total_seconds()
        for _ in range(6):
            moment = earliest + dt.timedelta(seconds=span * rng.random())
            candidate = _time_on(rng, moment.astimezone(TZ).date())
            if earliest <= candidate < self.anchor:
                return candidate
        return earliest

    # ------------------------------------------------------------ messages

    def _group_talk(self) -> None:
        rng = self.rng["group_talk"]
        by_group: dict[int, list[PlanMembership]] = {}
        for membership in self.memberships:
            if membership.role != "rebel":
                by_group.setdefault(membership.group, []).append(membership)
        for group in self.groups:
            members = by_group.get(group.index, [])
            if group.archived_at is not None or not members:
                continue
            spec = group.spec
            for day_number, day in enumerate(self.window_days):
                day_start, day_end = local_time(day, 0), local_time(day + dt.timedelta(days=1), 0)
                present = [m for m in members if m.joined_at < day_end and (m.left_at is None or m.left_at > day_start)]
                if not present:
                    continue
                rate = 0.15 * spec.liveliness * len(present)
                if day.weekday() >= 5:
                    rate *= rhythm.WEEKEND_VOLUME
                if spec.dying:
                    rate *= 0.5 * math.exp(-3.0 * day_number / WINDOW_DAYS)
                count = max(0, round(rng.gauss(rate, rate * 0.2)))
                weights = [_TALK_WEIGHT[m.role] for m in present]
                for _ in range(count):
                    self._group_message(rng, group, present, weights, day, None)
                if spec.weekly_session and day.weekday() == 5:
                    # Saturday 20:00: the sharing session / flash sale fills the hour.
                    for _ in range(round(len(present) * 0.25 * spec.liveliness)):
                        self._group_message(rng, group, present, weights, day, 20 + rng.random() * 1.5)

    def _group_message(
        self, rng: random.Random, group: PlanGroup, present: list[PlanMembership], weights: list[float], day: dt.date, hour: float | None
    ) -> None:
        member = rng.choices(present, weights=weights)[0]
        when = local_time(day, hour) if hour is not None else _time_on(rng, day)
        if when < member.joined_at or (member.left_at is not None and when >= member.left_at):
            return
        text = rng.choice(brand.CUSTOMER_LINES)
        self.events.append(PlanEvent(member.contact, "message", when, {"chat": "group", "group": group.spec.name, "text": text}, group=group.index))
        self.message_times.setdefault(member.contact, []).append(when)

    def _private_talk(self) -> None:
        rng = self.rng["private"]
        staff_by_key = {s.key: s for s in self.staff}
        for contact in self.contacts:
            low, high = _PRIVATE_MESSAGES[contact.engagement]
            count = rng.randint(low, high)
            # Only the days since the contact was added.
            days = self.window_days[bisect.bisect_left(self.window_ends, contact.created_at) :]
            if not days:
                continue
            staff = staff_by_key[contact.owner]
            for _ in range(count):
                when = _time_on(rng, rng.choice(days))
                if when <= contact.created_at:
                    continue
                self._private(contact, when, "in", rng.choice(brand.CUSTOMER_LINES), staff)
                reply_at = when + dt.timedelta(minutes=rng.randint(1, 25))
                local_hour = reply_at.astimezone(TZ).hour
                # 导购 answer during working hours; late messages wait for the morning.
                if rng.random() < 0.55 and 9 <= local_hour < 22 and reply_at < self.anchor:
                    self._private(contact, reply_at, "out", rng.choice(brand.STAFF_LINES), staff)

    def _private(self, contact: PlanContact, when: dt.datetime, direction: str, text: str, staff: PlanStaff) -> None:
        self.events.append(
            PlanEvent(
                contact.index, "message", when,
                {"chat": "private", "direction": direction, "staff": staff.display_name, "text": text}, staff=staff.key,
            )
        )
        self.message_times.setdefault(contact.index, []).append(when)

    # ------------------------------------------------------------ orders and scans

    def _orders(self) -> None:
        rng = self.rng["orders"]
        flash = next((g for g in self.groups if g.spec.key == "flash"), None)
        flash_members = {m.contact for m in self.memberships if flash is not None and m.group == flash.index}
        saturdays = [d for d in self.window_days if d.weekday() == 5]
        serial = 0
        for contact in self.contacts:
            new_in_window = contact.created_at >= self.window_start
            if new_in_window:
                count = {"first_purchase": 1, "repeat": 2}.get(contact.stage, 0)
            else:
                count = _weighted(rng, _ORDERS_BY_STAGE.get(contact.stage, [(0, 1.0)]))
            times: list[dt.datetime] = []
            for _ in range(count):
                if contact.index in flash_members and rng.random() < 0.4 and saturdays:
                    when = local_time(rng.choice(saturdays), 20 + rng.random() * 2)
                else:
                    day = rng.choice(self.window_days)
                    when = _time_on(rng, day)
                if when <= contact.created_at:
                    # A new contact buys within days of being added.
                    when = contact.created_at + dt.timedelta(hours=rng.uniform(0.3, 72))
                    if when >= self.anchor:
                        when = contact.created_at + (self.anchor - contact.created_at) * rng.random()
                times.append(when)
            times.sort()
            for when in times:
                serial += 1
                amount, items = self._basket(rng, contact)
                in_store = contact.city in _STORE_CITIES and rng.random() < 0.45
                store = self.stores[contact.store]
                data = {
                    "order_no": f"YL{when.astimezone(TZ):%Y%m%d}{serial:05d}",
                    "amount": str(amount),
                    "currency": "CNY",
                    "items": items,
                    "channel": "store" if in_store else "mini_program",
                    "store": store.name if in_store else "衣澜官方小程序",
                }
                self.events.append(PlanEvent(contact.index, "order", when, data))
            if times:
                self.order_times[contact.index] = times

    def _basket(self, rng: random.Random, contact: PlanContact) -> tuple[Decimal, int]:
        items = _weighted(rng, [(1, 0.55), (2, 0.32), (3, 0.13)])
        rich = contact.spending == "高" or contact.stage == "vip"
        total = Decimal(0)
        for _ in range(items):
            price = Decimal(rng.choice(brand.PRICE_POINTS[4:] if rich else brand.PRICE_POINTS[:11]))
            total += price
        discount = _weighted(rng, [(Decimal("1"), 0.5), (Decimal("0.9"), 0.25), (Decimal("0.8"), 0.15), (Decimal("0.7"), 0.1)])
        return (total * discount).quantize(Decimal("0.01")), items

    def _scans(self) -> None:
        rng = self.rng["scans"]
        for contact in self.contacts:
            store = self.stores[contact.store]
            if contact.source.scan and self.in_window(contact.created_at) and contact.created_at - dt.timedelta(minutes=3) >= self.window_start:
                # The add came from a live code (活码): the scan just before it.
                where = store.name if contact.source.key in ("store_poster", "partner_shop") else "线上"
                self.events.append(
                    PlanEvent(
                        contact.index, "scan", contact.created_at - dt.timedelta(seconds=20 + rng.randrange(120)),
                        {"live_code": f"{contact.source.label}活码·{where}", "source": contact.source.key, "target": "staff"},
                    )
                )
            if contact.city == store.city and contact.stage != "churned" and rng.random() < 0.18:
                # A store visit: the customer scans the check-in code at the till.
                day = rng.choice([d for d in self.window_days if d.weekday() >= 5] or self.window_days)
                when = local_time(day, 11 + rng.random() * 9)
                if when > contact.created_at:
                    self.events.append(
                        PlanEvent(contact.index, "scan", when, {"live_code": f"{store.name}·到店签到", "source": "store_visit", "target": "store"})
                    )

    # ------------------------------------------------------------ tags

    def _tags(self) -> None:
        rng = self.rng["tags"]
        rules = {r.key: r for r in brand.RULES}
        for contact in self.contacts:
            tags = contact.tags
            soon = contact.created_at + dt.timedelta(minutes=rng.randint(1, 10))
            added_at = soon if self.in_window(soon) else None
            if contact.gender in ("female", "male"):
                tags.append(PlanTag("性别", "女" if contact.gender == "female" else "男", "manual", contact.owner, event_at=added_at))
            if contact.age_band:
                tags.append(PlanTag("年龄段", contact.age_band, "manual", contact.owner, event_at=added_at))
            tags.append(PlanTag("所属门店", self.stores[contact.store].name, "channel", event_at=added_at))
            tags.append(PlanTag("来源", contact.source.label, "channel", event_at=added_at))
            if contact.province:
                rule = rules["south" if contact.province in brand.SOUTH_PROVINCES else "north"]
                explanation = f"region = {contact.province} (in {rule.conditions[0]['value']})"
                tags.append(PlanTag("地区", rule.tag[1], "rule", rule=rule.key, reason=f"{rule.name}: {explanation}", event_at=added_at))
            later = contact.created_at + dt.timedelta(hours=rng.uniform(0.5, 240))
            later_at = later if self.in_window(later) else None
            if contact.size:
                tags.append(PlanTag("尺码", contact.size, "manual", contact.owner, event_at=later_at))
            for style in contact.styles:
                tags.append(PlanTag("风格偏好", style, "manual", contact.owner, event_at=later_at))
            if contact.spending:
                tags.append(PlanTag("消费力", contact.spending, "import"))
            self._stage_tags(contact, rules["repeat"])
            self._activity_tag(contact, rules["active"])

    def _stage_tags(self, contact: PlanContact, repeat_rule: brand.RuleSpec) -> None:
        orders = self.order_times.get(contact.index, [])
        stage = contact.stage
        if stage in ("new", "nurtured"):
            if stage == "nurtured":
                contact.tags.append(PlanTag("购买阶段", "意向", "import"))
            return
        if stage == "first_purchase" or (stage in ("at_risk", "churned", "recalled") and contact.index % 3):
            first = orders[0] + dt.timedelta(minutes=30) if orders and contact.created_at >= self.window_start else None
            contact.tags.append(PlanTag("购买阶段", "首单", "import", event_at=first if first and first < self.anchor else None))
        if stage in ("repeat", "vip") or (stage in ("at_risk", "churned", "recalled") and not contact.index % 3):
            if len(orders) >= brand.REPEAT_ORDERS and contact.created_at >= self.anchor - dt.timedelta(days=60):
                # A new customer whose second order fell in the window: the rule gave 复购.
                when = orders[brand.REPEAT_ORDERS - 1] + dt.timedelta(seconds=30)
                reason = f"{repeat_rule.name}: {brand.REPEAT_ORDERS} × order in the last 90 days (needs ≥ {brand.REPEAT_ORDERS})"
                contact.tags.append(
                    PlanTag("购买阶段", "复购", "rule", rule=repeat_rule.key, reason=reason, event_at=when if when < self.anchor else None)
                )
            else:
                contact.tags.append(PlanTag("购买阶段", "复购", "import"))
        if stage == "vip":
            contact.tags.append(PlanTag("购买阶段", "VIP", "import"))

    def _activity_tag(self, contact: PlanContact, active_rule: brand.RuleSpec) -> None:
        times = sorted(self.message_times.get(contact.index, []))
        if len(times) >= brand.ACTIVE_MESSAGES:
            when = times[brand.ACTIVE_MESSAGES - 1] + dt.timedelta(seconds=30)
            reason = (
                f"{active_rule.name}: {brand.ACTIVE_MESSAGES} × message in the last 30 days (needs ≥ {brand.ACTIVE_MESSAGES})"
            )
            contact.tags.append(
                PlanTag("活跃度", "活跃", "rule", rule=active_rule.key, reason=reason, event_at=when if when < self.anchor else None)
            )
        else:
            contact.tags.append(PlanTag("活跃度", "一般" if times else "沉默", "import"))


def _last_peak(day: dt.date, name: str) -> tuple[str, dt.date]:
    month, mday = (6, 18) if name == "618" else (11, 11)
    date = dt.date(day.year, month, mday)
    return name, date if date <= day else date.replace(year=day.year - 1)


_STORE_CITIES = tuple(s.city for s in brand.STORES)
_SIZES_FEMALE = [("S", 0.25), ("M", 0.42), ("L", 0.25), ("XL", 0.08)]
_SIZES_MALE = [("M", 0.25), ("L", 0.45), ("XL", 0.3)]
_STYLES_BY_BAND: dict[str, list[tuple[str, float]]] = {
    "18-24": [("休闲", 3), ("国潮", 3), ("运动", 2.5), ("法式", 1.5), ("通勤", 0.8)],
    "25-30": [("通勤", 3), ("法式", 3), ("休闲", 2), ("国潮", 1), ("运动", 1)],
    "31-40": [("通勤", 3.5), ("休闲", 2), ("法式", 2), ("运动", 1), ("国潮", 0.5)],
    "41+": [("休闲", 3), ("通勤", 2.5), ("法式", 1), ("运动", 1), ("国潮", 0.3)],
}
_SPENDING: dict[str, list[tuple[str, float]]] = {
    "new": [("中", 0.35), ("低", 0.5), ("高", 0.15)],
    "nurtured": [("中", 0.4), ("低", 0.45), ("高", 0.15)],
    "first_purchase": [("中", 0.5), ("低", 0.38), ("高", 0.12)],
    "repeat": [("中", 0.55), ("低", 0.15), ("高", 0.3)],
    "vip": [("高", 0.75), ("中", 0.25)],
    "at_risk": [("中", 0.5), ("低", 0.35), ("高", 0.15)],
    "churned": [("中", 0.4), ("低", 0.5), ("高", 0.1)],
    "recalled": [("中", 0.5), ("低", 0.3), ("高", 0.2)],
}
_ENGAGEMENT: dict[str, list[tuple[str, float]]] = {
    "new": [("silent", 0.45), ("light", 0.5), ("active", 0.05)],
    "nurtured": [("silent", 0.35), ("light", 0.5), ("active", 0.15)],
    "first_purchase": [("silent", 0.3), ("light", 0.5), ("active", 0.2)],
    "repeat": [("silent", 0.2), ("light", 0.5), ("active", 0.3)],
    "vip": [("silent", 0.05), ("light", 0.4), ("active", 0.55)],
    "at_risk": [("silent", 0.7), ("light", 0.3)],
    "churned": [("silent", 0.95), ("light", 0.05)],
    "recalled": [("silent", 0.2), ("light", 0.6), ("active", 0.2)],
}
# Inbound 1:1 messages in the window (each may get a reply from the 导购).
_PRIVATE_MESSAGES = {"silent": (0, 0), "light": (1, 4), "active": (4, 14)}
_ORDERS_BY_STAGE: dict[str, list[tuple[int, float]]] = {
    "repeat": [(0, 0.45), (1, 0.35), (2, 0.14), (3, 0.06)],
    "vip": [(0, 0.1), (1, 0.3), (2, 0.3), (3, 0.2), (4, 0.1)],
    "recalled": [(0, 0.3), (1, 0.7)],
}
_JOIN_WEIGHT = {"silent": 1.0, "light": 1.5, "active": 2.5}
_LEAVE_FACTOR = {"silent": 1.6, "light": 0.8, "active": 0.3}
_ROLE_BY_ENGAGEMENT: dict[str, list[tuple[str, float]]] = {
    "silent": [("lurker", 1.0)],
    "light": [("onlooker", 0.45), ("lurker", 0.55)],
    "active": [("onlooker", 0.9), ("lurker", 0.1)],
}
# Who speaks in a group: the core talks, lurkers almost never.
_TALK_WEIGHT = {"expert": 6.0, "core": 10.0, "mascot": 8.0, "onlooker": 2.0, "lurker": 0.05, "rebel": 0.0, "admin": 3.0, "owner": 3.0}
_JOIN_SOURCES: dict[str, list[tuple[str, float]]] = {
    "traffic": [("live_code", 0.7), ("invite", 0.2), ("staff_invite", 0.1)],
    "conversion": [("live_code", 0.6), ("staff_invite", 0.4)],
    "organisational": [("staff_invite", 0.6), ("invite", 0.4)],
}


def build_plan(contacts: int, seed: int, today: dt.date) -> Plan:
    """The whole demo for ``contacts`` customers, deterministic in (contacts, seed, today)."""
    return _Generator(contacts, seed, today).build()
