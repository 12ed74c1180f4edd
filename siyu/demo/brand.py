"""The made-up brand behind the demo: 衣澜 Yilan 女装, a mid-priced women's fashion label
with five stores, an online shop and a private pool run the way DOMAIN.md describes
(store welfare groups, short conversion groups, warm long-term member groups).

Everything here is static description; :mod:`siyu.demo.generate` turns it into data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

BRAND_NAME = "衣澜 Yilan 女装"
BRAND_SHORT = "衣澜"
EMAIL_DOMAIN = "demo.siyu.local"
CHANNEL_ACCOUNT_NAME = "衣澜企业微信（沙盒）"
CHANNEL_CORP_ID = "sbx_corp_yilan"


@dataclass(frozen=True)
class Store:
    key: str  # used in staff e-mail addresses
    name: str
    city: str
    province: str
    weight: float  # share of the customer base relative to the other stores
    manager: str
    agents: tuple[str, ...]


STORES: tuple[Store, ...] = (
    Store("sh-jingan", "上海静安店", "上海", "上海", 1.35, "刘婷", ("小雨", "安琪", "晓雯")),
    Store("hz-hubin", "杭州湖滨店", "杭州", "浙江", 1.0, "沈佳怡", ("小鹿", "阿欣")),
    Store("cd-taikooli", "成都太古里店", "成都", "四川", 1.1, "何晓岚", ("糖糖", "小雅", "蓉蓉")),
    Store("gz-tianhe", "广州天河店", "广州", "广东", 0.9, "梁诗韵", ("阿敏", "小橙")),
    Store("bj-sanlitun", "北京三里屯店", "北京", "北京", 1.15, "赵静", ("思思", "小北", "然然")),
)


@dataclass(frozen=True)
class HeadOfficeStaff:
    key: str
    display_name: str
    role: str


# The owner's e-mail is the public DEMO_OWNER_EMAIL; the others follow the same domain.
HEAD_OFFICE: tuple[HeadOfficeStaff, ...] = (
    HeadOfficeStaff("owner", "林澜（品牌主理人）", "owner"),
    HeadOfficeStaff("admin", "陈静（私域负责人）", "admin"),
    HeadOfficeStaff("ops1", "苏苏（社群运营）", "operator"),
    HeadOfficeStaff("ops2", "阿May（社群运营）", "operator"),
    HeadOfficeStaff("analyst", "王磊（数据分析）", "analyst"),
)

# Customers outside the store cities: (city, province, store that serves them). Online
# buyers are handed to the store of their region, as brands with few stores do.
OTHER_CITIES: tuple[tuple[str, str, str, float], ...] = (
    ("苏州", "江苏", "sh-jingan", 1.0), ("南京", "江苏", "sh-jingan", 1.0), ("无锡", "江苏", "sh-jingan", 0.5),
    ("宁波", "浙江", "hz-hubin", 0.8), ("温州", "浙江", "hz-hubin", 0.5), ("合肥", "安徽", "hz-hubin", 0.5),
    ("重庆", "重庆", "cd-taikooli", 1.0), ("昆明", "云南", "cd-taikooli", 0.5), ("贵阳", "贵州", "cd-taikooli", 0.4),
    ("西安", "陕西", "cd-taikooli", 0.6),
    ("深圳", "广东", "gz-tianhe", 1.2), ("东莞", "广东", "gz-tianhe", 0.5), ("厦门", "福建", "gz-tianhe", 0.5),
    ("长沙", "湖南", "gz-tianhe", 0.6), ("南宁", "广西", "gz-tianhe", 0.3), ("武汉", "湖北", "hz-hubin", 0.8),
    ("天津", "天津", "bj-sanlitun", 0.8), ("青岛", "山东", "bj-sanlitun", 0.6), ("济南", "山东", "bj-sanlitun", 0.4),
    ("沈阳", "辽宁", "bj-sanlitun", 0.5), ("大连", "辽宁", "bj-sanlitun", 0.3), ("郑州", "河南", "bj-sanlitun", 0.5),
    ("石家庄", "河北", "bj-sanlitun", 0.3), ("哈尔滨", "黑龙江", "bj-sanlitun", 0.3),
)

# North/south by the Qinling–Huaihe line: north and south dress differently (DOMAIN.md).
NORTH_PROVINCES = ("北京", "天津", "河北", "山东", "河南", "山西", "陕西", "辽宁", "吉林", "黑龙江", "内蒙古", "甘肃", "宁夏", "青海", "新疆")
SOUTH_PROVINCES = (
    "上海", "江苏", "浙江", "安徽", "福建", "江西", "湖北", "湖南", "广东", "广西", "海南", "四川", "重庆", "贵州", "云南",
)


@dataclass(frozen=True)
class TagGroupSpec:
    name: str
    kind: str
    exclusive: bool
    tags: tuple[str, ...]


TAXONOMY: tuple[TagGroupSpec, ...] = (
    TagGroupSpec("性别", "identity", True, ("女", "男")),
    TagGroupSpec("年龄段", "identity", True, ("18-24", "25-30", "31-40", "41+")),
    TagGroupSpec("地区", "identity", True, ("南方", "北方")),
    TagGroupSpec("所属门店", "identity", True, tuple(s.name for s in STORES)),
    TagGroupSpec("尺码", "business", True, ("S", "M", "L", "XL")),
    TagGroupSpec("风格偏好", "business", False, ("通勤", "休闲", "法式", "国潮", "运动")),
    TagGroupSpec("消费力", "business", True, ("高", "中", "低")),
    TagGroupSpec("购买阶段", "business", False, ("意向", "首单", "复购", "VIP")),
    TagGroupSpec("活跃度", "business", True, ("活跃", "一般", "沉默")),
    TagGroupSpec("来源", "business", True, ("包裹卡", "门店海报", "直播", "小红书", "抖音", "异业合作", "导购推荐", "老客推荐")),
)


@dataclass(frozen=True)
class Source:
    key: str  # Contact.source_channel
    label: str  # 来源 tag
    local_weight: float  # customers living in a store city
    remote_weight: float  # customers elsewhere (reached online)
    scan: bool  # the contact arrived by scanning a live code (活码)


SOURCES: tuple[Source, ...] = (
    Source("parcel_card", "包裹卡", 14, 34, True),
    Source("store_poster", "门店海报", 22, 0, True),
    Source("live_stream", "直播", 8, 18, True),
    Source("xiaohongshu", "小红书", 9, 15, False),
    Source("douyin", "抖音", 5, 12, False),
    Source("partner_shop", "异业合作", 8, 2, True),
    Source("staff_referral", "导购推荐", 24, 3, False),
    Source("old_customer", "老客推荐", 10, 16, True),
)

@dataclass(frozen=True)
class RuleSpec:
    """An automatic tagging rule (自动打标签) the demo creates; the generator gives the same
    tags to the contacts that meet it, so the rule's first pass has nothing left to do."""

    key: str
    name: str
    tag: tuple[str, str]  # (tag group, tag)
    conditions: tuple[dict[str, object], ...]


