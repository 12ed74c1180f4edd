"""The signed order webhook: signature and timestamp checks (nothing stored when they
fail), replay protection, idempotency by order id, and clear errors."""

import json
import time
from decimal import Decimal as D

import pytest
from django.test import Client

from siyu.accounts.models import AuditEntry
from siyu.commerce.actions import do_rotate_webhook_secret
from siyu.commerce.models import CommerceSettings, Order
from siyu.commerce.webhooks import sign, timestamp_fresh
from siyu.core import crypto
from siyu.core.testing import make_contact, make_workspace

pytestmark = pytest.mark.django_db

ORDER = {
    "order_id": "MP-1001",
    "placed_at": "2024-05-01T14:30:00+08:00",
    "phone": "13812345678",
    "discount": "20",
    "store": "小程序",
    "lines": [{"sku": "TEA-1", "product": "乌龙茶", "quantity": 2, "unit_price": "149.50"}],
}


@pytest.fixture
def shop(workspace):
    contact = make_contact(workspace, "小美", phone="13812345678")
    return workspace, contact, do_rotate_webhook_secret(workspace, None)


def post(slug, body, secret, *, timestamp=None, signature=None, **headers):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    ts = str(int(time.time()) if timestamp is None else timestamp)
    sent = {"X-Siyu-Timestamp": ts, "X-Siyu-Signature": signature or sign(secret, ts, raw), **headers}
    return Client().post(f"/hooks/orders/{slug}", raw, content_type="application/json", headers=sent)


def test_a_signed_order_is_recorded_and_its_replay_answers_with_the_same_order(shop):
    workspace, contact, secret = shop

    first = post(workspace.slug, ORDER, secret)
    replay = post(workspace.slug, ORDER, secret)
    changed = post(workspace.slug, {**ORDER, "refunded": "100"}, secret)

    assert first.status_code == 201
    body = first.json()
    order = Order.objects.get()
    assert body == {
        "order": {
            "id": order.pk, "external_id": "MP-1001", "contact_id": contact.pk, "placed_at": "2024-05-01T06:30:00+00:00",
            "status": "paid", "currency": "CNY", "gross_amount": "299.00", "discount_amount": "20.00", "refunded_amount": "0.00",
            "net_amount": "279.00", "store": "小程序",
        },
        "created": True,
        "updated": False,
    }
    assert (replay.status_code, replay.json()["order"]["id"], replay.json()["created"], replay.json()["updated"]) == (200, order.pk, False, False)
    assert (changed.status_code, changed.json()["updated"], changed.json()["order"]["net_amount"]) == (200, True, "179.00")
    assert Order.objects.count() == 1
    assert list(AuditEntry.objects.filter(action__startswith="order.").values_list("action", "via").order_by("id")) == [
        ("order.created", "webhook"), ("order.refunded", "webhook"),
    ]


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("wrong_secret", "invalid_signature", "unknown workspace or invalid signature"),
        ("no_signature", "invalid_signature", "unknown workspace or invalid signature"),
        ("body_only_signature", "invalid_signature", "unknown workspace or invalid signature"),
        ("tampered_body", "invalid_signature", "unknown workspace or invalid signature"),
        ("unknown_workspace", "invalid_signature", "unknown workspace or invalid signature"),
        ("no_secret_yet", "invalid_signature", "unknown workspace or invalid signature"),
        ("old_secret", "invalid_signature", "unknown workspace or invalid signature"),
        ("stale", "stale_timestamp", "timestamp is more than 300 seconds away from our clock"),
        ("future", "stale_timestamp", "timestamp is more than 300 seconds away from our clock"),
    ],
)
def test_unsigned_wrongly_signed_or_replayed_requests_are_refused_and_nothing_is_stored(shop, case, code, message):
    workspace, _contact, secret = shop
    raw = json.dumps(ORDER).encode()
    now = int(time.time())
    slug = workspace.slug
    kwargs: dict = {}
    if case == "wrong_secret":
        kwargs["signature"] = sign("whsec_guess", now, raw)
    elif case == "no_signature":
        kwargs["signature"] = "sha256="
    elif case == "body_only_signature":
        import hashlib
        import hmac

        kwargs["signature"] = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    elif case == "tampered_body":
        kwargs["signature"] = sign(secret, now, json.dumps({**ORDER, "discount": "200"}).encode())
    elif case == "unknown_workspace":
        slug = "no-such-shop"
    elif case == "no_secret_yet":
        slug = make_workspace("quiet-shop").slug
    elif case == "old_secret":
        do_rotate_webhook_secret(workspace, None)
    elif case == "stale":
        kwargs["timestamp"] = now - 600
        kwargs["signature"] = sign(secret, now - 600, raw)
    elif case == "future":
        kwargs["timestamp"] = now + 600
        kwargs["signature"] = sign(secret, now + 600, raw)

    response = post(slug, raw, secret, **kwargs)

    assert (response.status_code, response.json()) == (401, {"error": {"code": code, "message": message}})
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    ("timestamp", "fresh"), [("1000", True), ("700", True), ("699", False), ("1300", True), ("1301", False), ("", False), ("-5", False), ("1e3", False)]
)
def test_the_timestamp_may_be_five_minutes_off_at_most(timestamp, fresh):
    assert timestamp_fresh(timestamp, now=1000.0) is fresh


