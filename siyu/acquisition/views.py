"""Public pages of live codes (no login: anyone who scans a poster lands here).

A visitor is recognised by a signed cookie (``siyu_v``), so a refresh or a second scan
is a repeat, not a new person taking another seat; the cookie carries a random key and
nothing else."""

from __future__ import annotations

import io
import secrets
from typing import Any

import segno
from django.core.signing import BadSignature
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from siyu.acquisition.actions import do_route_scan
from siyu.acquisition.errors import CodeUnavailable
from siyu.acquisition.models import LiveCode, LiveCodeGroup, LiveCodeStaff, Scan, ScanOutcome
from siyu.core.errors import NotFound

VISITOR_COOKIE = "siyu_v"
VISITOR_SALT = "siyu.acquisition.visitor"
VISITOR_MAX_AGE = 365 * 24 * 3600


def visitor_key(request: HttpRequest) -> tuple[str, bool]:
    """The visitor's key from the signed cookie, or a new one; returns (key, is_new)."""
    try:
        key = request.get_signed_cookie(VISITOR_COOKIE, salt=VISITOR_SALT)
    except (KeyError, BadSignature):
        key = None
    if not key:
        return secrets.token_urlsafe(16), True
    return str(key), False


def _page(template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    # Rendered without the request: public pages need none of the console's context
    # processors, and skipping them keeps a scan cheap under a spike.
    return HttpResponse(render_to_string(template, context), status=status)


def _unavailable(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    return _page("acquisition/unavailable.html", {"title": title, "message": message}, status=status)


def _target_url(scan: Scan) -> str:
    if scan.group_id is not None:
        slot = LiveCodeGroup.objects.filter(live_code_id=scan.live_code_id, group_id=scan.group_id).only("qr_url").first()
        if slot is not None and slot.qr_url:
            return slot.qr_url
        # On WeCom one join way (加入群聊) covers the whole window of open groups.
        return LiveCode.objects.filter(pk=scan.live_code_id).values_list("join_qr_url", flat=True).first() or ""
    if scan.staff_id is not None:
        staff_slot = LiveCodeStaff.objects.filter(live_code_id=scan.live_code_id, staff_id=scan.staff_id).only("qr_url").first()
        return staff_slot.qr_url if staff_slot else ""
    return ""


@require_GET
@never_cache
def scan(request: HttpRequest, code: str) -> HttpResponse:
    """Resolve a scan: redirect to the platform QR of the chosen target where there is
    one, else render a page naming the target."""
    key, is_new = visitor_key(request)
    try:
        result = do_route_scan(code, visitor_key=key, user_agent=request.headers.get("User-Agent", ""),
                               invite_code=request.GET.get("i", "")[:16])
    except NotFound:
        return _unavailable(request, 404, "二维码不存在", "这个二维码不存在或已被删除，请联系商家获取新的二维码。")
    except CodeUnavailable as exc:
        if exc.code == "live_code_expired":
            return _unavailable(request, 410, "活动已结束", "这个二维码已过期，感谢关注！")
        if exc.code == "live_code_paused":
            return _unavailable(request, 503, "暂停使用", "这个二维码暂时停用，请稍后再试。")
        return _unavailable(request, 503, "名额已满", "当前群聊/客服都已满员，请稍后再扫。")
    target = _target_url(result)
    response: HttpResponse
    if target:
        response = HttpResponseRedirect(target)
    else:
        context = {
            "scan": result,
            "group": result.group if result.group_id else None,
            "staff": result.staff if result.staff_id else None,
            "repeat": result.outcome == ScanOutcome.REPEAT,
            "state": result.live_code.state,
        }
        response = _page("acquisition/scan.html", context)
    if is_new:
        response.set_signed_cookie(VISITOR_COOKIE, key, salt=VISITOR_SALT, max_age=VISITOR_MAX_AGE, httponly=True, samesite="Lax")
    return response


def qr_image(url: str, *, scale: int = 8) -> bytes:
    """A PNG QR code of ``url`` (error correction M, quiet zone 4)."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


@require_GET
def qr_png(request: HttpRequest, code: str) -> HttpResponse:
    """The QR of a live code's public URL (with ``?i=`` of a fission sharer if given)."""
    if not LiveCode.objects.filter(code=code).exists():
        return _unavailable(request, 404, "二维码不存在", "这个二维码不存在或已被删除。")
    invite = request.GET.get("i", "")[:16]
    url = request.build_absolute_uri(f"/c/{code}" + (f"?i={invite}" if invite.isalnum() else ""))
    response = HttpResponse(qr_image(url), content_type="image/png")
    response["Cache-Control"] = "public, max-age=3600"
    return response
