"""The WeCom server API client (httpx), for the customer-contact (客户联系) APIs siyu uses.

- **Transport is pluggable** (``transport=``): production uses httpx's default; tests use
  ``httpx.MockTransport`` or the loopback fake in :mod:`siyu.channels.wecom.testing`.
- **access_token** is cached in Django's cache framework until ``expires_in`` minus a
  margin. WeCom answers the same token to every ``gettoken`` within its validity, so a
  per-process cache (the default LocMem) is correct, merely one fetch per process; with a
  shared cache (Redis) all processes share one. The key is a hash of corp id + secret +
  API base, never the secret itself. 40014/42001 (token invalid/expired) drop the cached
  token, fetch a new one and retry once.
- **Retries** with exponential backoff on -1 (system busy), 45009/45033 (rate limits) and
  network errors — except that a non-idempotent call (creating a mass-message task) is not
  re-sent after a failure that may have reached WeCom: the caller gets
  ``WeComNetworkError(maybe_delivered=True)`` and decides.
- **Rate limiter**: a per-corp, per-API token bucket using the budgets in
  :mod:`siyu.channels.wecom.limits` (in-process; the platform remains the authority and
  its 45009 is retried).
- Requests are validated against the documented limits *before* anything is sent, so a
  31-character ``state`` or a 6-group join way fails with a clear ``ValidationFailed``.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import httpx

from siyu.channels.wecom.limits import RateLimit, limit, rate_limit_for
from siyu.core.errors import ValidationFailed

__all__ = [
    "DEFAULT_API_BASE",
    "RATE_LIMIT_ERRORS",
    "TOKEN_ERRORS",
    "TRANSIENT_ERRORS",
    "DjangoCacheTokenStore",
    "RateLimiter",
    "TokenStore",
    "WeComApiError",
    "WeComClient",
    "WeComNetworkError",
]

log = logging.getLogger(__name__)


class RedactCredentials(logging.Filter):
    """httpx logs every request URL at INFO, and WeCom puts the app secret (gettoken) and
    the access_token in the query string: both are masked before any handler sees them."""

    _secret = re.compile(r"(access_token|corpsecret)=[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "access_token=" in message or "corpsecret=" in message:
            record.msg, record.args = self._secret.sub(r"\1=***", message), None
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, RedactCredentials) for f in _httpx_log.filters):
    _httpx_log.addFilter(RedactCredentials())

DEFAULT_API_BASE = "https://qyapi.weixin.qq.com/cgi-bin"
TOKEN_ERRORS = frozenset({40014, 42001})  # invalid / expired access_token
RATE_LIMIT_ERRORS = frozenset({45009, 45033})  # API frequency / concurrency limit
TRANSIENT_ERRORS = frozenset({-1}) | RATE_LIMIT_ERRORS
TOKEN_MARGIN_SECONDS = 300


class WeComApiError(Exception):
    """WeCom answered a non-zero ``errcode``."""

    def __init__(self, errcode: int, errmsg: str, path: str) -> None:
        super().__init__(f"{path}: errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.path = path

    @property
    def transient(self) -> bool:
        return self.errcode in TRANSIENT_ERRORS or self.errcode in TOKEN_ERRORS


class WeComNetworkError(Exception):
    """WeCom could not be reached or answered garbage. ``maybe_delivered`` is true when the
    request may have been processed (the connection broke after sending)."""

    def __init__(self, message: str, path: str, *, maybe_delivered: bool) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.maybe_delivered = maybe_delivered


class TokenStore(Protocol):
    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl: float) -> None: ...
    def delete(self, key: str) -> None: ...


class DjangoCacheTokenStore:
    """access_tokens in Django's default cache (LocMem per process unless configured)."""

    def get(self, key: str) -> str | None:
        from django.core.cache import cache

        value = cache.get(key)
        return value if isinstance(value, str) else None

    def set(self, key: str, value: str, ttl: float) -> None:
        from django.core.cache import cache

        cache.set(key, value, timeout=max(1, int(ttl)))

    def delete(self, key: str) -> None:
        from django.core.cache import cache

        cache.delete(key)


