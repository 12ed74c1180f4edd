"""RFM scores and segments, and the 80/20 (Pareto) view of revenue.

RFM over a window of ``window_days`` days ending on ``as_of`` (both ends included), for
every customer with a purchase in it:

- R = days from the last purchase to ``as_of`` (fewer is better),
- F = number of purchases (orders) in the window,
- M = their total amount.

Each dimension is scored 1–5 by quintile of its mid-rank over the window's buyers:
``score = 1 + ⌊5 · (w + t/2) / n⌋`` where w is the number of customers strictly worse on
that dimension and t the number with the same value (the customer included). Ties are
handled deterministically: equal values always get equal scores, whatever the order of
the rows, and a block of ties sits at the quintile of its middle (a dimension where
everyone is equal scores 3; when 60% bought once they all score 2) rather than being
split arbitrarily.

Segments come from the (R, F) grid below (the usual RFM map; M is reported, not used)::

          F=1             F=2                  F=3                  F=4        F=5
    R=5   new_customers   potential_loyalists  potential_loyalists  champions  champions
    R=4   promising       potential_loyalists  potential_loyalists  loyal      loyal
    R=3   about_to_sleep  about_to_sleep       need_attention       loyal      loyal
    R=2   hibernating     hibernating          at_risk              at_risk    cant_lose_them
    R=1   lost            lost                 at_risk              at_risk    cant_lose_them

Pareto: customers sorted by revenue; the top ⌈share · n⌉ customers' share of revenue,
the Lorenz curve (share of customers from the smallest up vs share of revenue) and the
Gini coefficient ``1 − (2 Σᵢ Lᵢ − 1) / n`` (trapezoids under the exact curve).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from siyu.analytics.transactions import IntArray, TransactionLog

SEGMENTS: dict[str, str] = {
    "champions": "Champions (重要价值客户): bought recently, buy often",
    "loyal": "Loyal (忠诚客户): buy often, not the most recent",
    "potential_loyalists": "Potential loyalists (潜力客户): recent, more than one purchase",
    "new_customers": "New customers (新客户): first purchase, very recent",
    "promising": "Promising (有潜力新客): recent, one purchase",
    "need_attention": "Need attention (需关注): middling recency and frequency",
    "about_to_sleep": "About to sleep (即将沉睡): middling recency, few purchases",
    "at_risk": "At risk (流失风险): used to buy often, not lately",
    "cant_lose_them": "Can't lose them (不能失去): bought the most, long ago",
    "hibernating": "Hibernating (沉睡客户): long ago, few purchases",
    "lost": "Lost (已流失): longest ago, fewest purchases",
}

# _GRID[r - 1][f - 1]
_GRID: tuple[tuple[str, ...], ...] = (
    ("lost", "lost", "at_risk", "at_risk", "cant_lose_them"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose_them"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential_loyalists", "potential_loyalists", "loyal", "loyal"),
    ("new_customers", "potential_loyalists", "potential_loyalists", "champions", "champions"),
)


def segment_of(r_score: int, f_score: int) -> str:
    """The named segment of an (R, F) score pair."""
    return _GRID[r_score - 1][f_score - 1]


def quintile_scores(values: Any, *, higher_is_better: bool = True) -> IntArray:
    """Scores 1–5: ``1 + ⌊5 · (w + t/2) / n⌋`` (see the module docstring), in integers."""
    v = np.asarray(values)
    n = v.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64)
    ordered = np.sort(v)
    below = np.searchsorted(ordered, v, side="left").astype(np.int64)
    ties = np.searchsorted(ordered, v, side="right").astype(np.int64) - below
    worse = below if higher_is_better else n - below - ties
    return (1 + (5 * (2 * worse + ties)) // (2 * n)).astype(np.int64)


@dataclass(frozen=True)
class RfmTable:
    """One row per customer who bought in the window (in ``customer_keys`` order)."""

    customer_keys: Any
    recency_days: IntArray
    frequency: IntArray
    monetary_cents: IntArray
    r_score: IntArray
    f_score: IntArray
    m_score: IntArray
    segment: Any

    def __len__(self) -> int:
        return int(self.recency_days.shape[0])


def rfm_table(log: TransactionLog, as_of_day: int, window_days: int) -> RfmTable:
    """Score the customers who bought on days ``as_of_day − window_days + 1 … as_of_day``."""
    if not log.has_amounts:
        raise ValueError("RFM needs purchase amounts")
    window = log.between(first_day=as_of_day - window_days + 1, last_day=as_of_day)
    if len(window) == 0:
        empty = np.empty(0, dtype=np.int64)
        return RfmTable(log.customer_keys[:0], empty, empty, empty, empty, empty, empty, np.empty(0, dtype=object))
    assert window.cents is not None
    customers, codes = np.unique(window.customer, return_inverse=True)
    codes = codes.reshape(-1)
    k = customers.shape[0]
    last = np.full(k, np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last, codes, window.day)
    frequency = np.bincount(codes, minlength=k).astype(np.int64)
    monetary = np.zeros(k, dtype=np.int64)
    np.add.at(monetary, codes, window.cents)
    recency = as_of_day - last
    r = quintile_scores(recency, higher_is_better=False)
    f = quintile_scores(frequency)
    m = quintile_scores(monetary)
    segments = np.array([segment_of(int(ri), int(fi)) for ri, fi in zip(r, f, strict=True)], dtype=object)
    return RfmTable(
        customer_keys=log.customer_keys[customers],
        recency_days=recency,
        frequency=frequency,
        monetary_cents=monetary,
        r_score=r,
        f_score=f,
        m_score=m,
        segment=segments,
    )


@dataclass(frozen=True)
class ParetoView:
    customers: int
    revenue_cents: int
    top_customers: int
    top_revenue_cents: int
    top_revenue_share: float
    lorenz: list[tuple[float, float]]
    gini: float


def pareto(revenue_cents: Any, *, top_share: float = 0.2, points: int = 20) -> ParetoView:
    """Revenue concentration of customers' totals (see the module docstring); ``points``
    Lorenz points at customer shares 0, 1/points, …, 1 (plus the end points)."""
    values = np.sort(np.asarray(revenue_cents, dtype=np.int64))
    n = int(values.shape[0])
    total = int(values.sum())
    if n == 0 or total <= 0:
        return ParetoView(n, total, 0, 0, 0.0, [(0.0, 0.0), (1.0, 1.0)] if n else [], 0.0)
    top = min(n, max(1, math.ceil(top_share * n - 1e-9)))
    top_revenue = int(values[n - top :].sum())
    cumulative = np.cumsum(values)
    lorenz: list[tuple[float, float]] = [(0.0, 0.0)]
    for i in range(1, points + 1):
        k = round(i * n / points)
        lorenz.append((k / n, float(cumulative[k - 1]) / total if k else 0.0))
    gini = 1.0 - (2.0 * float(cumulative.sum()) / total - 1.0) / n
    return ParetoView(
        customers=n,
        revenue_cents=total,
        top_customers=top,
        top_revenue_cents=top_revenue,
        top_revenue_share=top_revenue / total,
        lorenz=lorenz,
        gini=gini,
    )
