"""The WeCom callback endpoint: ``/channels/wecom/<account_id>/callback``.

GET is the URL verification WeCom sends when the admin saves the callback settings: the
signature covers the ``echostr``, and the answer is the decrypted echostr as plain text
(no quotes, no BOM, no newline).

POST delivers one encrypted event. The order of checks is deliberate, and nothing reaches
the pipeline unless all pass:

1. the outer XML must carry an ``<Encrypt>`` — otherwise 400 (nothing stored);
2. ``msg_signature`` over Token/timestamp/nonce/Encrypt — otherwise 403 with the reason
   logged (nothing stored: an unauthenticated body is not evidence of anything);
3. AES decryption, padding, length and ReceiveId (our corp id) — otherwise 400;
4. the decrypted XML is parsed. An authentic payload that still cannot be parsed is kept
   as ``malformed`` in the inbox (visible in the console, never processed) and answered
   ``success`` — retrying cannot make it parse.

Valid events are stored with ``do_receive`` (idempotent by dedupe key) and answered
``success`` at once: processing happens in the worker after commit, well inside WeCom's
5-second limit. Timestamps are not checked for freshness: the dedupe key already makes a
replay a no-op, and WeCom retries legitimately arrive late.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from siyu.channels.inbox import do_receive, do_receive_malformed
from siyu.channels.models import ChannelAccount, ChannelKind
from siyu.channels.wecom.account import WeComNotConfigured, WeComSettings
from siyu.channels.wecom.crypto import InvalidKey, InvalidPayload, InvalidSignature, WeComCrypto
from siyu.channels.wecom.events import MAX_XML_BYTES, MalformedXml, parse_envelope, parse_xml, to_inbound

__all__ = ["wecom_callback"]

log = logging.getLogger(__name__)


def _plain(text: str, status: int = 200) -> HttpResponse:
    return HttpResponse(text.encode("utf-8"), status=status, content_type="text/plain; charset=utf-8")


def _crypto_for(account_id: int) -> tuple[ChannelAccount, WeComCrypto] | None:
    account = ChannelAccount.objects.filter(pk=account_id, kind=ChannelKind.WECOM, is_active=True).first()
    if account is None:
        return None
    try:
        return account, WeComSettings.from_account(account).crypto()
    except (WeComNotConfigured, InvalidKey) as exc:
        log.error("wecom callback: account %s cannot verify callbacks: %s", account_id, exc)
        return None


@csrf_exempt
@require_http_methods(["GET", "POST"])
def wecom_callback(request: HttpRequest, account_id: int) -> HttpResponse:
    found = _crypto_for(account_id)
    if found is None:
        return _plain("unknown callback", status=404)
    account, crypto = found
    signature = request.GET.get("msg_signature", "")
    timestamp = request.GET.get("timestamp", "")
    nonce = request.GET.get("nonce", "")
    if not (signature and timestamp and nonce):
        return HttpResponseBadRequest("msg_signature, timestamp and nonce are required")
    if request.method == "GET":
        return _verify_url(account, crypto, signature, timestamp, nonce, request.GET.get("echostr", ""))
    return _receive(account, crypto, request.body, signature, timestamp, nonce)


def _verify_url(
    account: ChannelAccount, crypto: WeComCrypto, signature: str, timestamp: str, nonce: str, echostr: str
) -> HttpResponse:
    # A "+" that reached us unencoded was turned into a space; base64 never has spaces.
    echostr = echostr.replace(" ", "+")
    if not echostr:
        return HttpResponseBadRequest("echostr is required")
    try:
        return _plain(crypto.verify_url(signature, timestamp, nonce, echostr))
    except InvalidSignature as exc:
        log.warning("wecom callback account %s: URL verification refused: %s", account.pk, exc.reason)
        return HttpResponseForbidden(exc.reason)
    except InvalidPayload as exc:
        log.warning("wecom callback account %s: URL verification refused: %s", account.pk, exc.reason)
        return HttpResponseBadRequest(exc.reason)


def _receive(
    account: ChannelAccount, crypto: WeComCrypto, body: bytes, signature: str, timestamp: str, nonce: str
) -> HttpResponse:
    if len(body) > MAX_XML_BYTES:
        log.warning("wecom callback account %s: body of %s bytes refused", account.pk, len(body))
        return HttpResponseBadRequest("body too large")
    try:
        envelope = parse_envelope(body)
    except MalformedXml as exc:
        log.warning("wecom callback account %s: unreadable body: %s", account.pk, exc)
        return HttpResponseBadRequest("malformed body")
    try:
        plaintext = crypto.decrypt_message(signature, timestamp, nonce, envelope.encrypt)
    except InvalidSignature as exc:
        log.warning("wecom callback account %s: refused: %s (timestamp=%s nonce=%s)", account.pk, exc.reason, timestamp, nonce)
        return HttpResponseForbidden(exc.reason)
    except InvalidPayload as exc:
        log.warning("wecom callback account %s: refused: %s", account.pk, exc.reason)
        return HttpResponseBadRequest(exc.reason)
    try:
        event = to_inbound(parse_xml(plaintext))
    except MalformedXml as exc:
        log.warning("wecom callback account %s: authentic but unparseable payload kept as malformed: %s", account.pk, exc)
        do_receive_malformed(account, plaintext, str(exc))
        return _plain("success")
    do_receive(account, [event], raw=plaintext)
    return _plain("success")
