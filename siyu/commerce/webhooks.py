"""The signed order webhook: ``POST /hooks/orders/<workspace_slug>``.

A shop (mini-program, Youzan/Weidian bridge, POS) posts one order as JSON, with the
field names of the CSV import (see :mod:`siyu.commerce.importing`) and its lines under
``"lines"``::

    {"order_id": "T1001", "placed_at": "2024-05-01T14:30:00+08:00", "phone": "13812345678",
     "amount": "299.00", "discount": "20", "store": "静安店",
     "lines": [{"sku": "TEA-1", "product": "乌龙茶", "quantity": 1, "unit_price": "299.00"}]}

Headers:

* ``X-Siyu-Timestamp``: the Unix time of sending (seconds);
* ``X-Siyu-Signature: sha256=<hex>``: HMAC-SHA256 with the workspace's webhook secret
  over ``<timestamp>.<raw body>``. The timestamp is signed with the body, otherwise a
  captured request could be replayed with a fresh timestamp and the skew check would
  protect nothing. :func:`sign` computes the header.

Answers: 401 for a missing or wrong signature, an unknown workspace or one without a
secret (one answer for all, so the endpoint does not reveal which workspaces exist),
and for a timestamp more than 5 minutes off — nothing is stored; 413 for a body over
1 MB; 400 for a body that is not a JSON object; 422 with the error code for an order
that does not validate (unknown customer, amounts that do not add up...); 409 for a
conflict (a cancelled order paid again). A valid order answers 201 with the order, and
its replay 200 with the same order (``"created": false``; ``"updated": true`` when the
content changed and the order was updated).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from siyu.accounts.events import current_via
from siyu.commerce.actions import do_record_order
from siyu.commerce.errors import ErrorCode
from siyu.commerce.importing import order_fields
from siyu.commerce.models import Order
from siyu.commerce.queries import webhook_secret
from siyu.core.errors import NotFound, SiyuError
from siyu.core.models import Workspace

__all__ = ["MAX_BODY", "MAX_SKEW_SECONDS", "order_json", "order_webhook", "sign", "timestamp_fresh"]

MAX_SKEW_SECONDS = 300
MAX_BODY = 1024 * 1024
SIGNATURE_HEADER = "X-Siyu-Signature"
TIMESTAMP_HEADER = "X-Siyu-Timestamp"


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-Siyu-Signature`` value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def timestamp_fresh(timestamp: str, now: float) -> bool:
    """Whether a signed ``X-Siyu-Timestamp`` is within the allowed skew of our clock
    (replay protection: a captured request stops working after 5 minutes)."""
    return timestamp.isdigit() and abs(now - int(timestamp)) <= MAX_SKEW_SECONDS


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status, json_dumps_params={"ensure_ascii": False})


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.pk,
        "external_id": order.external_id,
        "contact_id": order.contact_id,
        "placed_at": order.placed_at.isoformat(),
        "status": order.status,
        "currency": order.currency,
        "gross_amount": str(order.gross_amount),
        "discount_amount": str(order.discount_amount),
        "refunded_amount": str(order.refunded_amount),
        "net_amount": str(order.net_amount),
        "store": order.store,
    }


def _verify(request: HttpRequest, secret: str, now: float) -> JsonResponse | None:
    unauthorized = _error(401, ErrorCode.INVALID_SIGNATURE, "unknown workspace or invalid signature")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    # The digest is computed even without a secret, so that timing does not tell a
    # configured workspace from an unknown one.
    expected = sign(secret or "siyu-unset-secret", timestamp, request.body)
    if not (hmac.compare_digest(expected, signature) and secret and timestamp.isdigit()):
        return unauthorized
    if not timestamp_fresh(timestamp, now):
        return _error(401, ErrorCode.STALE_TIMESTAMP, f"timestamp is more than {MAX_SKEW_SECONDS} seconds away from our clock")
    return None


@csrf_exempt
@require_POST
def order_webhook(request: HttpRequest, workspace_slug: str) -> JsonResponse:
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > MAX_BODY or len(request.body) > MAX_BODY:
        return _error(413, ErrorCode.INVALID_JSON, "the body is larger than 1 MB")
    workspace = Workspace.objects.filter(slug=workspace_slug).first()
    secret = webhook_secret(workspace) if workspace is not None else ""
    refused = _verify(request, secret, time.time())
    if refused is not None or workspace is None:
        return refused or _error(401, ErrorCode.INVALID_SIGNATURE, "unknown workspace or invalid signature")
    try:
        payload = json.loads(request.body)
    except (UnicodeDecodeError, ValueError):
        return _error(400, ErrorCode.INVALID_JSON, "the body is not valid JSON")
    if not isinstance(payload, dict):
        return _error(400, ErrorCode.INVALID_JSON, "the body must be a JSON object (one order)")
    lines = payload.get("lines") or []
    if not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
        return _error(422, ErrorCode.INVALID_ORDER, "lines must be a list of objects")
    token = current_via.set("webhook")
    try:
        result = do_record_order(workspace, None, **order_fields(workspace, payload, lines))
    except NotFound as exc:
        # The URL exists; what the body names (a coupon, a group) does not: a payload error.
        return _error(422, exc.code, exc.message)
    except SiyuError as exc:
        return _error(exc.status, exc.code, exc.message)
    finally:
        current_via.reset(token)
    result.order.refresh_from_db()
    body = {"order": order_json(result.order), "created": result.created, "updated": result.updated}
    return JsonResponse(body, status=201 if result.created else 200, json_dumps_params={"ensure_ascii": False})