ACTIVE_MESSAGES = 10
REPEAT_ORDERS = 2
RULES: tuple[RuleSpec, ...] = (
    RuleSpec("active", "近30天互动活跃", ("活跃度", "活跃"), ({"event": "message", "min_count": ACTIVE_MESSAGES, "within_days": 30},)),
    RuleSpec("repeat", "近90天复购", ("购买阶段", "复购"), ({"event": "order", "min_count": REPEAT_ORDERS, "within_days": 90},)),
    RuleSpec("south", "南方地区", ("地区", "南方"), ({"field": "region", "op": "in", "value": list(SOUTH_PROVINCES)},)),
    RuleSpec("north", "北方地区", ("地区", "北方"), ({"field": "region", "op": "in", "value": list(NORTH_PROVINCES)},)),
)

# Messages: a small set of lines of the kind a fashion brand's groups and 1:1 chats see.
CUSTOMER_LINES = (
    "这件有M码吗？", "今天的福利链接在哪里呀", "收到，谢谢～", "请问几号发货", "直播几点开始？", "这个颜色显白吗",
    "好看！", "已下单", "有没有优惠券", "160/50kg穿什么码", "能帮我留一件吗", "门店有现货吗", "👍", "哈哈哈哈",
    "求链接", "想要同款", "早上好", "打卡", "今天穿了上次买的风衣，被同事夸了", "面料会起球吗", "可以退换吗",
    "周末去店里试试", "有没有小个子穿搭推荐", "红包收到啦", "这个系列还会补货吗",
)
STAFF_LINES = (
    "亲，M码有货的哦～", "已经为您预留啦，到店报手机号就可以试穿", "这是今天的福利券，记得领取哦", "您好，您的订单已发货",
    "新品到店啦，周末来试试吗？", "您上次问的那款补货了", "根据您的身高体重，建议选M码", "生日快乐！送您一张专属券🎂",
)
AD_LINES = ("加V看低价货源，一件代发", "兼职日结300，私聊", "扫码领福利→")

