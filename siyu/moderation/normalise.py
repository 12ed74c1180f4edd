"""Text normalisation against evasion (反规避), pure functions.

Advertisers write ``加 V 信``, ``１３８－１２３４－５６７８``, ``①③⑧``, ``微.信`` or
traditional characters (``微信號``) to slip past keyword lists. Everything that matches is
done on normalised text:

- NFKC folds full-width to half-width and circled digits (①) to ASCII digits;
- a small shipped table maps traditional characters common in ads to simplified ones
  (no external dictionary download);
- :func:`squeeze` removes spaces and symbols put between characters.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["CN_DIGITS", "normalise", "squeeze", "squeeze_words", "to_digits", "words_text"]

#: traditional → simplified for characters that appear in ads, contacts and competitor
#: names; deliberately small: every entry is one the evasion corpus needs or a common
#: neighbour of one
_TRAD_SIMP = (
    "號号 微微 話话 電电 聯联 繫系 係系 加加 贈赠 領领 紅红 包包 錢钱 購购 買买 賣卖 價价 優优 惠惠 "
    "團团 鏈链 網网 點点 圖图 碼码 掃扫 關关 註注 冊册 費费 員员 會会 與与 為为 這这 個个 們们 來来 "
    "時时 說说 發发 廣广 告告 貨货 質质 單单 東东 車车 門门 問问 題题 業业 務务 機机 號号 寶宝 "
    "戶户 頭头 線线 絡络 們们 還还 進进 過过 們们 從从 對对 讓让 給给 請请 謝谢 們们 幣币 錢钱 "
    "鍊链 轉转 帳账 陽阳 陰阴 贊赞 讚赞 營营 銷销 獎奖 勵励 險险 證证 療疗 藥药 減减 肥肥 瘦瘦 "
    "兼兼 職职 賺赚 貸贷 款款 額额 現现 返返 傭佣 課课 程程 薦荐 導导 師师 講讲 學学 習习 "
)
_TRAD_TABLE = {ord(pair[0]): pair[1] for pair in _TRAD_SIMP.split() if len(pair) == 2 and pair[0] != pair[1]}
# ``str.translate`` looks every character up in a dict; one C regex scan says whether
# there is anything to translate at all (most messages have no traditional character)
_TRAD_CHARS = re.compile("[" + "".join(sorted(chr(c) for c in _TRAD_TABLE)) + "]")

#: Chinese numerals and their homoglyphs as digits (used for phone numbers only:
#: 一 and 两 are everyday words elsewhere)
CN_DIGITS = str.maketrans({
    "〇": "0", "零": "0", "一": "1", "幺": "1", "壹": "1", "二": "2", "两": "2", "贰": "2", "三": "3",
    "叁": "3", "四": "4", "肆": "4", "五": "5", "伍": "5", "六": "6", "陆": "6", "七": "7", "柒": "7", "八": "8", "捌": "8",
    "九": "9", "玖": "9",
})
# ``o`` and ``l`` only count as digits between digits; see :func:`to_digits`.
_LETTER_DIGITS = re.compile(r"(?<=\d)[ol]|[ol](?=\d)")

_NOT_WORD = re.compile(r"[^\w\u4e00-\u9fff\-]+")
_NOT_WORD_OR_ID = re.compile(r"[\W_]+")  # CJK ideographs are \w


def normalise(text: str) -> str:
    """NFKC (full-width → half-width, ① → 1), lower case, traditional → simplified."""
    if text.isascii():
        return text.lower()  # ASCII is NFKC-stable and has no traditional characters
    # the quick check is far cheaper than normalising text that is already normal
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    return text.translate(_TRAD_TABLE) if _TRAD_CHARS.search(text) else text


def squeeze(norm: str) -> str:
    """Normalised text without spaces and symbols, so ``微 . 信`` reads ``微信``.
    Underscores and hyphens are kept: they belong to WeChat ids; ``+``/``➕`` read as 加."""
    return _NOT_WORD.sub("", norm.replace("+", "加").replace("➕", "加"))


def squeeze_words(norm: str) -> str:
    """:func:`squeeze` without ``-`` and ``_`` too, in one pass: what word lists are
    matched on ("竞-品-宝" is "竞品宝")."""
    return _NOT_WORD_OR_ID.sub("", norm.replace("+", "加").replace("➕", "加"))


def to_digits(norm: str) -> str:
    """Chinese numerals (一三八, 壹叁捌) and o/l between digits as ASCII digits."""
    text = norm.translate(CN_DIGITS)
    return _LETTER_DIGITS.sub(lambda m: "0" if m.group(0) == "o" else "1", text)


# Where word lists are matched, normalising first and squeezing after costs a full NFKC
# pass over text that is mostly punctuation and emoji squeeze then throws away. For text
# made only of "plain" characters — no combining marks, no Hangul jamo, no final-sigma
# casing, and whose NFKC and lower case are plain too — NFKC, lower case, the
# traditional table and squeezing all work character by character, so the characters
# that squeeze to nothing can be dropped first. Which characters qualify is computed
# from the running Python's Unicode tables (a few blocks; CJK ideographs as a whole).
_PLAIN_BLOCKS = ((0x09, 0x0D), (0x20, 0x7E), (0xA0, 0xFF), (0x2000, 0x206F), (0x2100, 0x27BF), (0x3000, 0x303F),
                 (0xFF01, 0xFFEF), (0x1F000, 0x1FAFF))
_CJK = (0x4E00, 0x9FFF)  # unified ideographs: NFKC-stable, caseless, word characters
_HANGUL = ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7FF), (0xFFA0, 0xFFDC))


def _plain(text: str) -> bool:
    return not any(
        unicodedata.combining(ch) or unicodedata.category(ch)[0] == "M" or ch in "Σς" or any(a <= ord(ch) <= b for a, b in _HANGUL)
        for ch in text
    )


def _char_class(codes: list[int]) -> str:
    parts, start, prev = [], codes[0], codes[0]
    for code in [*codes[1:], -2]:
        if code == prev + 1:
            prev = code
            continue
        parts.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev != start else ""))
        start = prev = code
    return "[" + "".join(parts) + "]"


@functools.cache
def _plain_classes() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """``(plain, kept)``: a pattern for text made only of plain characters that need no
    traditional → simplified mapping (those go the long way: rare in chat), and one that
    finds the runs of characters squeezing keeps."""
    plain, dropped = [], []
    not_word = re.compile(r"[\W_]")
    for low, high in _PLAIN_BLOCKS:
        for code in range(low, high + 1):
            ch = chr(code)
            norm = unicodedata.normalize("NFKC", ch)
            if _plain(ch) and _plain(norm) and _plain(norm.lower()) and not _TRAD_CHARS.search(norm.lower()):
                plain.append(code)
                if not_word.match(ch) and squeeze_words(normalise(ch)) == "":
                    dropped.append(code)
    plain.extend(code for code in range(_CJK[0], _CJK[1] + 1) if code not in _TRAD_TABLE)
    return re.compile(_char_class(sorted(plain)) + "*"), re.compile("[^" + _char_class(dropped)[1:] + "+")


def words_text(text: str) -> str:
    """``squeeze_words(normalise(text))``, cheaper: for plain text the characters that
    squeeze to nothing (spaces, punctuation, emoji) are dropped before normalising, and
    there is no traditional character to map."""
    plain, kept = _plain_classes()
    if plain.fullmatch(text) is None:
        return squeeze_words(normalise(text))
    text = "".join(kept.findall(text))
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.lower()
    # isalnum() is exactly "every character is \w but not _": nothing left to squeeze
    return text if text.isalnum() else squeeze_words(text)