def test_missing_headers_are_refused(shop):
    workspace, _contact, _secret = shop

    response = Client().post(f"/hooks/orders/{workspace.slug}", json.dumps(ORDER), content_type="application/json")

    assert response.status_code == 401
    assert Order.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (b"{not json", 400, "invalid_json", "the body is not valid JSON"),
        (b"[1, 2]", 400, "invalid_json", "the body must be a JSON object (one order)"),
        ({**ORDER, "phone": "13900000000"}, 422, "contact_not_found", "no contact with phone '13900000000'"),
        ({**ORDER, "amount": "300"}, 422, "amount_mismatch", "amount ¥300.00 differs from the sum of the lines ¥299.00"),
        ({**ORDER, "coupon_code": "NOPE"}, 422, "coupon_not_found", "coupon 'NOPE' not found"),
        ({**ORDER, "placed_at": "soon"}, 422, "invalid_order", "placed_at 'soon' is not a date and time (expected e.g. 2024-05-01 14:30)"),
        ({**ORDER, "lines": "TEA-1"}, 422, "invalid_order", "lines must be a list of objects"),
        ({**ORDER, "lines": [{"sku": "X", "quantity": 1.5, "unit_price": "1"}]}, 422, "invalid_order", "line 1: quantity 1.5 is not a whole number"),
    ],
)
def test_bad_bodies_get_a_clear_error(shop, body, status, code, message):
    workspace, _contact, secret = shop

    response = post(workspace.slug, body, secret)

    assert (response.status_code, response.json()) == (status, {"error": {"code": code, "message": message}})
    assert Order.objects.count() == 0


def test_only_post_is_answered(shop):
    workspace, _contact, _secret = shop
    assert Client().get(f"/hooks/orders/{workspace.slug}").status_code == 405


def test_the_secret_is_stored_encrypted_and_rotation_is_audited(shop, owner):
    workspace, _contact, first = shop

    second = do_rotate_webhook_secret(workspace, owner)

    row = CommerceSettings.objects.get(workspace=workspace)
    assert first != second and second.startswith("whsec_")
    assert second not in row.webhook_secret_encrypted
    assert crypto.decrypt(row.webhook_secret_encrypted) == second
    assert AuditEntry.objects.filter(action="webhook_secret.rotated").count() == 2
    assert post(workspace.slug, ORDER, second).status_code == 201
    assert Order.objects.get().net_amount == D("279.00")