class RateLimiter:
    """Token buckets keyed by (corp, API path). ``acquire`` waits until a call is allowed
    and returns how long it waited. Clock and sleep are injectable for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: tuple[str, str], rate: RateLimit) -> float:
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                tokens, last = self._buckets.get(key, (float(rate.calls), now))
                tokens = min(float(rate.calls), tokens + (now - last) * rate.calls / rate.per_seconds)
                if tokens >= 1.0:
                    self._buckets[key] = (tokens - 1.0, now)
                    return waited
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) * rate.per_seconds / rate.calls
            self._sleep(wait)
            waited += wait


_SHARED_LIMITER = RateLimiter()


def _compact(**fields: Any) -> dict[str, Any]:
    """The request body without the parameters the caller left out (WeCom treats a sent
    empty value differently from an absent one in several update APIs)."""
    return {key: value for key, value in fields.items() if value is not None}


def _check_state(state: str | None) -> None:
    if state is not None and len(state) > limit("contact_way.state_max_chars"):
        raise ValidationFailed(
            f"state may have at most {limit('contact_way.state_max_chars')} characters, got {len(state)}",
            code="wecom_state_too_long",
        )


def _check_remark(remark: str | None) -> None:
    if remark is not None and len(remark) > limit("contact_way.remark_max_chars"):
        raise ValidationFailed(
            f"remark may have at most {limit('contact_way.remark_max_chars')} characters", code="wecom_remark_too_long"
        )


def _check_chats(chat_ids: Sequence[str]) -> None:
    if not chat_ids:
        raise ValidationFailed("a join way needs at least one group (chat_id_list)", code="wecom_join_way_empty")
    if len(chat_ids) > limit("join_way.chats_max"):
        raise ValidationFailed(
            f"a join way holds at most {limit('join_way.chats_max')} groups, got {len(chat_ids)}",
            code="wecom_join_way_too_many_chats",
        )


def _check_message(text: str, attachments: Sequence[Mapping[str, Any]]) -> None:
    if not text and not attachments:
        raise ValidationFailed("a message needs text or attachments", code="wecom_empty_message")
    if len(text.encode("utf-8")) > limit("message.text_max_bytes"):
        raise ValidationFailed(f"text may have at most {limit('message.text_max_bytes')} bytes", code="wecom_text_too_long")
    if len(attachments) > limit("message.attachments_max"):
        raise ValidationFailed(f"at most {limit('message.attachments_max')} attachments", code="wecom_too_many_attachments")


def _check_transfer(external_userids: Sequence[str]) -> None:
    if not external_userids:
        raise ValidationFailed("no customers to transfer", code="wecom_transfer_empty")
    if len(external_userids) > limit("transfer.customers_per_call"):
        raise ValidationFailed(
            f"one transfer moves at most {limit('transfer.customers_per_call')} customers", code="wecom_transfer_too_many"
        )


class WeComClient:
    """One self-built app's API client (corp id + app secret)."""

    def __init__(
        self,
        corp_id: str,
        secret: str,
        *,
        transport: httpx.BaseTransport | None = None,
        api_base: str = DEFAULT_API_BASE,
        token_store: TokenStore | None = None,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 2,
        backoff_seconds: float = 0.5,
        timeout: float = 10.0,
    ) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self.api_base = api_base.rstrip("/")
        self._http = httpx.Client(transport=transport, timeout=timeout)
        self._tokens: TokenStore = token_store or DjangoCacheTokenStore()
        self._limiter = limiter or _SHARED_LIMITER
        self._sleep = sleep
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self._token_key = "siyu:wecom:token:" + hashlib.sha256(f"{self.api_base}|{corp_id}|{secret}".encode()).hexdigest()

    def __enter__(self) -> WeComClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ transport

    def _backoff(self, attempt: int) -> None:
        self._sleep(self.backoff_seconds * (2 ** (attempt - 1)))

    def _send(self, method: str, path: str, params: Mapping[str, Any], body: Any) -> dict[str, Any]:
        """One HTTP exchange; network and decoding failures become WeComNetworkError."""
        started = time.monotonic()
        try:
            response = self._http.request(method, self.api_base + path, params=dict(params), json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise WeComNetworkError(f"cannot connect: {exc}", path, maybe_delivered=False) from exc
        except httpx.TransportError as exc:
            raise WeComNetworkError(f"{type(exc).__name__}: {exc}", path, maybe_delivered=True) from exc
        if response.status_code >= 500:
            raise WeComNetworkError(f"HTTP {response.status_code}", path, maybe_delivered=True)
        try:
            data = response.json()
        except ValueError as exc:
            raise WeComNetworkError(f"HTTP {response.status_code} with a non-JSON body", path, maybe_delivered=True) from exc
        if not isinstance(data, dict):
            raise WeComNetworkError("JSON body is not an object", path, maybe_delivered=True)
        log.debug("wecom %s %s -> errcode=%s (%.3fs)", method, path, data.get("errcode", 0), time.monotonic() - started)
        return data

    def get_token(self, *, force_refresh: bool = False) -> str:
        """The app's access_token, from the cache unless expired or ``force_refresh``."""
        if not force_refresh:
            cached = self._tokens.get(self._token_key)
            if cached:
                return cached
        data = self._send("GET", "/gettoken", {"corpid": self.corp_id, "corpsecret": self._secret}, None)
        errcode = int(data.get("errcode", 0))
        if errcode != 0:
            raise WeComApiError(errcode, str(data.get("errmsg", "")), "/gettoken")
        token = str(data["access_token"])
        expires_in = float(data.get("expires_in", limit("token.expires_in")))
        ttl = expires_in - TOKEN_MARGIN_SECONDS if expires_in > 2 * TOKEN_MARGIN_SECONDS else expires_in / 2
        self._tokens.set(self._token_key, token, ttl)
        return token

    def call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None, idempotent: bool = True
    ) -> dict[str, Any]:
        """Call one API (``path`` relative to the API base, e.g. ``/externalcontact/list``)
        and return the decoded body of a successful (errcode 0) answer."""
        attempt = 0
        refreshed = False
        while True:
            self._limiter.acquire((self.corp_id, path), rate_limit_for(path))
            try:
                token = self.get_token()
                data = self._send(method, path, {**(params or {}), "access_token": token}, body)
            except WeComNetworkError as exc:
                if attempt < self.max_retries and (idempotent or not exc.maybe_delivered):
                    attempt += 1
                    self._backoff(attempt)
                    continue
                raise
            errcode = int(data.get("errcode", 0))
            if errcode == 0:
                return data
            errmsg = str(data.get("errmsg", ""))
            if errcode in TOKEN_ERRORS and not refreshed:
                log.info("wecom %s: access_token rejected (%s), refreshing", path, errcode)
                self._tokens.delete(self._token_key)
                refreshed = True
                continue
            if errcode in TRANSIENT_ERRORS and attempt < self.max_retries:
                attempt += 1
                log.info("wecom %s: errcode %s, retry %s", path, errcode, attempt)
                self._backoff(attempt)
                continue
            raise WeComApiError(errcode, errmsg, path)

    # ------------------------------------------------------------ corp tags (客户标签)

    def get_corp_tag_list(self, *, tag_ids: Iterable[str] = (), group_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
        """All corp tag groups with their tags (filtered by ids when given)."""
        body = _compact(tag_id=list(tag_ids) or None, group_id=list(group_ids) or None)
        return list(self.call("POST", "/externalcontact/get_corp_tag_list", body=body).get("tag_group", []))

    def add_corp_tag(
        self,
        *,
        tags: Sequence[Mapping[str, Any]],
        group_id: str | None = None,
        group_name: str | None = None,
        order: int | None = None,
        agentid: int | None = None,
    ) -> dict[str, Any]:
        """Add tags to a group (by id) or to a new/existing group (by name); returns the tag_group."""
        if not tags:
            raise ValidationFailed("add_corp_tag needs at least one tag (WeCom has no empty tag groups)", code="wecom_no_tags")
        for name in [group_name or "", *(str(t.get("name", "")) for t in tags)]:
            if len(name) > limit("tags.name_max_chars"):
                raise ValidationFailed(
                    f"tag names have at most {limit('tags.name_max_chars')} characters: {name!r}", code="wecom_tag_name_too_long"
                )
        body = _compact(group_id=group_id, group_name=group_name, order=order, tag=[dict(t) for t in tags], agentid=agentid)
        return dict(self.call("POST", "/externalcontact/add_corp_tag", body=body, idempotent=False)["tag_group"])

    def edit_corp_tag(
        self, tag_or_group_id: str, *, name: str | None = None, order: int | None = None, agentid: int | None = None
    ) -> None:
        if name is not None and len(name) > limit("tags.name_max_chars"):
            raise ValidationFailed(
                f"tag names have at most {limit('tags.name_max_chars')} characters", code="wecom_tag_name_too_long"
            )
        self.call(
            "POST", "/externalcontact/edit_corp_tag", body=_compact(id=tag_or_group_id, name=name, order=order, agentid=agentid)
        )

    def del_corp_tag(self, *, tag_ids: Iterable[str] = (), group_ids: Iterable[str] = (), agentid: int | None = None) -> None:
        body = _compact(tag_id=list(tag_ids) or None, group_id=list(group_ids) or None, agentid=agentid)
        if "tag_id" not in body and "group_id" not in body:
            raise ValidationFailed("del_corp_tag needs tag ids or group ids", code="wecom_nothing_to_delete")
        self.call("POST", "/externalcontact/del_corp_tag", body=body)

    def mark_tag(self, userid: str, external_userid: str, *, add_tag: Iterable[str] = (), remove_tag: Iterable[str] = ()) -> None:
        """Set/unset corp tags on one customer as seen by one staff member (打标签)."""
        add, remove = list(add_tag), list(remove_tag)
        if not add and not remove:
            raise ValidationFailed("mark_tag needs tags to add or remove", code="wecom_nothing_to_mark")
        body = _compact(userid=userid, external_userid=external_userid, add_tag=add or None, remove_tag=remove or None)
        self.call("POST", "/externalcontact/mark_tag", body=body)

    # ------------------------------------------------------------ external contacts (客户)

    def list_external_contacts(self, userid: str) -> list[str]:
        """external_userids of one staff member's customers."""
        return list(self.call("GET", "/externalcontact/list", params={"userid": userid}).get("external_userid", []))

    def get_external_contact(self, external_userid: str, *, cursor: str = "") -> dict[str, Any]:
        """One customer with the staff who follow them (``next_cursor`` pages past 500)."""
        params = {"external_userid": external_userid, **({"cursor": cursor} if cursor else {})}
        return self.call("GET", "/externalcontact/get", params=params)

    # ------------------------------------------------------------ 「联系我」 contact ways

    def add_contact_way(
        self,
        *,
        type: int,
        scene: int,
        state: str | None = None,
        user: Sequence[str] = (),
        party: Sequence[int] = (),
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
        is_temp: bool | None = None,
        expires_in: int | None = None,
        chat_expires_in: int | None = None,
        unionid: str | None = None,
        conclusions: Mapping[str, Any] | None = None,
        is_exclusive: bool | None = None,
    ) -> dict[str, str]:
        """Create a 「联系我」 live code; ``state`` (≤ 30 chars) comes back on the add event.
        Returns ``{"config_id", "qr_code"}`` — keep the config_id: WeCom does not show
        API-made codes in its admin console."""
        _check_state(state)
        _check_remark(remark)
        if not user and not party:
            raise ValidationFailed("a contact way needs staff (user) or departments (party)", code="wecom_contact_way_no_staff")
        if len(user) > limit("contact_way.users_max"):
            raise ValidationFailed(
                f"a contact way has at most {limit('contact_way.users_max')} staff", code="wecom_contact_way_too_many_users"
            )
        body = _compact(
            type=type,
            scene=scene,
            style=style,
            remark=remark,
            skip_verify=skip_verify,
            state=state,
            user=list(user) or None,
            party=list(party) or None,
            is_temp=is_temp,
            expires_in=expires_in,
            chat_expires_in=chat_expires_in,
            unionid=unionid,
            conclusions=dict(conclusions) if conclusions is not None else None,
            is_exclusive=is_exclusive,
        )
        data = self.call("POST", "/externalcontact/add_contact_way", body=body, idempotent=False)
        return {"config_id": str(data["config_id"]), "qr_code": str(data.get("qr_code", ""))}

    def update_contact_way(
        self,
        config_id: str,
        *,
        remark: str | None = None,
        skip_verify: bool | None = None,
        style: int | None = None,
        state: str | None = None,
        user: Sequence[str] | None = None,
        party: Sequence[int] | None = None,
        expires_in: int | None = None,
        chat_expires_in: int | None = None,
        unionid: str | None = None,
        conclusions: Mapping[str, Any] | None = None,
    ) -> None:
        """Change a 「联系我」. Lists given here replace WeCom's (override, not merge)."""
        _check_state(state)
        _check_remark(remark)
        body = _compact(
            config_id=config_id,
            remark=remark,
            skip_verify=skip_verify,
            style=style,
            state=state,
            user=list(user) if user is not None else None,
            party=list(party) if party is not None else None,
            expires_in=expires_in,
            chat_expires_in=chat_expires_in,
            unionid=unionid,
            conclusions=dict(conclusions) if conclusions is not None else None,
        )
        self.call("POST", "/externalcontact/update_contact_way", body=body)

    def del_contact_way(self, config_id: str) -> None:
        self.call("POST", "/externalcontact/del_contact_way", body={"config_id": config_id})

    # ------------------------------------------------------------ 「加入群聊」 join ways

    def add_join_way(
        self,
        *,
        scene: int,
        chat_id_list: Sequence[str],
        state: str | None = None,
        remark: str | None = None,
        auto_create_room: int | None = None,
        room_base_name: str | None = None,
        room_base_id: int | None = None,
    ) -> str:
        """Create a group join code over at most 5 groups; returns its config_id."""
        _check_chats(chat_id_list)
        _check_state(state)
        _check_remark(remark)
        body = _compact(
            scene=scene,
            remark=remark,
            auto_create_room=auto_create_room,
            room_base_name=room_base_name,
            room_base_id=room_base_id,
            chat_id_list=list(chat_id_list),
            state=state,
        )
        return str(self.call("POST", "/externalcontact/groupchat/add_join_way", body=body, idempotent=False)["config_id"])

    def update_join_way(
        self,
        config_id: str,
        *,
        scene: int,
        chat_id_list: Sequence[str],
        state: str | None = None,
        remark: str | None = None,
        auto_create_room: int | None = None,
        room_base_name: str | None = None,
        room_base_id: int | None = None,
    ) -> None:
        _check_chats(chat_id_list)
        _check_state(state)
        _check_remark(remark)
        body = _compact(
            config_id=config_id,
            scene=scene,
            remark=remark,
            auto_create_room=auto_create_room,
            room_base_name=room_base_name,
            room_base_id=room_base_id,
            chat_id_list=list(chat_id_list),
            state=state,
        )
        self.call("POST", "/externalcontact/groupchat/update_join_way", body=body)

    # ------------------------------------------------------------ customer groups (客户群)

    def list_groupchats(
        self, *, status_filter: int = 0, owner_userids: Sequence[str] = (), cursor: str = "", limit_: int = 100
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of customer groups: (``[{"chat_id", "status"}]``, next_cursor)."""
        if not 1 <= limit_ <= limit("groupchat.list_limit_max"):
            raise ValidationFailed(f"limit must be 1..{limit('groupchat.list_limit_max')}", code="wecom_invalid_limit")
        if len(owner_userids) > limit("groupchat.owner_filter_max"):
            raise ValidationFailed(
                f"at most {limit('groupchat.owner_filter_max')} owners per filter", code="wecom_too_many_owners"
            )
        body = _compact(
            status_filter=status_filter,
            owner_filter={"userid_list": list(owner_userids)} if owner_userids else None,
            cursor=cursor or None,
            limit=limit_,
        )
        data = self.call("POST", "/externalcontact/groupchat/list", body=body)
        return list(data.get("group_chat_list", [])), str(data.get("next_cursor", ""))

    def get_groupchat(self, chat_id: str, *, need_name: bool = True) -> dict[str, Any]:
        """One customer group with its member list (``member_list``: type 1 staff, 2 customers)."""
        data = self.call("POST", "/externalcontact/groupchat/get", body={"chat_id": chat_id, "need_name": 1 if need_name else 0})
        return dict(data["group_chat"])

    # ------------------------------------------------------------ messages to customers

    def send_welcome_msg(self, welcome_code: str, *, text: str = "", attachments: Sequence[Mapping[str, Any]] = ()) -> None:
        """The welcome message (欢迎语) for a just-added customer; the code works for 20 s, once."""
        _check_message(text, attachments)
        body = _compact(
            welcome_code=welcome_code,
            text={"content": text} if text else None,
            attachments=[dict(a) for a in attachments] or None,
        )
        self.call("POST", "/externalcontact/send_welcome_msg", body=body)

    def add_msg_template(
        self,
        *,
        chat_type: str = "single",
        external_userids: Sequence[str] = (),
        sender: str | None = None,
        text: str = "",
        attachments: Sequence[Mapping[str, Any]] = (),
        allow_select: bool | None = None,
    ) -> dict[str, Any]:
        """Create a mass-message task (企业群发) that the sender must confirm in WeCom.
        Returns ``{"msgid", "fail_list"}``. Not idempotent at WeCom: never blindly re-sent."""
        if chat_type not in ("single", "group"):
            raise ValidationFailed("chat_type must be single or group", code="wecom_invalid_chat_type")
        if chat_type == "single" and not external_userids and not sender:
            raise ValidationFailed("a single-chat mass message needs customers or a sender", code="wecom_mass_no_target")
        if chat_type == "group" and not sender:
            raise ValidationFailed("a group mass message needs a sender", code="wecom_mass_no_sender")
        if len(external_userids) > limit("mass.external_userids_max"):
            raise ValidationFailed(f"at most {limit('mass.external_userids_max')} customers per task", code="wecom_mass_too_many")
        _check_message(text, attachments)
        body = _compact(
            chat_type=chat_type,
            external_userid=list(external_userids) or None,
            sender=sender,
            allow_select=allow_select,
            text={"content": text} if text else None,
            attachments=[dict(a) for a in attachments] or None,
        )
        data = self.call("POST", "/externalcontact/add_msg_template", body=body, idempotent=False)
        return {"msgid": str(data.get("msgid", "")), "fail_list": list(data.get("fail_list", []))}

    def get_groupmsg_task(self, msgid: str, *, cursor: str = "", limit_: int = 500) -> tuple[list[dict[str, Any]], str]:
        """Per-staff status of a mass-message task: (task_list, next_cursor)."""
        if not 1 <= limit_ <= limit("mass.results_limit_max"):
            raise ValidationFailed(f"limit must be 1..{limit('mass.results_limit_max')}", code="wecom_invalid_limit")
        data = self.call(
            "POST", "/externalcontact/get_groupmsg_task", body=_compact(msgid=msgid, limit=limit_, cursor=cursor or None)
        )
        return list(data.get("task_list", [])), str(data.get("next_cursor", ""))

    def get_groupmsg_send_result(
        self, msgid: str, userid: str, *, cursor: str = "", limit_: int = 500
    ) -> tuple[list[dict[str, Any]], str]:
        """Per-customer (or per-group) result of one staff member's part: (send_list, next_cursor)."""
        if not 1 <= limit_ <= limit("mass.results_limit_max"):
            raise ValidationFailed(f"limit must be 1..{limit('mass.results_limit_max')}", code="wecom_invalid_limit")
        body = _compact(msgid=msgid, userid=userid, limit=limit_, cursor=cursor or None)
        data = self.call("POST", "/externalcontact/get_groupmsg_send_result", body=body)
        return list(data.get("send_list", [])), str(data.get("next_cursor", ""))

    # ------------------------------------------------------------ customer transfer (继承)

    def transfer_customer(
        self,
        handover_userid: str,
        takeover_userid: str,
        external_userids: Sequence[str],
        *,
        transfer_success_msg: str | None = None,
    ) -> list[dict[str, Any]]:
        """在职继承: move customers between two active staff (each customer may refuse
        within 24 h). Returns the per-customer ``[{"external_userid", "errcode"}]``."""
        _check_transfer(external_userids)
        body = _compact(
            handover_userid=handover_userid,
            takeover_userid=takeover_userid,
            external_userid=list(external_userids),
            transfer_success_msg=transfer_success_msg,
        )
        return list(self.call("POST", "/externalcontact/transfer_customer", body=body, idempotent=False).get("customer", []))

    def resigned_transfer_customer(
        self, handover_userid: str, takeover_userid: str, external_userids: Sequence[str]
    ) -> list[dict[str, Any]]:
        """离职继承: hand a departed staff member's customers to a colleague."""
        _check_transfer(external_userids)
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid, "external_userid": list(external_userids)}
        return list(
            self.call("POST", "/externalcontact/resigned/transfer_customer", body=body, idempotent=False).get("customer", [])
        )
