"""Which adapter serves a channel account."""

from __future__ import annotations

from collections.abc import Callable

from siyu.channels.base import ChannelAdapter
from siyu.channels.models import ChannelAccount

_FACTORIES: dict[str, Callable[[ChannelAccount], ChannelAdapter]] = {}


def register(kind: str, factory: Callable[[ChannelAccount], ChannelAdapter]) -> None:
    _FACTORIES[kind] = factory


def adapter_for(account: ChannelAccount) -> ChannelAdapter:
    if not _FACTORIES:
        _register_builtin()
    try:
        factory = _FACTORIES[account.kind]
    except KeyError as exc:
        raise LookupError(f"no adapter for channel kind {account.kind!r}") from exc
    return factory(account)


def _register_builtin() -> None:
    from siyu.channels.matrix.adapter import MatrixAdapter
    from siyu.channels.sandbox import SandboxAdapter
    from siyu.channels.wecom.adapter import WeComAdapter

    register("sandbox", SandboxAdapter)
    register("wecom", WeComAdapter)
    register("matrix", MatrixAdapter)
