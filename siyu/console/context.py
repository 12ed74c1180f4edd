"""Template context every console page shares: who, where, and what they may do."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from siyu.accounts.models import Role
from siyu.accounts.permissions import Perm, has_perm

SIYU_VERSION = "0.1.0"
# URL-name prefix → the nav entry it belongs to.
SECTIONS = (("contact", "contacts"), ("tag", "tags"), ("rule", "tags"), ("group", "groups"), ("member", "groups"), ("staff", "staff"), ("audit", "audit"), ("channel", "channels"), ("inbox", "channels"), ("outbox", "channels"), ("task", "tasks"), ("moderation", "moderation"), ("commerce", "commerce"), ("analytics", "analytics"), ("acquisition", "acquisition"), ("campaign", "campaigns"))


def _section(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    name = match.url_name if match else ""
    return next((section for prefix, section in SECTIONS if name and name.startswith(prefix)), "")


def _lang_urls(request: HttpRequest) -> dict[str, str]:
    """This page in each language; a page that answered a form post has no GET of its
    own, so its language links lead home."""
    codes = {"zh_hans": "zh-hans", "en": "en"}  # template-friendly keys
    if request.method != "GET":
        return {key: f"/console/?lang={code}" for key, code in codes.items()}
    query = request.GET.copy()
    urls = {}
    for key, code in codes.items():
        query["lang"] = code
        urls[key] = f"{request.path}?{query.urlencode()}"
    return urls


def console_context(request: HttpRequest) -> dict[str, Any]:
    context: dict[str, Any] = {"siyu_version": SIYU_VERSION, "lang_urls": _lang_urls(request)}
    console = getattr(request, "console", None)
    if console is None:
        return context
    from siyu.console.workspace import memberships

    staff = console.staff
    context.update(
        section=_section(request),
        ws=console.workspace,
        me=staff,
        my_workspaces=[row.workspace for row in memberships(request)],
        # ``can.manage_tags`` etc.; ``perms`` is taken by django.contrib.auth.
        can={perm.name.lower(): has_perm(staff, perm) for perm in Perm},
        show_admin_link=staff.role == Role.OWNER and request.user.is_staff,
    )
    return context
