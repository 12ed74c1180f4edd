"""Phone number normalisation and masking (China first, any country accepted)."""

from __future__ import annotations

import re

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


#: a run of 7+ digits, separators allowed between them: phone numbers inside free text
_DIGIT_RUN = re.compile(r"\d(?:[\s\-.]*\d){6,}")


def mask_digit_runs(text: str) -> str:
    """Free text (a chat message, a moderation case) with every phone-number-like run of
    digits masked as ``138****5678``, for staff who may not see personal data."""

    def mask(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return f"{digits[:3]}****{digits[-4:]}"

    return _DIGIT_RUN.sub(mask, text)
