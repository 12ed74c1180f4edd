"""Thirty days of group chat for the demo workspace (群聊记录), so the group pages show real
numbers: health trends, heatmaps, inferred roles, the moderation log.

What is generated, deterministically per seed:

- chatter, questions with answers (``reply_to`` the question), tips that others thank
  (``reply_to`` the tip — how a hidden expert earns replies), @-mentions (``mentions``, the
  mascot's daily share) — in the daily rhythm of :mod:`siyu.demo.rhythm` (09:30, 12:00,
  20:00–21:00), more on weekends, and a Saturday 20:00 burst in session groups;
- who talks follows each membership's role (core members talk most, lurkers almost never);
- groups differ: the lively ones thrive, the demo's dying groups fade over the last ten
  days, and one store group (广州天河) falls silent twelve days before today;
- a spammer account tries an ad in about 2.5% of the moments someone speaks — a few
  spammer accounts per group at a time — in the styles spammers use, with evasions
  (full-width and circled digits, "加 V", spelled-out URLs, short links, red-packet bait).
  Their :class:`ModerationCase` rows come from the moderation engine's pure check — the
  verdict, rule and reasons are the engine's, not written here — and deleted ads are
  marked deleted. A spammer whose ad draws a remove (or blacklist) verdict is out of the
  group two seconds later (membership closed, nothing posted after) and another quiet
  member (one the plan has say nothing) turns advertiser the next day, so about 1–2% of the stored messages are ads.

Rows are written with ``bulk_create`` (thousands of messages: per-message actions would
take minutes), then the activity counters are rebuilt from them
(:func:`siyu.communities.actions.do_rebuild_activity`), and the group health snapshots and
inferred roles are computed through their actions.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from siyu.communities.models import Group, GroupMessage, MemberRole, Membership, Threshold
from siyu.contacts.events import EventKind
from siyu.contacts.models import ChannelIdentity, Contact, ContactEvent
from siyu.core.models import Workspace
from siyu.demo import brand, rhythm
from siyu.moderation.policy import Verdict

__all__ = ["AD_RATE", "SILENT_GROUP", "SPAMMERS_PER_GROUP", "ad_text", "generate_group_messages", "seed_group_messages"]

AD_RATE = 0.025
#: the store group that stopped talking (its members drifted to the lively 1群 elsewhere)
SILENT_GROUP = f"{brand.BRAND_SHORT}广州天河福利1群"
SILENT_FOR_DAYS = 12
FADE_DAYS = 10
MESSAGES_PER_MEMBER = 0.1

_TALK_WEIGHT: dict[str, float] = {
    MemberRole.CORE: 10.0, MemberRole.EXPERT: 4.0, MemberRole.MASCOT: 6.0, MemberRole.ONLOOKER: 2.0, MemberRole.LURKER: 0.03,
    MemberRole.REBEL: 0.0, MemberRole.ADMIN: 5.0, MemberRole.OWNER: 5.0,
}
_ANSWER_WEIGHT: dict[str, float] = {MemberRole.EXPERT: 10.0, MemberRole.CORE: 4.0, MemberRole.ADMIN: 6.0, MemberRole.OWNER: 6.0, MemberRole.ONLOOKER: 0.5}
_MENTION_WEIGHT: dict[str, float] = {MemberRole.MASCOT: 12.0, MemberRole.CORE: 2.0, MemberRole.EXPERT: 1.0, MemberRole.ONLOOKER: 0.3}

#: the few accounts per group that post ads at a time (a spammer posts again until an
#: ad of theirs draws a remove or blacklist verdict: out of the group from then on, and
#: another quiet member takes their place the next day)
SPAMMERS_PER_GROUP = 3
#: how long after the ad the bot's removal lands
REMOVED_AFTER = dt.timedelta(seconds=2)
#: the verdicts that take a spammer out of the group
REMOVING = (Verdict.REMOVE, Verdict.BLACKLIST)

_WEIGHTS = {"talk": _TALK_WEIGHT, "answer": _ANSWER_WEIGHT, "mention": _MENTION_WEIGHT}

CHATTER = (
    "早上好呀各位☀️", "大家早～今天降温了记得加衣服", "晚安啦，明天见🌙", "打卡", "哈哈哈哈哈", "好看！", "👍👍", "收到，谢谢～",
    "今天穿了上次买的风衣，被同事夸了", "周末去店里试试", "刚下班，终于可以看群了", "中午吃啥好纠结", "这周的新品好好看",
    "昨天的直播错过了，有回放吗", "已下单，坐等快递", "快递到啦，拆箱！", "面料摸起来很舒服，好评", "颜色比图片深一点点",
    "这个价格太划算了", "终于等到补货了", "同款同款！", "我也想要这件", "姐妹们周末愉快", "下雨天适合穿什么呀",
    "今天好冷，羽绒服已经穿上了", "店里的小姐姐好温柔", "上次试的那条裙子回去就后悔没买", "种草了", "拔草成功😂",
    "真的显瘦", "这个颜色春天穿正好", "我妈也说好看", "等发工资就下单", "周六的分享会我报名", "谢谢群主的福利",
)
QUESTIONS = (
    "这件有M码吗？", "160/50kg穿什么码", "请问几号发货", "直播几点开始？", "这个颜色显白吗", "有没有优惠券",
    "门店有现货吗", "能帮我留一件吗", "面料会起球吗", "可以退换吗", "有没有小个子穿搭推荐", "这个系列还会补货吗",
    "梨形身材穿哪条裤子好看", "羊毛大衣怎么洗不变形", "黑色和燕麦色哪个百搭", "满减可以和会员价叠加吗",
    "上班通勤穿哪件比较合适", "肩宽的姐妹穿这件会显壮吗", "这条裙子配什么鞋", "真丝衬衫能机洗吗",
)
ANSWERS = (
    "我买了M，平时穿S，刚好", "显白的，黄皮亲测", "周二下单周四就到了", "可以的，七天无理由", "店里还有，昨天刚去过",
    "小个子选短款，配高腰裤", "梨形选阔腿裤，遮胯", "手洗冷水，平铺晾干就不会变形", "燕麦色更百搭，黑色更显瘦",
    "叠加不了，选便宜的那个", "通勤推荐那件西装外套，很挺括", "肩宽选V领和落肩款会好很多", "配乐福鞋或者小白鞋都好看",
    "真丝一定要手洗，别用洗衣粉", "面料不起球，我穿了一冬天", "问一下导购，她会帮你留", "晚上八点，记得定闹钟",
)
TIPS = (
    "分享一个小技巧：大衣选比平时大一码，里面能穿毛衣", "冬天叠穿记住三层：贴身、保暖、外套，颜色上下呼应",
    "小个子穿长裙记得配高跟或者厚底，比例会好很多", "白衬衫发黄可以用小苏打泡半小时再洗", "羊绒衫起球用剪刀修，别用手扯",
    "阔腿裤长度盖住鞋面一半最显腿长", "驼色大衣配同色系围巾，高级感拉满", "买牛仔裤看弹力，坐下不勒才是真合适",
    "针织衫挂着会变形，叠起来放", "深色衣服翻面洗，不容易褪色",
)
THANKS = ("学到了，谢谢！", "太有用了👍", "收藏了", "马上试试", "原来是这样", "干货！", "谢谢分享～", "记下了")
MENTIONS = (
    "@{name} 你穿的那件是什么码呀", "@{name} 周末一起去店里？", "@{name} 快来看新品", "@{name} 你上次说的那条裙子到货了",
    "@{name} 哈哈哈你太可爱了", "@{name} 求同款链接在哪个群发的", "@{name} 今天的穿搭好好看", "@{name} 早呀",
)
SESSION = ("来啦来啦", "今天的主题好实用", "开始了吗", "已经在抢了", "手慢无😭", "抢到了！", "老师讲得好清楚", "下期想听配色")

# Ads: a hook, then a contact written the way spammers dodge filters.
_AD_HOOKS = (
    "高仿包包一比一", "兼职日结300", "一件代发货源", "低价代购大牌", "刷单返佣", "减肥瘦身不反弹", "微商团队招代理", "免费领面膜",
    "工厂直销拿货价", "网贷秒批", "点赞员招聘", "美容院招学徒",
)
_FULL = str.maketrans("0123456789", "０１２３４５６７８９")
_CIRCLED = str.maketrans("0123456789", "⓪①②③④⑤⑥⑦⑧⑨")
_HANZI = str.maketrans("0123456789", "〇一二三四五六七八九")


def _phone(rng: random.Random) -> str:
    return "1" + rng.choice("3589") + "".join(rng.choice("0123456789") for _ in range(9))


def _wechat_id(rng: random.Random) -> str:
    head = "".join(rng.choice("abcdefghjkmnpqrstuvwxyz") for _ in range(rng.randint(3, 6)))
    return head + rng.choice(("_", "", "-")) + "".join(rng.choice("0123456789") for _ in range(rng.randint(3, 5)))


def ad_text(rng: random.Random) -> str:
    """One advert in a realistic style; every style is one the built-in detectors catch."""
    hook = rng.choice(_AD_HOOKS)
    phone = _phone(rng)
    style = rng.randrange(12)
    if style == 0:
        return f"{hook}，需要的加我 {phone}"
    if style == 1:
        return f"{hook} 电话 {phone[:3]}-{phone[3:7]}-{phone[7:]}"
    if style == 2:
        return f"{phone.translate(_FULL)} {hook}"
    if style == 3:
        return f"{hook} 找我 {phone.translate(_CIRCLED)}"
    if style == 4:
        return f"{hook}，联系 {phone.translate(_HANZI)}"
    if style == 5:
        return f"{hook}，加 V 信：{_wechat_id(rng)}"
    if style == 6:
        return f"{hook} ➕V：{_wechat_id(rng)} 有惊喜"
    if style == 7:
        return f"{hook}，vx：{_wechat_id(rng)}"
    if style == 8:
        return f"{hook} 戳 t.cn/{''.join(rng.choice('ABCDEFGHabcdefgh0123456789') for _ in range(6))} 领券"
    if style == 9:
        return f"{hook} 看看 www点{''.join(rng.choice('abcdefgh') for _ in range(5))}点com"
    if style == 10:
        return f"{hook}，扫码领红包，每天都有"
    return f"{hook} 点这里 https://{''.join(rng.choice('abcdefgh') for _ in range(6))}.top/?id={rng.randint(10, 99)}"


@dataclass
class _Member:
    contact_id: int
    member_id: str
    name: str
    role: str
    exempt: bool
    joined_at: dt.datetime
    left_at: dt.datetime | None

    def present(self, when: dt.datetime) -> bool:
        return self.joined_at <= when and (self.left_at is None or when < self.left_at)


@dataclass(frozen=True)
class _Profile:
    liveliness: float
    kind: str  # thriving | steady | fading | silent
    weekly_session: bool


def _profiles(groups: list[Group], today: dt.date) -> dict[int, _Profile]:
    specs = {spec.name: spec for spec in brand.group_specs(today)}
    out: dict[int, _Profile] = {}
    for group in groups:
        spec = specs.get(group.name)
        liveliness = spec.liveliness if spec is not None else 1.0
        kind = "steady"
        if group.name == SILENT_GROUP:
            kind = "silent"
        elif spec is not None and spec.dying:
            kind = "fading"
        elif liveliness >= 1.2:
            kind = "thriving"
        out[group.pk] = _Profile(max(liveliness, 0.4), kind, bool(spec and spec.weekly_session))
    return out


def _volume(profile: _Profile, day_index: int, days: int) -> float:
    remaining = days - day_index  # 1 on the last day
    if profile.kind == "silent":
        return 0.0 if remaining <= SILENT_FOR_DAYS else 0.5
    if profile.kind == "fading":
        return 0.2 if remaining <= FADE_DAYS else 1.0
    return 1.8 if profile.kind == "thriving" else 1.0


class _Writer:
    def __init__(self, workspace_id: int, group: Group, seed: int) -> None:
        self.workspace_id, self.group, self.seed = workspace_id, group, seed
        self.rows: list[GroupMessage] = []
        self.ads: list[int] = []  # indexes into rows
        #: spammers the bot removed (remove/blacklist verdict on an ad): contact → when
        self.removed: dict[int, dt.datetime] = {}

    def post_ad(self, member: _Member, when: dt.datetime, text: str) -> None:
        """An ad, judged as the bot judges it when posted: a remove or blacklist verdict
        takes the spammer out of the group two seconds later (no messages after that)."""
        from siyu.moderation import engine

        self.add(member, when, text, ad=True)
        verdict = engine.check_message(self.workspace_id, text, group_id=self.group.pk, data=self.rows[-1].data).verdict
        if verdict in REMOVING:
            out = when + REMOVED_AFTER
            if member.left_at is None or out < member.left_at:
                member.left_at = out
            if member.contact_id not in self.removed or out < self.removed[member.contact_id]:
                self.removed[member.contact_id] = out

    def settle(self) -> None:
        """Drop what removed spammers "posted" after their removal (a day's messages are
        planned in no particular order of time)."""
        removed = self.removed
        if not removed:
            return
        ads = set(self.ads)
        kept = [(index, row) for index, row in enumerate(self.rows)
                if row.sender_id not in removed or row.sent_at < removed[row.sender_id]]
        self.rows = [row for _index, row in kept]
        self.ads = [new for new, (old, _row) in enumerate(kept) if old in ads]

    def add(self, member: _Member, when: dt.datetime, text: str, *, reply_to: str = "", mentions: tuple[str, ...] = (),
            ad: bool = False) -> str:
        external_id = f"demo-{self.seed}-{self.group.pk}-{len(self.rows)}"
        data: dict[str, Any] = {"sender_external_id": member.member_id}
        if reply_to:
            data["reply_to"] = reply_to
        if mentions:
            data["mentions"] = list(mentions)
        if ad:
            self.ads.append(len(self.rows))
        self.rows.append(GroupMessage(workspace_id=self.workspace_id, group_id=self.group.pk, sender_id=member.contact_id,
                                      external_id=external_id, text=text, data=data, sent_at=when))
        return external_id


class _Pool:
    """The members of one group on one day with cumulative weights per kind of pick
    (computed once a day: per message it would dominate the seeding time)."""

    def __init__(self, members: list[_Member], spammers: set[int]) -> None:
        self.members = members
        self.cum = {name: list(accumulate(w.get(m.role, 0.0) for m in members)) for name, w in _WEIGHTS.items()}
        self.cum["spam"] = list(accumulate(1.0 if m.contact_id in spammers else 0.0 for m in members))

    def pick(self, rng: random.Random, kind: str, when: dt.datetime, *, not_: _Member | None = None) -> _Member | None:
        cum = self.cum[kind]
        if not cum or cum[-1] <= 0:
            return None
        for _ in range(3):
            member = rng.choices(self.members, cum_weights=cum)[0]
            if member is not not_ and member.present(when):
                return member
        return None


def _day_talk(rng: random.Random, writer: _Writer, pool: _Pool, day: dt.date, count: int, tz: dt.tzinfo,
              now: dt.datetime, *, session: bool) -> None:
    day_start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
    for _ in range(count):
        hour = 20 + rng.random() * 1.5 if session else rhythm.sample_hour(rng, day.weekday())
        when = day_start + dt.timedelta(hours=hour)
        speaker = pool.pick(rng, "talk", when)
        if speaker is None or when >= now:
            continue
        if rng.random() < AD_RATE:
            spammer = pool.pick(rng, "spam", when)
            if spammer is not None:
                writer.post_ad(spammer, when, ad_text(rng))
            continue
        if session:
            writer.add(speaker, when, rng.choice(SESSION))
            continue
        roll = rng.random()
        if roll < 0.3:
            question = writer.add(speaker, when, rng.choice(QUESTIONS))
            for _ in range(rng.choice((0, 1, 1, 2))):
                when = when + dt.timedelta(minutes=rng.randint(1, 25))
                answerer = pool.pick(rng, "answer", when, not_=speaker)
                if answerer is not None and when < now:
                    writer.add(answerer, when, rng.choice(ANSWERS), reply_to=question)
        elif roll < 0.38 and speaker.role in (MemberRole.EXPERT, MemberRole.CORE):
            tip = writer.add(speaker, when, rng.choice(TIPS))
            for _ in range(rng.randint(1, 3)):
                when = when + dt.timedelta(minutes=rng.randint(1, 40))
                fan = pool.pick(rng, "talk", when, not_=speaker)
                if fan is not None and when < now:
                    writer.add(fan, when, rng.choice(THANKS), reply_to=tip)
        elif roll < 0.5:
            target = pool.pick(rng, "mention", when, not_=speaker)
            if target is not None:
                writer.add(speaker, when, rng.choice(MENTIONS).format(name=target.name), mentions=(target.member_id,))
        else:
            writer.add(speaker, when, rng.choice(CHATTER))


def generate_group_messages(workspace: Workspace, *, seed: int, days: int = 30, now: dt.datetime | None = None) -> list[_Writer]:
    """The planned messages per group (nothing written)."""
    now = now or timezone.now()
    tz = workspace.tz
    today = now.astimezone(tz).date()
    first_day = today - dt.timedelta(days=days)
    window_start = dt.datetime.combine(first_day, dt.time.min, tzinfo=tz)
    groups = list(Group.objects.in_workspace(workspace).filter(archived_at__isnull=True, channel_account__isnull=False).order_by("id"))
    profiles = _profiles(groups, today)
    talkers = set(ContactEvent.objects.in_workspace(workspace).filter(kind=EventKind.MESSAGE).values_list("contact_id", flat=True))
    writers: list[_Writer] = []
    for group in groups:
        rng = random.Random(f"siyu-demo-group-messages:{seed}:{group.external_id or group.name}")
        rows = list(
            Membership.objects.filter(group=group, joined_at__lt=now)
            .exclude(left_at__lt=window_start)
            .order_by("joined_at", "id")
            .values_list("contact_id", "role", "role_assigned", "joined_at", "left_at")
        )
        ids = dict(ChannelIdentity.objects.filter(account_id=group.channel_account_id, contact_id__in=[r[0] for r in rows])
                   .values_list("contact_id", "external_id"))
        names = dict(Contact.objects.filter(pk__in=[r[0] for r in rows]).values_list("pk", "name"))
        members = [
            _Member(cid, ids.get(cid, f"member-{cid}"), names.get(cid, ""), role,
                    assigned and role in (MemberRole.OWNER, MemberRole.ADMIN), joined, left)
            for cid, role, assigned, joined, left in rows
        ]
        profile = profiles[group.pk]
        writer = _Writer(workspace.pk, group, seed)
        # advertisers are quiet members (bought or hijacked accounts) the plan has say
        # nothing anywhere and stay in the group: removing one drops none of the plan's
        # messages or leaves, so what the plan derived from them (activity tags, seats) holds
        quiet = sorted(m.contact_id for m in members if m.role in (MemberRole.LURKER, MemberRole.ONLOOKER) and not m.exempt
                       and m.left_at is None and m.contact_id not in talkers)
        spammers = set(rng.sample(quiet, min(SPAMMERS_PER_GROUP, len(quiet))))
        for index in range(days):
            day = first_day + dt.timedelta(days=index)
            day_start = dt.datetime.combine(day, dt.time.min, tzinfo=tz)
            day_end = day_start + dt.timedelta(days=1)
            # whoever was in the group at some time that day; pick() checks the moment
            present = [m for m in members if m.joined_at < day_end and (m.left_at is None or m.left_at > day_start)]
            # a removed spammer's place is taken the next day by another quiet member
            # turned advertiser (bought or hijacked accounts), so ads keep coming
            for gone in sorted(spammers & writer.removed.keys()):
                spammers.discard(gone)
                fresh = sorted({m.contact_id for m in present} & set(quiet) - spammers - writer.removed.keys())
                if fresh:
                    spammers.add(rng.choice(fresh))
            pool = _Pool(present, spammers)
            size = len(pool.members)
            rate = MESSAGES_PER_MEMBER * profile.liveliness * size * _volume(profile, index, days)
            if day.weekday() >= 5:
                rate *= rhythm.WEEKEND_VOLUME
            count = max(0, round(rng.gauss(rate, rate * 0.2))) if rate > 0 else 0
            _day_talk(rng, writer, pool, day, count, tz, now, session=False)
            if profile.weekly_session and day.weekday() == 5 and _volume(profile, index, days) > 0:
                _day_talk(rng, writer, pool, day, round(size * 0.2), tz, now, session=True)
        writer.settle()
        writers.append(writer)
    return writers


def seed_group_messages(workspace: Workspace, *, seed: int, days: int = 30, now: dt.datetime | None = None) -> dict[str, int]:
    """Write the demo's group messages, their moderation cases, the removals of the
    spammers the bot removed, the activity counters, the health snapshots (with alerts)
    and the inferred roles. Returns the counts: ``{"group_messages", "ads",
    "moderation_cases", "removed_spammers", "removal_events", "refund_tasks", "blacklisted",
    "activity_rows", "health_days", "alerts", "role_changes"}`` (``removal_events``: the
    removed spammers' ``left_group`` timeline events; ``refund_tasks``: the paid group's
    owner's tasks to refund the members moderation removed; ``blacklisted``: the removed
    spammers staff then banned from every group, see :func:`_blacklist_lead_poachers`).
    Meant for a freshly seeded demo workspace."""
    from siyu.accounts.events import record_audit
    from siyu.communities.actions import do_infer_member_roles, do_rebuild_activity, do_refresh_group_health
    from siyu.communities.models import Alert
    from siyu.moderation import engine
    from siyu.moderation.models import ModerationCase

    now = now or timezone.now()
    writers = generate_group_messages(workspace, seed=seed, days=days, now=now)
    counts = {"group_messages": 0, "ads": 0, "moderation_cases": 0, "removed_spammers": 0, "removal_events": 0, "refund_tasks": 0,
              "blacklisted": 0, "activity_rows": 0, "health_days": 0, "alerts": 0, "role_changes": 0}
    with transaction.atomic():
        cases: list[ModerationCase] = []
        for writer in writers:
            for index in writer.ads:
                row = writer.rows[index]
                decision = engine.check_message(workspace.pk, row.text, group_id=writer.group.pk, msgtype=row.msgtype, data=row.data)
                if decision.verdict == Verdict.ALLOW:
                    continue
                if decision.verdict in (Verdict.DELETE, Verdict.REMOVE, Verdict.BLACKLIST):
                    row.deleted_at = row.sent_at + dt.timedelta(seconds=2)
                cases.append(ModerationCase(
                    workspace_id=workspace.pk, group_id=writer.group.pk, contact_id=row.sender_id, verdict=decision.verdict.value,
                    reasons=decision.as_dict()["reasons"], text=row.text[:2000], rule=decision.rule[:100], note=decision.note[:300],
                    applied=[{"demo": "history: the bot acted when it was posted"}],
                ))
                cases[-1]._demo_row = row  # type: ignore[attr-defined]  # the message gets its pk below
            counts["ads"] += len(writer.ads)
            GroupMessage.objects.bulk_create(writer.rows, batch_size=1000)
            counts["group_messages"] += len(writer.rows)
            counts["removed_spammers"] += len(writer.removed)
            counts["removal_events"] += _remove_spammers(writer)
        for case in cases:
            case.message_id = case._demo_row.pk  # type: ignore[attr-defined]
        ModerationCase.objects.bulk_create(cases, batch_size=1000)
        # auto_now_add stamped the seeding time; a case happened when its message was posted
        _backdate_cases(workspace.pk, [c.pk for c in cases])
        counts["moderation_cases"] = len(cases)
        counts["refund_tasks"] = _ask_for_refunds(cases, {w.group.pk: w.group for w in writers})
        counts["blacklisted"] = _blacklist_lead_poachers(cases)
        counts["activity_rows"] = do_rebuild_activity(workspace)
        for writer in writers:
            counts["health_days"] += len(do_refresh_group_health(writer.group, now=now, days=days))
            counts["role_changes"] += do_infer_member_roles(writer.group, now=now)["changed"]
        counts["alerts"] = Alert.objects.filter(workspace_id=workspace.pk).count()
        record_audit(workspace, None, "demo.group_messages_seeded", target=workspace,
                     summary=f"demo group chat: {counts['group_messages']} messages, {counts['moderation_cases']} ads caught (seed {seed})",
                     after={**counts, "seed": seed, "days": days})
    return counts


def _ask_for_refunds(cases: list[Any], groups: dict[int, Group]) -> int:
    """The refund tasks the live path gives a paid group's owner for each member
    moderation removed (seeds: "remove, and refund in paid groups"), still open in the
    console's task queue (任务), unless the group's settings say fees are not refunded.
    Answers the removals asked about (a task asked for before is kept, not doubled)."""
    from siyu.channels.models import ChannelAccount
    from siyu.moderation.actions import ask_for_refund

    removals = [c for c in cases if c.verdict in REMOVING and groups[c.group_id].threshold == Threshold.PRICE]
    if not removals:
        return 0
    contacts = Contact.objects.in_bulk({c.contact_id for c in removals})
    accounts = ChannelAccount.objects.in_bulk({groups[c.group_id].channel_account_id for c in removals})
    # the live path's evidence names the sender by their id on the channel
    members = {(a, c): e for a, c, e in ChannelIdentity.objects.filter(account_id__in=accounts, contact_id__in=contacts).values_list(
        "account_id", "contact_id", "external_id")}
    asked = 0
    for case in removals:
        contact, group = contacts[case.contact_id], groups[case.group_id]
        evidence = {"text": case.text[:500], "sender": members.get((group.channel_account_id, contact.pk), ""), "group": group.name,
                    "rule": case.rule, "verdict": case.verdict, "reasons": case.reasons}
        task = ask_for_refund(accounts[group.channel_account_id], group, contact, contact.name or "该成员", f"mod:{case.message_id}", [],
                              evidence)
        asked += task is not None
    return asked


#: the finding that marks an ad as the work of a lead-poaching account (引流号): a WeChat id
#: to add. Operators ban those from every group (拉黑); a phone number may be a member's
#: own shop, removed from the group but not banned
POACHING = "wechat_id"
#: how long after the bot removed such a spammer the operator's review banned them
REVIEWED_AFTER = dt.timedelta(hours=1)


def _blacklist_lead_poachers(cases: list[Any]) -> int:
    """The workspace's blacklist (风控 → 黑名单), as operators keep it: a spammer the bot
    removed for an ad with a WeChat id to add (:data:`POACHING`) was banned from every
    group by staff at the review an hour later (``REVIEWED_AFTER``), the case linked as
    the reason. History written as it stands (the spammer was in no other group, so the
    ban removed no one else). A contact already on the list keeps their entry. Answers
    the entries added."""
    from siyu.moderation.models import BlacklistEntry

    listed = set(BlacklistEntry.objects.filter(contact_id__in={c.contact_id for c in cases}, lifted_at__isnull=True)
                 .values_list("contact_id", flat=True))
    added: dict[int, BlacklistEntry] = {}
    for case in cases:
        if case.verdict not in REMOVING or case.contact_id in listed or case.contact_id in added:
            continue
        if POACHING not in {reason["detector"] for reason in case.reasons}:
            continue
        entry = BlacklistEntry(workspace_id=case.workspace_id, contact_id=case.contact_id, case=case, reason="广告引流（留微信号），人工复核后拉黑")
        added[case.contact_id] = entry
    entries = BlacklistEntry.objects.bulk_create(added.values())
    # auto_now_add stamped the seeding time: the ban came at the review
    for entry in entries:
        entry.created_at = entry.case._demo_row.sent_at + REVIEWED_AFTER  # type: ignore[union-attr]
    BlacklistEntry.objects.bulk_update(entries, ["created_at"])
    return len(entries)


def _remove_spammers(writer: _Writer) -> int:
    """Close the memberships of the spammers the bot removed, when it removed them, with
    the ``left_group`` timeline event the removal records. History, like the rest of this
    module: written as it stands, not replayed through ``do_remove_member`` (whose tag
    rule evaluation would stamp today's date on whatever it tags). Answers the events added."""
    from siyu.contacts.events import record_timeline

    added = 0
    for contact_id, at in writer.removed.items():
        membership = Membership.objects.filter(group=writer.group, contact_id=contact_id, left_at__isnull=True).select_related("contact").first()
        if membership is None:
            continue
        Membership.objects.filter(pk=membership.pk).update(left_at=at)
        _event, created = record_timeline(membership.contact, EventKind.LEFT_GROUP, idempotency_key=f"leave:{membership.pk}", occurred_at=at,
                                          data={"group_id": writer.group.pk, "group": writer.group.name,
                                                "reason": "removed by moderation: advertising"})
        added += int(created)
    return added


def _backdate_cases(workspace_id: int, case_ids: list[int]) -> int:
    from siyu.moderation.models import ModerationCase

    return ModerationCase.objects.filter(workspace_id=workspace_id, pk__in=case_ids).update(
        created_at=Subquery(GroupMessage.objects.filter(pk=OuterRef("message_id")).values("sent_at")[:1])
    )
