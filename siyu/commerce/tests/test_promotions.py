"""满减 calculator: the best plan for a basket, table-driven with edge amounts (exactly
at a threshold, one cent below, zero, huge), checked against brute force, and the
anchoring hints ("再买 ¥37 立减 50")."""

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siyu.commerce.promotions import (
    CouponOffer,
    Promotion,
    Tier,
    TierUse,
    anchoring_hint,
    best_promotion,
    coupon_discount,
    promotion_discount,
)

TIERED = Promotion("满减", (Tier(D(200), D(50)), Tier(D(500), D(150))))
EVERY_200 = Promotion("每满200减50", (Tier(D(200), D(50)),), stackable=True)
STACKED = Promotion("叠加满减", (Tier(D(200), D(50)), Tier(D(500), D(150))), stackable=True)
CAPPED = Promotion("每满100减10封顶30", (Tier(D(100), D(10)),), stackable=True, cap=D(30))
SOLO = Promotion("满200减50不与券同享", (Tier(D(200), D(50)),), stacks_with_coupons=False)
THREE_HUNDRED = Promotion("满300减80", (Tier(D(300), D(80)),))

FIXED_20 = CouponOffer("FIX20", "fixed", D(20))
FIXED_60 = CouponOffer("FIX60", "fixed", D(60))
THRESHOLD_300_40 = CouponOffer("T300", "threshold", D(40), threshold=D(300))
PERCENT_20_CAP_50 = CouponOffer("P20", "percent", D(20), percent_cap=D(50))


def uses(*pairs):
    return tuple(TierUse(D(t).quantize(D("0.01")), D(d).quantize(D("0.01")), n) for t, d, n in pairs)


PLANS = [
    # basket, promotions, coupons → discount, promotion, coupon, tiers used
    ("0", [TIERED], [], "0.00", None, None, ()),
    ("199.99", [TIERED], [], "0.00", None, None, ()),
    ("200.00", [TIERED], [], "50.00", "满减", None, uses((200, 50, 1))),
    ("200.01", [TIERED], [], "50.00", "满减", None, uses((200, 50, 1))),
    ("499.99", [TIERED], [], "50.00", "满减", None, uses((200, 50, 1))),
    ("500.00", [TIERED], [], "150.00", "满减", None, uses((500, 150, 1))),
    ("99999999999.99", [TIERED], [], "150.00", "满减", None, uses((500, 150, 1))),
    ("399.99", [EVERY_200], [], "50.00", "每满200减50", None, uses((200, 50, 1))),
    ("400.00", [EVERY_200], [], "100.00", "每满200减50", None, uses((200, 50, 2))),
    ("1000000000.00", [EVERY_200], [], "250000000.00", "每满200减50", None, uses((200, 50, 5_000_000))),
    # Stackable tiers combine: 900 = 500 + 200 + 200 → 150 + 50 + 50, better than 4 × 200.
    ("900.00", [STACKED], [], "250.00", "叠加满减", None, uses((500, 150, 1), (200, 50, 2))),
    ("899.99", [STACKED], [], "200.00", "叠加满减", None, uses((500, 150, 1), (200, 50, 1))),
    ("1000000299.99", [STACKED], [], "300000050.00", "叠加满减", None, uses((500, 150, 2_000_000), (200, 50, 1))),
    ("299.99", [CAPPED], [], "20.00", "每满100减10封顶30", None, uses((100, 10, 2))),
    ("300.00", [CAPPED], [], "30.00", "每满100减10封顶30", None, uses((100, 10, 3))),
    ("1000.00", [CAPPED], [], "30.00", "每满100减10封顶30", None, uses((100, 10, 10))),
    # The best promotion wins; only one applies.
    ("400.00", [TIERED, EVERY_200], [], "100.00", "每满200减50", None, uses((200, 50, 2))),
    ("500.00", [TIERED, EVERY_200], [], "150.00", "满减", None, uses((500, 150, 1))),
    # Coupons apply after the promotion, on what is left.
    ("199.99", [TIERED], [FIXED_20], "20.00", None, "FIX20", ()),
    ("520.00", [TIERED], [FIXED_20], "170.00", "满减", "FIX20", uses((500, 150, 1))),
    ("420.00", [TIERED], [THRESHOLD_300_40], "90.00", "满减", "T300", uses((200, 50, 1))),
    ("340.00", [TIERED], [THRESHOLD_300_40], "50.00", "满减", None, uses((200, 50, 1))),
    ("349.99", [TIERED], [THRESHOLD_300_40, FIXED_20], "70.00", "满减", "FIX20", uses((200, 50, 1))),
    ("350.00", [TIERED], [FIXED_20, THRESHOLD_300_40], "90.00", "满减", "T300", uses((200, 50, 1))),
    # A promotion that does not stack with coupons: the better of the two alone.
    ("250.00", [SOLO], [FIXED_20], "50.00", "满200减50不与券同享", None, uses((200, 50, 1))),
    ("250.00", [SOLO], [FIXED_60], "60.00", None, "FIX60", ()),
    # A tie keeps the coupon for later.
    ("250.00", [SOLO], [CouponOffer("FIX50", "fixed", D(50))], "50.00", "满200减50不与券同享", None, uses((200, 50, 1))),
    # Percentage coupons: rounded half up to the cent, capped.
    ("33.33", [], [PERCENT_20_CAP_50], "6.67", None, "P20", ()),
    ("1000.00", [], [PERCENT_20_CAP_50], "50.00", None, "P20", ()),
    ("0.10", [], [CouponOffer("P15", "percent", D(15))], "0.02", None, "P15", ()),
    # A coupon never takes off more than is left to pay.
    ("15.00", [], [FIXED_20], "15.00", None, "FIX20", ()),
]


