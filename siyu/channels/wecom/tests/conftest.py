"""WeCom test fixtures: a clean token cache and the fake WeCom server."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from siyu.channels.wecom.testing import FakeWeCom


@pytest.fixture(autouse=True)
def _clean_token_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def fake() -> FakeWeCom:
    return FakeWeCom()


@pytest.fixture
def connect_wecom():
    """``connect_wecom(api_base=None, **overrides)`` → a WeCom account on a new workspace,
    made through the real action (credentials: the documented gettoken example)."""
    from siyu.channels.wecom.actions import do_connect_wecom
    from siyu.core.testing import make_workspace

    def make(api_base=None, workspace=None, **overrides):
        values = {
            "corp_id": "ID",
            "agent_id": 1000002,
            "secret": "SECRET",
            "token": "QDG6eK",
            "aes_key": "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            **overrides,
        }
        return do_connect_wecom(workspace or make_workspace(), None, api_base=api_base, **values)

    return make
