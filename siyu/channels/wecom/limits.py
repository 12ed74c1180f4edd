"""WeCom platform limits, as data (平台限制).

Every number here is taken from the WeCom server API documentation (page names in each
entry's ``source``). The numbers can change: code reads them from here, never from a
literal of its own, so updating one place updates the client's validation, the rate
limiter and what the console/docs show.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["API_RATE_LIMITS", "DEFAULT_RATE_LIMIT", "LIMITS", "Limit", "RateLimit", "limit", "rate_limit_for"]


@dataclass(frozen=True)
class Limit:
    key: str
    value: int
    unit: str
    description: str
    source: str


@dataclass(frozen=True)
class RateLimit:
    """At most ``calls`` calls per ``per_seconds`` for one corp and one API path."""

    calls: int
    per_seconds: float
    source: str


_LIMITS = [
    # 「回调配置」/「接收消息与事件」
    Limit(
        "callback.reply_seconds",
        5,
        "s",
        "answer a callback within 5 s, else WeCom drops the connection and retries",
        "接收消息与事件 / 回调配置",
    ),
    Limit(
        "callback.retries",
        3,
        "times",
        "a callback that was not answered in time is retried up to three times",
        "接收消息与事件 / 回调配置",
    ),
    Limit("callback.verify_reply_seconds", 1, "s", "URL verification (GET) must be answered within 1 s", "回调配置"),
    # 「获取access_token」
    Limit("token.expires_in", 7200, "s", "access_token lifetime (the response's expires_in, normally 7200)", "获取access_token"),
    # 「发送新客户欢迎语」
    Limit("welcome.code_ttl_seconds", 20, "s", "a welcome_code is usable within 20 s of the add event, once", "发送新客户欢迎语"),
    Limit(
        "message.text_max_bytes", 4000, "bytes", "text.content of a welcome or mass message", "发送新客户欢迎语 / 创建企业群发"
    ),
    Limit("message.attachments_max", 9, "items", "attachments of a welcome or mass message", "发送新客户欢迎语 / 创建企业群发"),
    # 「客户联系「联系我」管理」 and 「客户群「加入群聊」管理」
    Limit(
        "contact_way.quota",
        500_000,
        "configs",
        "「联系我」 plus 「加入群聊」 configurations made through the API, per corp (shared)",
        "客户联系「联系我」管理 / 客户群「加入群聊」管理",
    ),
    Limit(
        "contact_way.state_max_chars",
        30,
        "chars",
        "the state parameter of a 「联系我」 or join way",
        "客户联系「联系我」管理 / 客户群「加入群聊」管理",
    ),
    Limit("contact_way.remark_max_chars", 30, "chars", "the remark of a 「联系我」 or join way", "客户联系「联系我」管理"),
    Limit("contact_way.users_max", 100, "users", "members of one multi-person 「联系我」", "客户联系「联系我」管理"),
    Limit(
        "contact_way.temp_expires_max_seconds",
        14 * 86400,
        "s",
        "expires_in / chat_expires_in of a temporary session",
        "客户联系「联系我」管理",
    ),
    Limit("join_way.chats_max", 5, "groups", "chat_id_list of one 「加入群聊」 join way", "客户群「加入群聊」管理"),
    # 「获取客户群列表」
    Limit("groupchat.list_limit_max", 1000, "items", "limit of one groupchat/list page (1..1000)", "获取客户群列表"),
    Limit("groupchat.owner_filter_max", 100, "users", "owner_filter.userid_list of groupchat/list", "获取客户群列表"),
    # 「创建企业群发」 and 「提醒成员群发」 (see also DOMAIN.md "Platform rules")
    Limit("mass.external_userids_max", 10_000, "customers", "external_userid list of one add_msg_template", "创建企业群发"),
    Limit(
        "mass.per_customer_per_month",
        31,
        "messages",
        "each customer/group receives at most as many mass messages per month as the month has days "
        "(admins may set 7 per week or 1 per day instead); 31 is the upper bound",
        "创建企业群发",
    ),
    Limit("mass.reminders_per_24h", 3, "reminders", "remind_groupmsg_send for one msgid, per 24 hours", "提醒成员群发"),
    Limit(
        "mass.results_limit_max",
        1000,
        "items",
        "limit of get_groupmsg_task / get_groupmsg_send_result",
        "获取群发成员发送任务列表 / 获取企业群发成员执行结果",
    ),
    # 「分配在职成员的客户」 and 「分配离职成员的客户」
    Limit(
        "transfer.customers_per_call",
        100,
        "customers",
        "external_userid list of one transfer_customer call",
        "分配在职成员的客户 / 分配离职成员的客户",
    ),
    Limit(
        "transfer.onjob_per_customer_90_days",
        2,
        "transfers",
        "in-service transfers of one customer within 90 days",
        "分配在职成员的客户",
    ),
    Limit(
        "transfer.confirm_hours", 24, "h", "a customer may refuse an in-service transfer within 24 hours", "分配在职成员的客户"
    ),
    # 「管理企业标签」
    Limit("tags.name_max_chars", 30, "chars", "name of a corp tag or tag group", "管理企业标签"),
    Limit("tags.corp_max", 10_000, "tags", "corp tags plus strategy tags, per corp", "管理企业标签"),
    # 「访问频率限制」
    Limit("api.per_corp_per_minute", 10_000, "calls", "calls of one API by one corp per minute", "访问频率限制"),
    Limit("api.per_corp_per_hour", 150_000, "calls", "calls of one API by one corp per hour", "访问频率限制"),
    Limit(
        "api.block_after_minute_limit_seconds", 60, "s", "a corp over its per-minute limit is blocked for 60 s", "访问频率限制"
    ),
]

LIMITS: dict[str, Limit] = {item.key: item for item in _LIMITS}


def limit(key: str) -> int:
    """The value of one documented limit (KeyError for an unknown key: a typo must fail)."""
    return LIMITS[key].value


#: The client-side limiter's budget per API path. The documentation states one general
#: per-corp, per-API budget (「访问频率限制」); no customer-contact API documents a
#: stricter per-minute number, so every path gets the general one unless listed here.
DEFAULT_RATE_LIMIT = RateLimit(calls=limit("api.per_corp_per_minute"), per_seconds=60.0, source="访问频率限制")
API_RATE_LIMITS: dict[str, RateLimit] = {}


def rate_limit_for(path: str) -> RateLimit:
    return API_RATE_LIMITS.get(path, DEFAULT_RATE_LIMIT)
