"""Plausible Chinese personal names for generated contacts and staff.

Surnames carry rough frequency weights (王/李/张 are common, 欧阳 is rare) so a list of
5,000 customers reads like a real one; a few contacts go by an English nickname, as
many do in WeCom.
"""

from __future__ import annotations

import random

# (surname, relative weight) — roughly the national frequency ranking.
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.4), ("陈", 4.5), ("杨", 3.1), ("黄", 2.2), ("赵", 2.0),
    ("吴", 1.9), ("周", 1.9), ("徐", 1.5), ("孙", 1.5), ("马", 1.4), ("朱", 1.3), ("胡", 1.3), ("郭", 1.1),
    ("何", 1.1), ("林", 1.1), ("高", 1.0), ("罗", 0.9), ("郑", 0.9), ("梁", 0.9), ("谢", 0.8), ("宋", 0.7),
    ("唐", 0.7), ("许", 0.7), ("韩", 0.7), ("冯", 0.7), ("邓", 0.6), ("曹", 0.6), ("彭", 0.6), ("曾", 0.6),
    ("肖", 0.6), ("田", 0.5), ("董", 0.5), ("潘", 0.5), ("袁", 0.5), ("蔡", 0.5), ("蒋", 0.5), ("余", 0.5),
    ("于", 0.5), ("杜", 0.4), ("叶", 0.4), ("程", 0.4), ("魏", 0.4), ("苏", 0.4), ("吕", 0.4), ("丁", 0.4),
    ("任", 0.4), ("沈", 0.4), ("姚", 0.4), ("卢", 0.4), ("姜", 0.3), ("崔", 0.3), ("钟", 0.3), ("谭", 0.3),
    ("陆", 0.3), ("汪", 0.3), ("范", 0.3), ("金", 0.3), ("石", 0.3), ("廖", 0.3), ("贾", 0.3), ("夏", 0.3),
    ("韦", 0.3), ("方", 0.3), ("白", 0.2), ("邹", 0.2), ("孟", 0.2), ("熊", 0.2), ("秦", 0.2), ("邱", 0.2),
    ("江", 0.2), ("尹", 0.2), ("薛", 0.2), ("段", 0.2), ("雷", 0.2), ("侯", 0.2), ("龙", 0.2), ("史", 0.2),
    ("陶", 0.2), ("黎", 0.2), ("贺", 0.2), ("顾", 0.2), ("毛", 0.2), ("郝", 0.2), ("龚", 0.2), ("邵", 0.2),
    ("万", 0.1), ("钱", 0.1), ("严", 0.1), ("戴", 0.1), ("莫", 0.1), ("孔", 0.1), ("汤", 0.1), ("欧阳", 0.05),
    ("上官", 0.02), ("司马", 0.02),
)

FEMALE_GIVEN = (
    "婷", "静", "丽", "敏", "燕", "娟", "艳", "霞", "芳", "玲", "雪", "琳", "悦", "欣", "怡", "佳", "雨", "晴",
    "萱", "涵", "璐", "瑶", "慧", "洁", "颖", "蕾", "萌", "菲", "倩", "薇", "彤", "妍", "诗", "梦", "思", "可",
    "心", "晓", "月", "岚", "楠", "露", "茜", "莉", "媛", "婧", "嘉", "梓", "一", "若", "语", "安", "然", "馨",
)
MALE_GIVEN = (
    "伟", "强", "磊", "军", "洋", "勇", "杰", "涛", "明", "超", "浩", "宇", "鹏", "辉", "斌", "俊", "峰", "晨",
    "昊", "博", "凯", "航", "哲", "泽", "睿", "轩", "文", "宁", "远", "志", "嘉", "子", "一", "然",
)
# WeCom display names are often nicknames; a fashion brand's customers skew young.
NICKNAMES = (
    "Amy", "Cici", "Coco", "Vivian", "Cathy", "Luna", "Yoyo", "Grace", "Emma", "Kiki", "Lily", "Nina", "Stella",
    "Zoe", "Ivy", "Jenny", "Wendy", "Sherry", "Mia", "Echo", "Tina", "Sunny",
)
MALE_NICKNAMES = ("Kevin", "Leo", "Jason", "Eric", "Tony", "Max", "Ryan", "Sam")

_SURNAME_VALUES = tuple(s for s, _ in SURNAMES)
_SURNAME_CUM_WEIGHTS: tuple[float, ...] = tuple(
    sum(w for _, w in SURNAMES[: i + 1]) for i in range(len(SURNAMES))
)


def surname(rng: random.Random) -> str:
    return rng.choices(_SURNAME_VALUES, cum_weights=_SURNAME_CUM_WEIGHTS)[0]


def given_name(rng: random.Random, female: bool) -> str:
    chars = FEMALE_GIVEN if female else MALE_GIVEN
    first = rng.choice(chars)
    if rng.random() < 0.3:
        return first
    second = rng.choice(chars)
    # 叠字 (婷婷, 晨晨) is common for women's names; for other pairs avoid doubles.
    if second == first and not female:
        second = rng.choice(chars)
    return first + second


def person_name(rng: random.Random, female: bool) -> str:
    """A customer's display name: mostly 姓+名, sometimes an English nickname alone or
    with the surname (``Cathy 陈``)."""
    roll = rng.random()
    if roll < 0.04:
        return rng.choice(NICKNAMES if female else MALE_NICKNAMES)
    if roll < 0.07:
        return f"{rng.choice(NICKNAMES if female else MALE_NICKNAMES)} {surname(rng)}"
    return surname(rng) + given_name(rng, female)
