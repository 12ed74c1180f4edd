"""Detectors (pure functions): text in, findings out. No database, no I/O.

Evasion is normalised away first: full-width characters (ＡＢＣ１２３), circled and
Chinese digits in phone numbers (①③⑧, 一三八), and spaces or symbols put between
characters ("1 3 8-1234 5678", "加 V 信").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Finding", "detect", "normalise"]


@dataclass(frozen=True)
class Finding:
    detector: str
    evidence: str


_CN_DIGITS = str.maketrans({"〇": "0", "零": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4",
                            "五": "5", "六": "6", "七": "7", "八": "8", "九": "9", "壹": "1", "贰": "2", "叁": "3",
                            "肆": "4", "伍": "5", "陆": "6", "柒": "7", "捌": "8", "玖": "9"})


def normalise(text: str) -> str:
    """NFKC (full-width → half-width, ① → 1) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


_SEPARATORS = r"[\s\-_.·•,，。、/|*~+]*"
_PHONE_DIGITS = re.compile(r"1" + "".join(_SEPARATORS + r"\d" for _ in range(10)))
_WECHAT_CUE = re.compile(
    r"(加|\+|添加|私|找)?" + _SEPARATORS + r"(微" + _SEPARATORS + r"信|威" + _SEPARATORS + r"信|薇" + _SEPARATORS + r"信|v" + _SEPARATORS + r"x|w" + _SEPARATORS + r"x|v" + _SEPARATORS + r"信|微" + _SEPARATORS + r"(号|x)|加" + _SEPARATORS + r"v(?![a-z]))"
)
_WECHAT_ID = re.compile(r"(?:微信号?|vx|wx|v信|威信|薇信|加\s*v)\s*[:：是为]?\s*([a-z][-_a-z0-9]{5,19})")
_URL = re.compile(
    r"(https?://[^\s]+|www\.[^\s]+|\b[a-z0-9][-a-z0-9]{0,62}\.(?:com|cn|net|org|cc|top|xyz|vip|shop|link|me|io)(?:/[^\s]*)?)"
)
_SHORT_LINK_HOSTS = ("t.cn", "dwz.cn", "url.cn", "suo.im", "bit.ly", "tinyurl.com")


def _phones(text: str) -> list[str]:
    digits_text = text.translate(_CN_DIGITS)
    found = []
    for match in _PHONE_DIGITS.finditer(digits_text):
        digits = re.sub(r"\D", "", match.group(0))
        before = digits_text[match.start() - 1] if match.start() else ""
        if len(digits) == 11 and digits[1] in "3456789" and not before.isdigit():
            found.append(digits)
    return found


def detect(text: str) -> list[Finding]:
    """All findings in one message, in a stable order."""
    norm = normalise(text)
    findings: list[Finding] = []
    for phone in _phones(norm):
        findings.append(Finding("phone", phone[:3] + "****" + phone[-4:]))
    ids = [m.group(1) for m in _WECHAT_ID.finditer(norm)]
    if ids:
        findings.extend(Finding("wechat_id", wid) for wid in ids)
    elif _WECHAT_CUE.search(norm) and (findings or re.search(r"[a-z0-9_]{6,}", norm)):
        findings.append(Finding("wechat_id", _WECHAT_CUE.search(norm).group(0)))  # type: ignore[union-attr]
    for url in _URL.findall(norm):
        kind = "short_link" if any(host in url for host in _SHORT_LINK_HOSTS) else "url"
        findings.append(Finding(kind, url[:200]))
    return findings
