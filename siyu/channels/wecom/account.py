"""A WeCom channel account's settings, kept in ``ChannelAccount.config``.

The app secret, the callback Token and the EncodingAESKey are stored encrypted with
:func:`siyu.core.crypto.encrypt` (Fernet under ``SIYU_PII_KEY``) and decrypted only where
they are used. ``config`` holds::

    {"corp_id": "ww…", "agent_id": 1000002,
     "secret_enc": "<fernet>", "token_enc": "<fernet>", "aes_key_enc": "<fernet>",
     "api_base": "https://qyapi.weixin.qq.com/cgi-bin",   # optional (proxy, fake server)
     "welcome_message": "…",                              # optional, used by the handler
     "corp_tag_map": {"<wecom tag id>": <siyu tag id>}}   # written by the tag sync
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from siyu.channels.wecom.client import DEFAULT_API_BASE, WeComClient
from siyu.channels.wecom.crypto import WeComCrypto
from siyu.core import crypto as pii

if TYPE_CHECKING:
    from siyu.channels.models import ChannelAccount

__all__ = ["WeComNotConfigured", "WeComSettings", "build_config"]


class WeComNotConfigured(Exception):
    """The account lacks a credential, or it cannot be decrypted (SIYU_PII_KEY changed)."""


def build_config(
    *, corp_id: str, agent_id: int, secret: str, token: str, aes_key: str, api_base: str | None = None
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "corp_id": corp_id,
        "agent_id": agent_id,
        "secret_enc": pii.encrypt(secret),
        "token_enc": pii.encrypt(token),
        "aes_key_enc": pii.encrypt(aes_key),
    }
    if api_base:
        config["api_base"] = api_base
    return config


@dataclass(frozen=True)
class WeComSettings:
    corp_id: str
    agent_id: int
    secret: str
    token: str
    aes_key: str
    api_base: str

    def __repr__(self) -> str:  # never print credentials, not even in a traceback
        return f"WeComSettings(corp_id={self.corp_id!r}, agent_id={self.agent_id!r})"

    @classmethod
    def from_account(cls, account: ChannelAccount) -> WeComSettings:
        config = account.config or {}
        values = {name: pii.decrypt(str(config.get(f"{name}_enc", ""))) for name in ("secret", "token", "aes_key")}
        missing = sorted(name for name, value in values.items() if not value)
        corp_id = str(config.get("corp_id") or account.external_id)
        if not corp_id:
            missing.insert(0, "corp_id")
        if missing:
            raise WeComNotConfigured(f"WeCom account {account.pk} has no usable {', '.join(missing)}")
        return cls(
            corp_id=corp_id,
            agent_id=int(config.get("agent_id") or 0),
            secret=values["secret"],
            token=values["token"],
            aes_key=values["aes_key"],
            api_base=str(config.get("api_base") or DEFAULT_API_BASE),
        )

    def crypto(self) -> WeComCrypto:
        return WeComCrypto(self.token, self.aes_key, self.corp_id)

    def client(self, **options: Any) -> WeComClient:
        return WeComClient(self.corp_id, self.secret, api_base=self.api_base, **options)
