"""The WeCom adapter: what siyu may ask of a WeCom self-built app, and honestly no more.

Capabilities, and why some are missing:

- SEND_WELCOME — ``send_welcome_msg`` with the add event's ``welcome_code`` (20 s, once).
- MASS_MESSAGE_TASK — ``add_msg_template`` creates a task that the staff member must
  confirm in the WeCom app (企业群发); nothing reaches customers without that tap.
- CREATE_CONTACT_CODE / CREATE_GROUP_CODE — 「联系我」 and 「加入群聊」 with ``state``.
- SYNC_TAGS — corp tag library and ``mark_tag``.
- TRANSFER_CUSTOMERS — 在职/离职继承.

Not declared, so features degrade (moderation opens a staff task instead):

- SEND_DIRECT_MESSAGE / SEND_GROUP_MESSAGE — a self-built app's ``message/send`` reaches
  *staff* (members of the corp), not external customers, and ``appchat`` only reaches
  internal groups the app created. Customers are reached only through the welcome message
  and staff-confirmed mass-message tasks.
- REMOVE_MEMBER / BAN_MEMBER / DELETE_MESSAGE — the API offers no way to remove a member
  of a customer group or to recall a customer's message.
- READ_GROUP_MESSAGES — needs the paid chat archive (会话内容存档) and each customer's
  consent; not part of this adapter.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx
from django.utils import timezone

from siyu.channels.base import Capability, ChannelAdapter, Command, CommandKind, SendResult, UnsupportedCommand
from siyu.channels.models import ChannelAccount
from siyu.channels.wecom.account import WeComNotConfigured, WeComSettings
from siyu.channels.wecom.client import RATE_LIMIT_ERRORS, WeComApiError, WeComClient, WeComNetworkError
from siyu.channels.wecom.events import JOIN_SCENES
from siyu.channels.wecom.limits import limit
from siyu.core.errors import ValidationFailed

__all__ = ["WeComAdapter"]

CAPABILITIES = frozenset(
    {
        Capability.SEND_WELCOME,
        Capability.MASS_MESSAGE_TASK,
        Capability.CREATE_CONTACT_CODE,
        Capability.CREATE_GROUP_CODE,
        Capability.SYNC_TAGS,
        Capability.TRANSFER_CUSTOMERS,
    }
)


def _api_failure(exc: WeComApiError) -> SendResult:
    retry_after = float(limit("api.block_after_minute_limit_seconds")) if exc.errcode in RATE_LIMIT_ERRORS else None
    return SendResult.failed(str(exc.errcode), exc.errmsg or str(exc), transient=exc.transient, retry_after=retry_after)


class WeComAdapter(ChannelAdapter):
    """Commands and look-ups against one WeCom app. ``transport`` and ``sleep`` are for
    tests; in production the account's ``api_base`` decides where requests go."""

    kind = "wecom"
    capabilities = CAPABILITIES

    def __init__(
        self,
        account: ChannelAccount,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(account)
        self._transport = transport
        self._sleep = sleep

    def settings(self) -> WeComSettings:
        return WeComSettings.from_account(self.account)

    def client(self) -> WeComClient:
        return self.settings().client(transport=self._transport, sleep=self._sleep)

    # ------------------------------------------------------------ commands

    def send(self, command: Command) -> SendResult:
        try:
            self.check(command)
        except UnsupportedCommand as exc:
            return SendResult.failed("unsupported_command", str(exc), transient=False)
        if command.kind == CommandKind.SEND_WELCOME and self._welcome_expired(command):
            return SendResult.failed(
                "welcome_code_expired",
                f"the welcome_code is only valid {limit('welcome.code_ttl_seconds')} s after the add event",
                transient=False,
            )
        try:
            with self.client() as client:
                return self._execute(client, command)
        except WeComNotConfigured as exc:
            return SendResult.failed("wecom_not_configured", str(exc), transient=False)
        except ValidationFailed as exc:
            return SendResult.failed(exc.code, exc.message, transient=False)
        except WeComApiError as exc:
            return _api_failure(exc)
        except WeComNetworkError as exc:
            if command.kind == CommandKind.MASS_MESSAGE_TASK and exc.maybe_delivered:
                # Creating a task twice would ask the staff member to confirm it twice:
                # a person checks the task list instead of a blind retry.
                return SendResult.failed("mass_task_outcome_unknown", str(exc), transient=False)
            return SendResult.failed("network_error", str(exc), transient=True)

    @staticmethod
    def _welcome_expired(command: Command) -> bool:
        expires_at = command.payload.get("expires_at")
        if not expires_at:
            return False
        try:
            deadline = dt.datetime.fromisoformat(str(expires_at))
        except ValueError:
            return False
        return deadline <= timezone.now()

    def _execute(self, client: WeComClient, command: Command) -> SendResult:
        payload = command.payload
        if command.kind == CommandKind.SEND_WELCOME:
            client.send_welcome_msg(
                str(payload["welcome_code"]), text=str(payload.get("text", "")), attachments=payload.get("attachments", ())
            )
            return SendResult.delivered()
        if command.kind == CommandKind.MASS_MESSAGE_TASK:
            # target: the staff member (sender) who confirms the task in WeCom
            result = client.add_msg_template(
                chat_type=str(payload.get("chat_type", "single")),
                external_userids=payload.get("external_userids", ()),
                sender=command.target or payload.get("sender") or None,
                text=str(payload.get("text", "")),
                attachments=payload.get("attachments", ()),
            )
            return SendResult.delivered(external_id=result["msgid"])
        if command.kind == CommandKind.MARK_TAGS:
            # target: the customer's external_userid; payload["userid"]: the staff member
            client.mark_tag(
                str(payload["userid"]),
                command.target,
                add_tag=payload.get("add_tag", ()),
                remove_tag=payload.get("remove_tag", ()),
            )
            return SendResult.delivered()
        return SendResult.failed("unsupported_command", f"wecom cannot {command.kind.value}", transient=False)

    # ------------------------------------------------------------ look-ups used by handlers

    def fetch_group(self, chat_id: str) -> dict[str, Any]:
        """A customer group as siyu needs it (groupchat/get, normalised)::

            {"group_id", "name", "owner", "members": [{"member_id", "name", "is_staff",
             "joined_at", "join_source", "state", "unionid"}]}

        ``join_source`` is the join way's ``state`` when there is one, else the join scene.
        """
        with self.client() as client:
            chat = client.get_groupchat(chat_id, need_name=True)
        members = []
        for member in chat.get("member_list", []):
            joined = member.get("join_time")
            state = str(member.get("state", ""))
            members.append(
                {
                    "member_id": str(member["userid"]),
                    "name": str(member.get("name") or member.get("group_nickname") or ""),
                    "is_staff": member.get("type") == 1,
                    "joined_at": dt.datetime.fromtimestamp(int(joined), tz=dt.UTC) if joined else None,
                    "join_source": state or JOIN_SCENES.get(int(member.get("join_scene") or 0), ""),
                    "state": state,
                    "unionid": str(member.get("unionid", "")),
                }
            )
        return {
            "group_id": str(chat.get("chat_id", chat_id)),
            "name": str(chat.get("name", "")),
            "owner": str(chat.get("owner", "")),
            "members": members,
        }

    def fetch_corp_tags(self) -> list[dict[str, Any]]:
        """The whole corp tag library (``tag_group`` list of get_corp_tag_list)."""
        with self.client() as client:
            return client.get_corp_tag_list()

    # ------------------------------------------------------------ live codes and transfers

    def create_contact_code(
        self, *, state: str, users: Sequence[str], remark: str | None = None, skip_verify: bool = True
    ) -> dict[str, str]:
        """A 「联系我」 QR code (scene 2) for these staff; returns config_id and qr_code."""
        with self.client() as client:
            return client.add_contact_way(
                type=1 if len(users) == 1 else 2, scene=2, state=state, user=users, remark=remark, skip_verify=skip_verify
            )

    def create_group_code(self, *, state: str, chat_ids: Sequence[str], remark: str | None = None) -> str:
        """A 「加入群聊」 QR code (scene 2) over at most 5 groups; returns its config_id."""
        with self.client() as client:
            return client.add_join_way(scene=2, chat_id_list=chat_ids, state=state, remark=remark)

    def transfer_customers(
        self, handover: str, takeover: str, external_ids: Sequence[str], *, resigned: bool = False, message: str | None = None
    ) -> list[dict[str, Any]]:
        """在职 (default) or 离职 (``resigned``) transfer; per-customer errcodes come back."""
        with self.client() as client:
            if resigned:
                return client.resigned_transfer_customer(handover, takeover, external_ids)
            return client.transfer_customer(handover, takeover, external_ids, transfer_success_msg=message)
