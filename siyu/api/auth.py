"""Bearer-token authentication: the token decides the workspace and the staff member."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer

from siyu.accounts.actions import authenticate_token
from siyu.accounts.events import current_via
from siyu.accounts.models import Staff
from siyu.core.models import Workspace


class TokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        api_token = authenticate_token(token)
        if api_token is None:
            return None
        request.workspace = api_token.workspace  # type: ignore[attr-defined]
        request.staff = api_token.staff  # type: ignore[attr-defined]
        current_via.set("api")
        return api_token


def ws(request: HttpRequest) -> Workspace:
    return request.workspace  # type: ignore[attr-defined, no-any-return]


def me(request: HttpRequest) -> Staff:
    return request.staff  # type: ignore[attr-defined, no-any-return]
