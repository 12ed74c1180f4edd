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

import re
import unicodedata

__all__ = ["CN_DIGITS", "normalise", "squeeze", "to_digits"]

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
_TRAD_TABLE = {ord(pair[0]): pair[1] for pair in _TRAD_SIMP.split() if len(pair) == 2}

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


def normalise(text: str) -> str:
    """NFKC (full-width → half-width, ① → 1), lower case, traditional → simplified."""
    return unicodedata.normalize("NFKC", text).lower().translate(_TRAD_TABLE)


def squeeze(norm: str) -> str:
    """Normalised text without spaces and symbols, so ``微 . 信`` reads ``微信``.
    Underscores and hyphens are kept: they belong to WeChat ids; ``+``/``➕`` read as 加."""
    return _NOT_WORD.sub("", norm.replace("+", "加").replace("➕", "加"))


def to_digits(norm: str) -> str:
    """Chinese numerals (一三八, 壹叁捌) and o/l between digits as ASCII digits."""
    text = norm.translate(CN_DIGITS)
    return _LETTER_DIGITS.sub(lambda m: "0" if m.group(0) == "o" else "1", text)