# Price points of the catalogue (元); an order is one to three pieces, sometimes discounted.
PRICE_POINTS = (99, 129, 159, 199, 239, 269, 299, 329, 359, 399, 459, 529, 599, 699, 899)


def campaign_season(day: dt.date) -> str:
    """The name operators give the season's push around ``day`` (used for campaign
    codes and short-term group names)."""
    month = day.month
    if month == 6 or (month == 5 and day.day >= 20):
        return "618"
    if month == 11 or (month == 10 and day.day >= 20):
        return "双11"
    if month in (12, 1):
        return "年货节"
    if month in (2, 3, 4, 5):
        return "春夏上新"
    if month in (7, 8):
        return "夏末清仓"
    return "秋冬上新"


@dataclass(frozen=True)
class GroupSpec:
    """A group to create. ``audience`` names the generator's member filter; ``size`` is the
    number of members at 5,000 contacts (scaled down for smaller demos)."""

    key: str
    name: str
    group_type: str
    horizon: str
    audience: str
    size: int
    capacity: int
    created_days_ago: int
    owner: str  # staff key
    vision: str
    rights: str
    threshold: str = "none"
    threshold_detail: str = ""
    ends_in_days: int | None = None  # relative to the anchor; negative = already ended
    archived: bool = False
    liveliness: float = 1.0  # group messages per member per day, roughly ×0.15
    dying: bool = False  # activity decays to almost nothing over the window
    leave_rate: float = 0.08
    weekly_session: bool = False  # Saturday 20:00 sharing session / flash sale

    @property
    def rules_text(self) -> str:
        if self.group_type == "traffic":
            return _traffic_rules(self.name.removeprefix(BRAND_SHORT))
        return _CONVERSION_RULES if self.group_type == "conversion" else _ORG_RULES


def _traffic_rules(where: str) -> str:
    return (
        f"欢迎加入{BRAND_SHORT}{where}！\n"
        "1. 每天10:00、20:00发布福利和新品，群内专享价；\n"
        "2. 禁止发广告、链接、二维码、小程序和微信号，机器人自动监测，违者直接移出；\n"
        "3. 友善交流，不刷屏，不发与穿搭无关的内容；\n"
        "4. 售后问题请私聊导购，群内@管理员也可以。"
    )


_ORG_RULES = (
    "1. 本群为会员交流群，不发任何广告和外链；\n"
    "2. 每周六20:00穿搭分享会，欢迎提前投稿话题；\n"
    "3. 新朋友进群请做个自我介绍（城市+身高+喜欢的风格）；\n"
    "4. 尊重每一位群友，违规者管理员有权移出。"
)
_CONVERSION_RULES = (
    "1. 本群为限时活动群，活动结束后解散；\n"
    "2. 活动规则和链接以群公告为准，请勿相信私聊发来的链接；\n"
    "3. 下单后截图发群里，导购为您登记赠品；\n"
    "4. 禁止广告，违者移出。"
)


