"""The REST API under /api/v1/: one router per domain, bearer tokens, uniform errors."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from siyu.api import acquisition, analytics, campaigns, channels, commerce, community, contacts, groups, moderation, staff, tags
from siyu.api import group_health as group_health_api
from siyu.api import group_settings as group_settings_api
from siyu.api import journeys as journeys_api
from siyu.api import outreach as outreach_api
from siyu.api import segments as segments_api
from siyu.api.auth import TokenAuth
from siyu.core.errors import SiyuError

api = NinjaAPI(
    title="siyu API",
    version="1",
    description="siyu (私域) private-domain operations. Authenticate with `Authorization: Bearer <token>` "
    "(create one with `siyu token create`). Errors answer `{\"error\": {\"code\", \"message\"}}`.",
    auth=TokenAuth(),
    urls_namespace="api",
    docs_url="/docs",
)


def _error(request: HttpRequest, status: int, code: str, message: str, details: object = None) -> HttpResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return api.create_response(request, {"error": body}, status=status)


@api.exception_handler(SiyuError)
def _siyu_error(request: HttpRequest, exc: SiyuError) -> HttpResponse:
    return api.create_response(request, {"error": exc.as_dict()}, status=exc.status)


@api.exception_handler(AuthenticationError)
def _unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = _error(request, 401, "unauthorized", "missing, invalid or revoked bearer token")
    response["WWW-Authenticate"] = "Bearer"
    return response


@api.exception_handler(NinjaValidationError)
def _invalid(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
    details = [
        {"loc": [str(part) for part in err.get("loc", [])], "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors
    ]
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    where = ".".join(p for p in first["loc"] if p not in ("body", "payload", "query", "path"))  # type: ignore[union-attr]
    return _error(request, 422, "invalid_request", f"{where}: {first['msg']}" if where else str(first["msg"]), details)


@api.exception_handler(Http404)
def _not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return _error(request, 404, "not_found", "not found")


@api.exception_handler(HttpError)
def _http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    return _error(request, exc.status_code, "http_error", str(exc))


api.add_router("/", contacts.router)
api.add_router("/", tags.router)
api.add_router("/", groups.router)
api.add_router("/", staff.router)
api.add_router("/", moderation.router)
api.add_router("/", community.router)
api.add_router("/", analytics.router)
api.add_router("/", channels.router)
api.add_router("/", commerce.router)
api.add_router("/", acquisition.router)
api.add_router("/", campaigns.router)
api.add_router("/", segments_api.router)
api.add_router("/", outreach_api.router)
api.add_router("/", journeys_api.router)
api.add_router("/", group_health_api.router)
api.add_router("/", group_settings_api.router)
