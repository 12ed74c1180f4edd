"""Console request plumbing: the current workspace and its language."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation

SESSION_KEY = "siyu_workspace_id"


class WorkspaceLocaleMiddleware:
    """Activate the language of the workspace chosen in the console session (Chinese by
    default); ``?lang=en`` / ``?lang=zh-hans`` overrides it for the session."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        lang = request.GET.get("lang")
        if lang in ("en", "zh-hans"):
            request.session["siyu_lang"] = lang
        chosen = request.session.get("siyu_lang") or request.session.get("siyu_workspace_lang") or "zh-hans"
        # for this request only: the thread goes back to the language it had, so what runs
        # on it next (another request, a test's direct call of an action that stores
        # translated text) does not inherit this session's choice
        with translation.override(chosen):
            request.LANGUAGE_CODE = chosen
            response = self.get_response(request)
            # The console may switch to the workspace's language once it knows the
            # workspace, after this middleware ran: report what was actually used.
            response.headers.setdefault("Content-Language", translation.get_language() or chosen)
        return response
