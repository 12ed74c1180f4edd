"""RFM quintile scores and segments (table-driven), and the Pareto view."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from siyu.analytics import rfm
from siyu.analytics.transactions import TransactionLog

AS_OF = 1000
# customer: (recency days, purchases, yuan per purchase) → expected (R, F, M, segment)
TABLE = {
    "c0": ((0, 5, 200), (5, 5, 5, "champions")),
    "c1": ((5, 3, 100), (5, 5, 4, "champions")),
    "c2": ((5, 1, 500), (5, 2, 4, "potential_loyalists")),
    "c3": ((10, 2, 50), (4, 4, 3, "loyal")),
    "c4": ((30, 1, 80), (3, 2, 3, "about_to_sleep")),
    "c5": ((60, 1, 80), (3, 2, 3, "about_to_sleep")),
    "c6": ((90, 2, 300), (2, 4, 5, "at_risk")),
    "c7": ((120, 1, 20), (2, 2, 1, "hibernating")),
    "c8": ((200, 1, 60), (1, 2, 2, "lost")),
    "c9": ((300, 1, 10), (1, 2, 1, "lost")),
}


def _log() -> TransactionLog:
    customers, days, cents = [], [], []
    for customer, ((recency, purchases, price), _) in TABLE.items():
        for k in range(purchases):
            customers.append(customer)
            days.append(AS_OF - recency - 7 * k)
            cents.append(price * 100)
    # outside the 365-day window: ignored, and "old" never appears
    customers += ["c9", "old"]
    days += [AS_OF - 365, AS_OF - 400]
    cents += [99_900, 5_000]
    # after as_of: ignored
    customers.append("c8")
    days.append(AS_OF + 1)
    cents.append(100_000)
    return TransactionLog.from_rows(customers, days, cents)


def test_rfm_scores_and_segments_table():
    # when
    table = rfm.rfm_table(_log(), AS_OF, 365)
    # then
    got = {
        key: (int(r), int(f), int(m), str(seg))
        for key, r, f, m, seg in zip(table.customer_keys.tolist(), table.r_score, table.f_score, table.m_score, table.segment, strict=True)
    }
    assert got == {customer: expected for customer, (_, expected) in TABLE.items()}
    index = table.customer_keys.tolist().index("c0")
    assert (int(table.recency_days[index]), int(table.frequency[index]), int(table.monetary_cents[index])) == (0, 5, 100_000)


def test_rfm_scores_do_not_depend_on_row_order():
    log = _log()
    order = np.random.default_rng(3).permutation(len(log))
    shuffled = TransactionLog(log.customer_keys, log.customer[order], log.day[order], log.cents[order] if log.cents is not None else None)
    a, b = rfm.rfm_table(log, AS_OF, 365), rfm.rfm_table(shuffled, AS_OF, 365)
    assert a.r_score.tolist() == b.r_score.tolist() and a.f_score.tolist() == b.f_score.tolist() and a.m_score.tolist() == b.m_score.tolist()


@pytest.mark.parametrize(
    ("values", "higher_is_better", "scores"),
    [
        ([1, 1, 1, 1, 1, 1, 2, 2, 3, 5], True, [2, 2, 2, 2, 2, 2, 4, 4, 5, 5]),
        ([10, 20, 30, 40, 50], True, [1, 2, 3, 4, 5]),
        ([10, 20, 30, 40, 50], False, [5, 4, 3, 2, 1]),
        ([7, 7, 7], True, [3, 3, 3]),
        ([7, 7, 7], False, [3, 3, 3]),
        ([3], True, [3]),
        ([5, 5, 1, 1], False, [2, 2, 4, 4]),
        (list(range(100)), True, [1 + k // 20 for k in range(100)]),
    ],
)
def test_quintile_scores(values, higher_is_better, scores):
    assert rfm.quintile_scores(values, higher_is_better=higher_is_better).tolist() == scores


def test_segment_grid_covers_every_cell_with_the_eleven_segments():
    cells = {segment_of for segment_of in (rfm.segment_of(r, f) for r, f in itertools.product(range(1, 6), repeat=2))}
    assert cells == set(rfm.SEGMENTS)
    assert len(rfm.SEGMENTS) == 11
    assert (rfm.segment_of(5, 5), rfm.segment_of(1, 5), rfm.segment_of(1, 1), rfm.segment_of(3, 3)) == (
        "champions", "cant_lose_them", "lost", "need_attention",
    )


def test_empty_window_gives_an_empty_table():
    assert len(rfm.rfm_table(_log(), AS_OF - 2000, 30)) == 0


def test_pareto_share_lorenz_and_gini():
    # given: one customer with ¥10 and nine with ¥1
    view = rfm.pareto([1000] + [100] * 9, top_share=0.2, points=5)
    # then: the top 2 of 10 bring 1,100 of 1,900 cents
    assert (view.customers, view.revenue_cents, view.top_customers, view.top_revenue_cents) == (10, 1900, 2, 1100)
    assert view.top_revenue_share == pytest.approx(1100 / 1900)
    assert view.lorenz == [(0.0, 0.0), (0.2, 200 / 1900), (0.4, 400 / 1900), (0.6, 600 / 1900), (0.8, 800 / 1900), (1.0, 1.0)]
    assert view.gini == pytest.approx(1 - (2 * 6400 / 1900 - 1) / 10)


def test_pareto_eighty_twenty():
    view = rfm.pareto([40_000, 2_500, 2_500, 2_500, 2_500])
    assert (view.top_customers, view.top_revenue_share) == (1, 0.8)


def test_pareto_of_equal_customers_has_no_concentration():
    view = rfm.pareto([500] * 8, points=4)
    assert view.gini == pytest.approx(0.0, abs=1e-12)
    assert view.top_revenue_share == pytest.approx(2 / 8)


def test_pareto_of_nobody():
    view = rfm.pareto([])
    assert (view.customers, view.revenue_cents, view.top_customers, view.lorenz, view.gini) == (0, 0, 0, [], 0.0)
