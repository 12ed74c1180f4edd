"""Phone number normalisation and masking (China first, any country accepted)."""

from __future__ import annotations

import phonenumbers

from siyu.core.errors import ValidationFailed


def normalize_phone(raw: str, region: str = "CN") -> str:
    """Return E.164 (``+8613812345678``) or raise ValidationFailed with the reason."""
    text = (raw or "").strip()
    if not text:
        return ""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationFailed(f"not a phone number: {raw!r}", code="invalid_phone") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationFailed(f"not a valid phone number: {raw!r}", code="invalid_phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """``+8613812345678`` → ``138****5678``; other countries keep their prefix."""
    if not e164:
        return ""
    if e164.startswith("+86") and len(e164) == 14:
        national = e164[3:]
        return f"{national[:3]}****{national[-4:]}"
    return f"{e164[:4]}****{e164[-4:]}"