@pytest.mark.parametrize(("basket", "promotions", "coupons", "discount", "promotion", "coupon", "tiers"), PLANS)
def test_best_plan_for_each_basket(basket, promotions, coupons, discount, promotion, coupon, tiers):
    plan = best_promotion(D(basket), promotions, coupons)

    assert (plan.discount, plan.promotion, plan.coupon, plan.tiers_used) == (D(discount), promotion, coupon, tiers)
    assert plan.payable == D(basket) - D(discount)
    assert plan.discount == plan.promotion_discount + plan.coupon_discount


def test_plan_explains_itself():
    plan = best_promotion(D("920"), [STACKED], [FIXED_20])

    assert plan.explanation == ("叠加满减: 1×满500减150 + 2×满200减50 = -¥250", "券 FIX20: -¥20")
    assert (plan.basket_total, plan.payable) == (D("920.00"), D("650.00"))


HINTS = [
    # basket, promotions → add, to_save, extra, text
    ("163", [TIERED], "37.00", "50.00", "50.00", "再买 ¥37 立减 50"),
    ("163.50", [TIERED], "36.50", "50.00", "50.00", "再买 ¥36.5 立减 50"),
    ("0", [TIERED], "200.00", "50.00", "50.00", "再买 ¥200 立减 50"),
    ("199.99", [TIERED], "0.01", "50.00", "50.00", "再买 ¥0.01 立减 50"),
    ("200.00", [TIERED], "300.00", "150.00", "100.00", "再买 ¥300 立减 150"),
    ("399.99", [EVERY_200], "0.01", "100.00", "50.00", "再买 ¥0.01 立减 100"),
    ("900.00", [STACKED], "100.00", "300.00", "50.00", "再买 ¥100 立减 300"),
    ("250.00", [TIERED, THREE_HUNDRED], "50.00", "80.00", "30.00", "再买 ¥50 立减 80"),
    ("99999999999.00", [EVERY_200], "1.00", "25000000000.00", "50.00", "再买 ¥1 立减 25000000000"),
]