def group_specs(today: dt.date) -> list[GroupSpec]:
    """The demo's groups: every type (traffic / conversion / organisational) and both
    horizons, store groups per store, some lively, some full, some dying, one dissolved."""
    season = campaign_season(today)
    past_peak, past_peak_day = last_sale_peak(today - dt.timedelta(days=40))
    past_peak_age = (today - past_peak_day).days
    specs: list[GroupSpec] = []
    store_groups = (
        ("sh-jingan", "上海静安", 1, 200, 200, 210, 1.3, False, 0.0),
        ("sh-jingan", "上海静安", 2, 200, 150, 120, 0.9, False, 0.06),
        ("hz-hubin", "杭州湖滨", 1, 200, 170, 240, 0.8, False, 0.08),
        ("cd-taikooli", "成都太古里", 1, 300, 260, 260, 1.4, False, 0.06),
        ("cd-taikooli", "成都太古里", 2, 200, 120, 75, 0.6, True, 0.8),
        ("gz-tianhe", "广州天河", 1, 200, 140, 200, 0.7, False, 0.1),
        ("bj-sanlitun", "北京三里屯", 1, 200, 185, 230, 1.0, False, 0.08),
    )
    for store_key, place, number, capacity, size, age, lively, dying, leave in store_groups:
        store = next(s for s in STORES if s.key == store_key)
        specs.append(
            GroupSpec(
                key=f"{store_key}-{number}", name=f"{BRAND_SHORT}{place}福利{number}群", group_type="traffic",
                horizon="long_term", audience=f"store:{store_key}", size=size, capacity=capacity, created_days_ago=age,
                owner=f"{store_key}.manager", liveliness=lively, dying=dying, leave_rate=leave,
                vision=f"{store.name}老朋友的福利站：新品早知道，福利不错过",
                rights="每日福利价；新品到店第一时间通知；到店试穿预约；生日月专属券",
            )
        )
    online = (
        (1, 500, 470, 300, 1.2, False, 0.05), (2, 500, 320, 150, 0.8, False, 0.08), (3, 500, 200, 90, 0.5, True, 0.7),
    )
    for number, capacity, size, age, lively, dying, leave in online:
        specs.append(
            GroupSpec(
                key=f"online-{number}", name=f"{BRAND_SHORT}线上福利{number}群", group_type="traffic", horizon="long_term",
                audience="online", size=size, capacity=capacity, created_days_ago=age, owner="ops1" if number != 2 else "ops2",
                liveliness=lively, dying=dying, leave_rate=leave,
                vision="包裹卡和直播间的朋友们的福利群", rights="每日秒杀链接；直播预告；晒单返现；专属客服",
            )
        )
    specs += [
        GroupSpec(
            key="live", name=f"{BRAND_SHORT}直播专属福利群·第12期", group_type="traffic", horizon="short_term", audience="live",
            size=280, capacity=500, created_days_ago=6, ends_in_days=2, owner="ops2", liveliness=1.6, leave_rate=0.05,
            vision="本期直播间专属福利，直播结束后3天解散", rights="直播间专属券；抽奖；主播答疑",
            threshold="action", threshold_detail="直播间下单或关注直播间",
        ),
        GroupSpec(
            key="newcomer", name="新客7天首单转化群", group_type="conversion", horizon="short_term", audience="newcomer",
            size=90, capacity=200, created_days_ago=9, ends_in_days=3, owner="ops1", liveliness=1.1, leave_rate=0.1,
            vision="7天内带你找到第一件心动单品", rights="新客首单立减30元；尺码顾问1对1；7天无理由",
        ),
        GroupSpec(
            key="trial", name=f"{season}新品试穿转化群", group_type="conversion", horizon="short_term", audience="trial",
            size=130, capacity=200, created_days_ago=21, ends_in_days=9, owner="ops2", liveliness=1.0, leave_rate=0.12,
            vision=f"{season}新品抢先试穿，穿着满意再下单", rights="到店试穿送小礼物；试穿反馈返券",
            threshold="action", threshold_detail="预约到店试穿",
        ),
        GroupSpec(
            key="flash", name="周六20点限时抢购群", group_type="conversion", horizon="short_term", audience="flash",
            size=250, capacity=300, created_days_ago=26, ends_in_days=5, owner="ops1", liveliness=0.9, leave_rate=0.06,
            weekly_session=True, vision="每周六晚8点，两小时限时抢购", rights="周六20:00-22:00专享价；红包雨预告；下单赠品",
        ),
        GroupSpec(
            key="past-peak", name=f"{past_peak}抢购临时群", group_type="conversion", horizon="short_term", audience="buyers",
            size=300, capacity=500, created_days_ago=past_peak_age + 10, ends_in_days=-(past_peak_age - 2), archived=True, owner="ops1",
            liveliness=0.0, leave_rate=0.0, vision=f"{past_peak}大促专属临时群，活动结束即解散", rights="大促叠券攻略；定金膨胀提醒；赠品登记",
        ),
        GroupSpec(
            key="recall", name="老朋友回归福利群", group_type="conversion", horizon="short_term", audience="recall",
            size=70, capacity=200, created_days_ago=14, ends_in_days=16, owner="admin", liveliness=0.6, leave_rate=0.2,
            vision="好久不见，回来看看新款", rights="回归专享券（满299减60）；老客专属折扣",
        ),
        GroupSpec(
            key="xhs", name="小红书种草转化群", group_type="conversion", horizon="short_term", audience="xhs",
            size=95, capacity=200, created_days_ago=18, ends_in_days=12, owner="ops2", liveliness=1.0, leave_rate=0.1,
            vision="小红书同款，群里下单更划算", rights="笔记同款专享价；晒单返现",
            threshold="action", threshold_detail="关注衣澜小红书账号",
        ),
        GroupSpec(
            key="vip", name=f"{BRAND_SHORT}VIP会员俱乐部", group_type="organisational", horizon="long_term", audience="vip",
            size=280, capacity=500, created_days_ago=330, owner="admin", liveliness=0.9, leave_rate=0.02,
            vision="陪伴衣澜最重要的朋友", rights="VIP专属客服；新品内购；生日礼；线下穿搭沙龙",
            threshold="identity", threshold_detail="VIP会员（近12个月消费满3000元）",
        ),
        GroupSpec(
            key="paid", name=f"{BRAND_SHORT}付费会员群", group_type="organisational", horizon="long_term", audience="paid",
            size=150, capacity=300, created_days_ago=200, owner="admin", liveliness=0.7, leave_rate=0.04,
            vision="会员卡一年，省回会费还有多", rights="全年9折；每月免邮券；会员日双倍积分",
            threshold="price", threshold_detail="付费会员卡 ¥99/年",
        ),
        GroupSpec(
            key="french", name="法式穿搭研习社", group_type="organisational", horizon="long_term", audience="style:法式",
            size=120, capacity=200, created_days_ago=160, owner="ops2", liveliness=1.2, leave_rate=0.05, weekly_session=True,
            vision="一起把法式穿出自己的样子", rights="每周六20:00穿搭分享会；搭配会诊；优秀作业送单品",
            threshold="action", threshold_detail="提交一套自己的法式穿搭照片",
        ),
        GroupSpec(
            key="tester", name=f"{BRAND_SHORT}穿搭体验官", group_type="organisational", horizon="long_term", audience="active",
            size=45, capacity=200, created_days_ago=100, owner="ops1", liveliness=1.5, leave_rate=0.03,
            vision="新品先穿，你的意见决定上不上架", rights="新品免费试穿；体验官证书；年度礼盒",
            threshold="action", threshold_detail="填写体验官申请表并通过审核",
        ),
        GroupSpec(
            key="sh-club", name="上海静安老客会", group_type="organisational", horizon="long_term", audience="store-vip:sh-jingan",
            size=90, capacity=200, created_days_ago=180, owner="sh-jingan.manager", liveliness=0.8,
            leave_rate=0.03, vision="静安店的老朋友们", rights="店长专属预约；老客下午茶；新品预留",
            threshold="identity", threshold_detail="在上海静安店累计消费满2000元",
        ),
        GroupSpec(
            key="commute", name="21天通勤穿搭打卡营", group_type="organisational", horizon="short_term", audience="style:通勤",
            size=100, capacity=200, created_days_ago=12, ends_in_days=9, owner="ops2", liveliness=1.3, leave_rate=0.15,
            vision="21天，每天一套通勤look", rights="每日穿搭点评；打卡满21天送丝巾",
            threshold="action", threshold_detail="每天晚上9点前打卡",
        ),
    ]
    return specs


def last_sale_peak(day: dt.date) -> tuple[str, dt.date]:
    """The most recent of the two big sales (618, 双11) on or before ``day``."""
    peaks = []
    for name, month, mday in (("618", 6, 18), ("双11", 11, 11)):
        date = dt.date(day.year, month, mday)
        peaks.append((name, date if date <= day else date.replace(year=day.year - 1)))
    return max(peaks, key=lambda p: p[1])
