"""Detectors (pure functions): a message in, findings out. No database, no I/O.

Evasion is normalised away first (see :mod:`siyu.moderation.normalise`): full-width
characters, circled and Chinese digits in phone numbers, traditional characters, and
spaces or symbols put between characters ("1 3 8-1234 5678", "加 V 信").

Word lists (sensitive words, competitor names) are matched with one Aho-Corasick
automaton per configuration, so the cost per message does not grow with the number of
words (a substring test per word, as many SCRMs do, does).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import ahocorasick

from siyu.moderation.normalise import normalise, squeeze, to_digits, words_text

__all__ = ["CARD_MSGTYPES", "DetectorConfig", "Finding", "WordMatcher", "detect", "normalise"]


@dataclass(frozen=True)
class Finding:
    detector: str
    evidence: str
    #: which configured rule fired (a word list's name); empty for built-in detectors
    rule: str = field(default="", compare=False)


def _for_words(squeezed: str) -> str:
    # ids keep "-" and "_"; words do not ("竞-品-宝" is "竞品宝")
    return squeezed.replace("-", "").replace("_", "")


class WordMatcher:
    """An Aho-Corasick automaton over normalised, squeezed words. ``entries`` are
    ``(word, list_name, detector)``; a word made only of ASCII letters/digits must stand
    alone (``vx`` does not fire inside ``nvxx``)."""

    def __init__(self, entries: Iterable[tuple[str, str, str]]) -> None:
        self._automaton = ahocorasick.Automaton()
        count = 0
        for word, list_name, detector in entries:
            key = _for_words(squeeze(normalise(word)))
            if not key:
                continue
            self._automaton.add_word(key, (key, list_name, detector, key.isascii()))
            count += 1
        self.size = count
        if count:
            self._automaton.make_automaton()

    def find(self, squeezed: str) -> list[Finding]:
        """The words in :func:`squeeze`-d text."""
        if not self.size:
            return []
        return self._find(_for_words(squeezed))

    def find_text(self, text: str) -> list[Finding]:
        """The words in a raw message: normalised and squeezed (one regex pass), then one
        Aho-Corasick scan."""
        if not self.size:
            return []
        return self._find(words_text(text))

    def _find(self, squeezed: str) -> list[Finding]:
        found: dict[tuple[str, str], Finding] | None = None
        for end, (key, list_name, detector, ascii_only) in self._automaton.iter(squeezed):
            start = end - len(key) + 1
            if ascii_only and (
                (start > 0 and squeezed[start - 1].isascii() and squeezed[start - 1].isalnum())
                or (end + 1 < len(squeezed) and squeezed[end + 1].isascii() and squeezed[end + 1].isalnum())
            ):
                continue
            if found is None:
                found = {}
            found.setdefault((detector, key), Finding(detector, key, list_name))
        return list(found.values()) if found else []


EMPTY_MATCHER = WordMatcher(())


@dataclass(frozen=True)
class DetectorConfig:
    words: WordMatcher = EMPTY_MATCHER
    own_domains: tuple[str, ...] = ()
    own_qr_prefixes: tuple[str, ...] = ()
    flood_count: int = 3  # the same text this many times in the window is flooding


#: message types that are cards pointing elsewhere (小程序卡片, 链接卡片, 名片)
CARD_MSGTYPES = {
    "miniprogram": "mini_program", "weapp": "mini_program", "link": "link_card", "news": "link_card",
    "card": "contact_card", "business_card": "contact_card",
}

_SEP = r"[\s\-_.·•,，。、/|*~+()（）\[\]【】]*"
_DIGIT_RUN = re.compile(r"\d(?:" + _SEP + r"\d)*")
_SEP_SPLIT = re.compile(_SEP.replace("*", "+"))
#: how a real phone number is written: 13812345678, 138 1234 5678, 138-12345678, 1381234 5678
_PHONE_SHAPES = {(11,), (3, 4, 4), (3, 8), (7, 4), (4, 3, 4), (3, 3, 5)}

# cues for a WeChat/QQ contact, matched on squeezed text (separators already removed)
_WECHAT_CUE = re.compile(
    r"(?<![a-z])(?:微信号?|威信|薇信|维信|v信|vx|wx|weixin|wechat|卫星号|绿泡泡|加v(?![a-z])|加微(?!博|商|笑|调|软)|qq号?|扣扣)"
)
_WECHAT_ID = re.compile(
    r"(?<![a-z])(?:微信号?|威信|薇信|维信|v信|vx|wx|weixin|wechat|加v|加微)(?:号|是|为|:|：)?([a-z][-_a-z0-9]{5,19})"
)
_QQ = re.compile(r"(?<![a-z])(?:qq号?|扣扣)(?:号|是|为)?(\d{5,11})(?!\d)")
_URL = re.compile(
    r"(https?://[^\s\u4e00-\u9fff]+|www\.[^\s\u4e00-\u9fff]+"
    r"|\b[a-z0-9][-a-z0-9]{0,62}(?:\.[a-z0-9][-a-z0-9]{0,62})*\.(?:com|cn|net|org|cc|top|xyz|vip|shop|link|me|io|ltd|site|club)\b(?:/[^\s\u4e00-\u9fff]*)?)"
)
# "www点abc点com" style evasion, on squeezed text
_SPELLED_URL = re.compile(r"([a-z0-9]{2,}(?:点|dot|。)(?:[a-z0-9]{2,}(?:点|dot|。))*(?:com|cn|net|top|vip|xyz|cc))(?![a-z])")
SHORT_LINK_HOSTS = ("t.cn", "dwz.cn", "url.cn", "suo.im", "bit.ly", "tinyurl.com", "s.id", "c.tb.cn", "m.tb.cn", "u.jd.com")
_RED_PACKET = re.compile(
    r"(?:加我|加群|进群|扫码|私聊|私信|点击|关注|添加|拉人|邀请)[^。！!?？\n]{0,8}(?:领|抢|送|得|发)[^。！!?？\n]{0,3}红包"
    r"|红包群|红包福利群|好评返现|返现红包|扫码领红包|每天(?:领|发)红包|红包(?:返利|代发|兼职)"
)


def _phones(norm: str) -> list[str]:
    digits_text = to_digits(norm)
    found = []
    for run in _DIGIT_RUN.finditer(digits_text):
        before = digits_text[run.start() - 1] if run.start() else ""
        if before.isascii() and before.isalpha():
            continue  # part of an id (abc13812345678) is the WeChat detector's business
        groups = [g for g in _SEP_SPLIT.split(run.group(0)) if g]
        for i in range(len(groups)):
            total = 0
            for j in range(i, len(groups)):
                total += len(groups[j])
                if total > 11:
                    break
                if total < 11:
                    continue
                window = groups[i : j + 1]
                shape = tuple(len(g) for g in window)
                spaced = len(window) >= 5 and max(shape) <= 2  # 1 3 8 1 2 3 4 5 6 7 8
                number = "".join(window)
                if (shape in _PHONE_SHAPES or spaced) and number[0] == "1" and number[1] in "3456789":
                    found.append(number)
    return found


def _host(url: str) -> str:
    host = re.sub(r"^https?://", "", url).split("/", 1)[0].split(":", 1)[0]
    return host.removeprefix("www.")


def _own(host: str, own_domains: Sequence[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in own_domains)


def detect(
    text: str,
    config: DetectorConfig | None = None,
    *,
    msgtype: str = "text",
    data: dict | None = None,
    qr_payloads: Sequence[str] = (),
    repeats: int = 0,
) -> list[Finding]:
    """All findings in one message, in a stable order. ``qr_payloads`` are the QR codes
    decoded from an attached image (:func:`siyu.moderation.qr.decode_qr`); ``repeats`` is
    how many times the sender already posted the same text in the flood window."""
    config = config or DetectorConfig()
    data = data or {}
    norm = normalise(text)
    squeezed = squeeze(norm)
    findings: list[Finding] = []
    for phone in _phones(norm):
        findings.append(Finding("phone", phone[:3] + "****" + phone[-4:]))
    ids = [m.group(1) for m in _WECHAT_ID.finditer(squeezed)]
    ids += [m.group(1) for m in _QQ.finditer(squeezed)]
    if ids:
        findings.extend(Finding("wechat_id", wid) for wid in dict.fromkeys(ids))
    elif (cue := _WECHAT_CUE.search(squeezed)) and (findings or re.search(r"[a-z0-9_]{6,}", squeezed)):
        findings.append(Finding("wechat_id", cue.group(0)))
    urls = [u.rstrip(".,;:!?)") for u in _URL.findall(norm)]
    urls += [m.group(1).replace("点", ".").replace("dot", ".").replace("。", ".") for m in _SPELLED_URL.finditer(squeezed)]
    for url in dict.fromkeys(urls):
        host = _host(url)
        if _own(host, config.own_domains):
            continue
        kind = "short_link" if host in SHORT_LINK_HOSTS else "url"
        findings.append(Finding(kind, url[:200]))
    if (card := CARD_MSGTYPES.get(msgtype)) is not None:
        target = str(data.get("url") or data.get("appid") or data.get("title") or msgtype)
        if not (card == "link_card" and _own(_host(target.lower()), config.own_domains)):
            findings.append(Finding(card, target[:200]))
    if (packet := _RED_PACKET.search(squeezed)) is not None:
        findings.append(Finding("red_packet", packet.group(0)))
    for payload in qr_payloads:
        if not any(payload.startswith(prefix) for prefix in config.own_qr_prefixes):
            findings.append(Finding("qr_code", payload[:200] or "(unreadable QR)"))
    findings.extend(config.words.find(squeezed))
    if repeats + 1 >= config.flood_count and norm.strip():
        findings.append(Finding("flood", f"{repeats + 1}× {text[:50]}"))
    return findings