@pytest.mark.parametrize(("basket", "promotions", "add", "to_save", "extra", "text"), HINTS)
def test_anchoring_hint_points_at_the_next_tier(basket, promotions, add, to_save, extra, text):
    hint = anchoring_hint(D(basket), promotions)

    assert hint is not None
    assert (hint["add"], hint["to_save"], hint["extra"], hint["text"]) == (D(add), D(to_save), D(extra), text)


@pytest.mark.parametrize(("basket", "promotions"), [("500.00", [TIERED]), ("300.00", [CAPPED]), ("50", [])])
def test_no_hint_when_nothing_is_ahead(basket, promotions):
    assert anchoring_hint(D(basket), promotions) is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Tier(D(100), D(101)), "满100减101: the discount exceeds the threshold"),
        (lambda: Tier(D(0), D(1)), "a tier needs a threshold and a discount above zero"),
        (lambda: Promotion("x", ()), "a promotion needs at least one tier"),
        (lambda: Promotion("x", (Tier(D(100), D(10)), Tier(D(100), D(20)))), "two tiers have the same threshold"),
        (lambda: Promotion("x", (Tier(D(100), D(10)),), cap=D(0)), "the cap must be above zero"),
        (lambda: Promotion("x", (Tier(D("199.99"), D(10)), Tier(D("299.97"), D(20))), stackable=True),
         "the tiers are too fine-grained to combine; use thresholds in whole ¥10 or fewer tiers"),
        (lambda: best_promotion(D(-1), [TIERED]), "the basket total cannot be negative"),
    ],
)
def test_invalid_promotions_are_refused(build, message):
    with pytest.raises(ValueError) as caught:
        build()
    assert str(caught.value) == message


def _brute_force(tiers, total_cents):
    """Every combination of tier counts (tiny inputs only)."""
    best = 0

    def walk(index, left, value):
        nonlocal best
        if index == len(tiers):
            best = max(best, value)
            return
        threshold, discount = tiers[index]
        for count in range(left // threshold + 1):
            walk(index + 1, left - count * threshold, value + count * discount)

    walk(0, total_cents, 0)
    return D(best) / 100


@settings(max_examples=300, deadline=None)
@given(
    tiers=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40)), min_size=1, max_size=3, unique_by=lambda t: t[0]),
    scale=st.sampled_from([1, 10, 100]),
    total_cents=st.integers(0, 300_000),
)
def test_stacking_finds_the_best_combination(tiers, scale, total_cents):
    # given tiers (threshold in yuan × scale, discount never above its threshold)
    pairs = [(t * scale * 100, min(d, t) * scale * 100 // 4 or 1) for t, d in tiers]
    promotion = Promotion("p", tuple(Tier(D(t) / 100, D(d) / 100) for t, d in pairs), stackable=True)
    total = D(total_cents) / 100

    # then the knapsack search agrees with trying every combination
    assert promotion_discount(promotion, total) == _brute_force(pairs, total_cents)


@settings(max_examples=200, deadline=None)
@given(
    basket=st.decimals(min_value=0, max_value=100_000, places=2),
    more=st.decimals(min_value=0, max_value=1_000, places=2),
)
def test_discounts_never_exceed_the_basket_and_never_shrink_as_it_grows(basket, more):
    for promotion in (TIERED, EVERY_200, STACKED, CAPPED):
        low, high = promotion_discount(promotion, basket), promotion_discount(promotion, basket + more)
        assert D(0) <= low <= basket
        assert low <= high
    plan = best_promotion(basket, [TIERED, STACKED], [FIXED_20, THRESHOLD_300_40, PERCENT_20_CAP_50])
    assert D(0) <= plan.payable <= basket


def test_coupon_discount_below_its_threshold_is_zero():
    assert coupon_discount(THRESHOLD_300_40, D("299.99")) == D("0.00")
    assert coupon_discount(THRESHOLD_300_40, D("300.00")) == D("40.00")
