"""Which workspace a console request works in, and as whom.

The chosen workspace lives in the session (``siyu_workspace_id``); every console view is
wrapped by :func:`console_view`, which resolves it to the user's active ``Staff`` row of
that workspace, shows times in the workspace's zone, and turns domain errors into pages:
``Forbidden`` → 403, ``NotFound`` → 404 (a workspace the user does not belong to looks
exactly like one that does not exist), other errors of a form post → a flash message.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.http import url_has_allowed_host_and_scheme

from siyu.accounts.events import current_via
from siyu.accounts.models import Staff
from siyu.accounts.permissions import Perm, has_perm, require
from siyu.core.errors import Forbidden, NotFound, SiyuError
from siyu.core.models import Workspace

SESSION_WORKSPACE = "siyu_workspace_id"
SESSION_WORKSPACE_LANG = "siyu_workspace_lang"
SESSION_LANG_OVERRIDE = "siyu_lang"

P = ParamSpec("P")


@dataclass(frozen=True)
class Console:
    """The (workspace, staff) pair a console view acts as."""

    workspace: Workspace
    staff: Staff

    def can(self, perm: Perm) -> bool:
        return has_perm(self.staff, perm)

    def require(self, perm: Perm) -> None:
        require(self.staff, perm)


class WorkspaceChoiceNeeded(Exception):
    """The user belongs to several workspaces and has not picked one yet."""


def memberships(request: HttpRequest) -> list[Staff]:
    """The user's active staff rows, one per workspace, in workspace order."""
    return list(
        Staff.objects.filter(user=request.user, is_active=True).select_related("workspace", "user").order_by("workspace__name", "workspace__slug")
    )


def choose_workspace(request: HttpRequest, workspace_id: int | str) -> Staff:
    """Make ``workspace_id`` the session's workspace; NotFound unless the user is active
    staff there."""
    try:
        ws_id = int(workspace_id)
    except (TypeError, ValueError) as exc:
        raise NotFound("workspace not found", code="workspace_not_found") from exc
    staff = Staff.objects.filter(user=request.user, workspace_id=ws_id, is_active=True).select_related("workspace", "user").first()
    if staff is None:
        raise NotFound("workspace not found", code="workspace_not_found")
    request.session[SESSION_WORKSPACE] = staff.workspace_id
    _remember_language(request, staff.workspace)
    return staff


def _remember_language(request: HttpRequest, workspace: Workspace) -> None:
    if request.session.get(SESSION_WORKSPACE_LANG) != workspace.language:
        request.session[SESSION_WORKSPACE_LANG] = workspace.language
        # The middleware already chose a language for this request from the stale
        # session; an explicit ?lang choice still wins over the workspace's language.
        if not request.session.get(SESSION_LANG_OVERRIDE):
            translation.activate(workspace.language)
            request.LANGUAGE_CODE = workspace.language


def resolve_console(request: HttpRequest) -> Console:
    """The session's workspace and the user's staff row in it. A user of exactly one
    workspace gets it without asking; a user of several must pick one."""
    ws_id = request.session.get(SESSION_WORKSPACE)
    if ws_id is None:
        rows = memberships(request)
        if len(rows) == 1:
            ws_id = rows[0].workspace_id
        elif not rows:
            raise Forbidden("you are not an active staff member of any workspace", code="no_workspace")
        else:
            raise WorkspaceChoiceNeeded
    staff = choose_workspace(request, ws_id)
    return Console(workspace=staff.workspace, staff=staff)


def safe_next(request: HttpRequest, candidate: str | None, fallback: str) -> str:
    if candidate and url_has_allowed_host_and_scheme(candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return candidate
    return fallback


def error_page(request: HttpRequest, exc: SiyuError, status: int) -> HttpResponse:
    return render(request, "console/error.html", {"error": exc, "status": status}, status=status)


def console_view(
    perm: Perm | None = None,
) -> Callable[[Callable[Concatenate[HttpRequest, Console, P], HttpResponse]], Callable[Concatenate[HttpRequest, P], HttpResponse]]:
    """Wrap a view ``view(request, console, ...)``: login required, workspace resolved,
    ``perm`` (if given) required, domain errors rendered."""

    def decorate(view: Callable[Concatenate[HttpRequest, Console, P], HttpResponse]) -> Callable[Concatenate[HttpRequest, P], HttpResponse]:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                console = resolve_console(request)
            except WorkspaceChoiceNeeded:
                return HttpResponseRedirect(reverse("console:workspaces") + "?next=" + request.get_full_path())
            except NotFound as exc:
                # The remembered workspace is no longer the user's (deactivated, removed).
                request.session.pop(SESSION_WORKSPACE, None)
                return error_page(request, exc, 404)
            except Forbidden as exc:
                return error_page(request, exc, 403)
            request.console = console  # type: ignore[attr-defined]  # read by the context processor
            token = current_via.set("console")
            try:
                with timezone.override(console.workspace.tz):
                    if perm is not None:
                        console.require(perm)
                    return view(request, console, *args, **kwargs)
            except Forbidden as exc:
                return error_page(request, exc, 403)
            except NotFound as exc:
                return error_page(request, exc, 404)
            except SiyuError as exc:
                if request.method == "POST":
                    # Back to the page that held the form, where the message shows.
                    messages.error(request, exc.message)
                    fallback = safe_next(request, request.headers.get("Referer"), reverse("console:home"))
                    return HttpResponseRedirect(safe_next(request, request.POST.get("next"), fallback))
                return error_page(request, exc, exc.status)
            finally:
                current_via.reset(token)

        return wrapper

    return decorate


def back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Redirect to the form's ``next`` field (same host only) or ``fallback``."""
    return HttpResponseRedirect(safe_next(request, request.POST.get("next") or request.GET.get("next"), fallback))


def page_numbers(current: int, last: int) -> list[Any]:
    """Page links around the current page: 1 … 4 5 [6] 7 8 … 20."""
    shown = sorted({1, last, *range(max(1, current - 2), min(last, current + 2) + 1)})
    out: list[Any] = []
    for index, number in enumerate(shown):
        if index and number - shown[index - 1] > 1:
            out.append(None)
        out.append(number)
    return out
