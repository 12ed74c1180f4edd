"""The sales formula identity and the decomposition of revenue changes (LMDI, Shapley)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.analytics.sales import FACTORS, SalesFormula, decompose


def formula(traffic: int, buyers: int, purchases: int, revenue: str, reached: int | None = None) -> SalesFormula:
    return SalesFormula(reached=traffic if reached is None else reached, traffic=traffic, buyers=buyers, purchases=purchases, revenue=Decimal(revenue))


def test_identity_holds_exactly():
    f = formula(100, 10, 15, "4500.00")
    assert (f.conversion_rate, f.purchases_per_buyer, f.aov) == (Fraction(1, 10), Fraction(3, 2), Fraction(300))
    assert f.identity_holds


def test_identity_holds_with_awkward_fractions():
    f = formula(7, 3, 11, "1000.01")
    assert f.identity_holds
    assert float(f.aov or 0) == pytest.approx(1000.01 / 11)


def test_inconsistent_counts_are_refused():
    with pytest.raises(ValueError, match="inconsistent counts"):
        formula(5, 6, 6, "10.00")


def test_only_traffic_changed():
    a, b = formula(100, 10, 10, "1000.00"), formula(200, 20, 20, "2000.00")
    assert decompose(a, b) == {"traffic": Decimal("1000.00"), "conversion_rate": Decimal("0.00"), "purchases_per_buyer": Decimal("0.00"), "aov": Decimal("0.00")}


def test_lmdi_two_factors():
    # given: conversion doubles and AOV goes from 100 to 150; revenue 1000 → 3000
    a, b = formula(100, 10, 10, "1000.00"), formula(100, 20, 20, "3000.00")
    # then: L(3000, 1000) · ln 2 and L · ln 1.5, with L = 2000 / ln 3
    assert decompose(a, b, "lmdi") == {
        "traffic": Decimal("0.00"), "conversion_rate": Decimal("1261.86"), "purchases_per_buyer": Decimal("0.00"), "aov": Decimal("738.14"),
    }


def test_shapley_two_factors():
    a, b = formula(100, 10, 10, "1000.00"), formula(100, 20, 20, "3000.00")
    # ½(Δc)(a₀+a₁)·T·p = 1250 and ½(Δa)(c₀+c₁)·T·p = 750
    assert decompose(a, b, "shapley") == {
        "traffic": Decimal("0.00"), "conversion_rate": Decimal("1250.00"), "purchases_per_buyer": Decimal("0.00"), "aov": Decimal("750.00"),
    }


def test_zero_periods():
    nothing = formula(0, 0, 0, "0")
    reached_no_buyers = formula(50, 0, 0, "0")
    busy = formula(100, 10, 12, "1234.56")
    assert decompose(nothing, nothing) == dict.fromkeys(FACTORS, Decimal("0.00"))
    assert decompose(nothing, busy) == {"traffic": Decimal("1234.56"), "conversion_rate": Decimal("0.00"), "purchases_per_buyer": Decimal("0.00"), "aov": Decimal("0.00")}
    assert decompose(busy, reached_no_buyers) == {
        "traffic": Decimal("0.00"), "conversion_rate": Decimal("-1234.56"), "purchases_per_buyer": Decimal("0.00"), "aov": Decimal("0.00"),
    }
    shapley = decompose(nothing, busy, "shapley")
    assert sum(shapley.values()) == Decimal("1234.56")


periods = st.builds(
    lambda traffic, buyer_share, extra, cents: (traffic, buyer_share, extra, cents),
    st.integers(0, 100_000), st.floats(0, 1), st.integers(0, 50), st.integers(1, 10**10),
)


def _period(spec: tuple[int, float, int, int]) -> SalesFormula:
    traffic, share, extra, cents = spec
    buyers = int(traffic * share)
    purchases = buyers + (extra if buyers else 0)
    revenue = (Decimal(cents) / 100) if purchases else Decimal("0.00")
    return SalesFormula(reached=traffic, traffic=traffic, buyers=buyers, purchases=purchases, revenue=revenue)


@settings(max_examples=300, deadline=None)
@given(periods, periods, st.sampled_from(["lmdi", "shapley"]))
def test_contributions_sum_to_the_change_to_the_cent(spec_a, spec_b, method):
    a, b = _period(spec_a), _period(spec_b)
    contributions = decompose(a, b, method)
    assert set(contributions) == set(FACTORS)
    assert all(value == value.quantize(Decimal("0.01")) for value in contributions.values())
    assert sum(contributions.values(), Decimal(0)) == b.revenue - a.revenue
    assert a.identity_holds and b.identity_holds
