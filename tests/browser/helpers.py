"""What several browser tests share: the tea-house workspace with its owner, and logging in."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from siyu.accounts.models import Role
from siyu.core.testing import make_staff, make_workspace

PASSWORD = "browser-pass-1"
OWNER_EMAIL = "owner@example.com"


def tea_house() -> tuple[Any, Any]:
    """The workspace 山茶小馆 and its owner 林店长 (who logs in with ``PASSWORD``)."""
    ws = make_workspace(slug="tea", name="山茶小馆 Tea House")
    return ws, make_staff(ws, Role.OWNER, email=OWNER_EMAIL, display_name="林店长", password=PASSWORD)


def log_in(page: Any, base_url: str) -> None:
    """Log the owner in through the login form."""
    page.goto(f"{base_url}/console/login/")
    page.fill("#id_username", OWNER_EMAIL)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit].primary")
    expect(page).to_have_url(re.compile(r"/console/"))
