"""满减 calculator: pure functions, no database.

A promotion has tiers ``(threshold, discount)``:

* **tiered** — "满200减50 / 满500减150": the basket gets the best single tier it reaches;
* **stackable** — "每满200减50": tiers repeat, and with several tiers they combine
  (每满200减50 + 每满500减150 on ¥900 gives 500+200+200 → 150+50+50 = 250). The
  calculator finds the best combination exactly (an unbounded knapsack in units of the
  tiers' common divisor), including for huge baskets.

An optional ``cap`` limits the total discount of a promotion.

What stacks (documented rule, the usual one on Chinese shop platforms):

* at most **one promotion** applies to a basket (a shop's 满减 activities exclude each
  other), the best one;
* at most **one coupon** per order;
* a coupon combines with the promotion only when the promotion allows it
  (``stacks_with_coupons``); the promotion is taken first and the coupon's threshold
  and percentage apply to the amount left after it.

Amounts are ``Decimal`` rounded to cents with ROUND_HALF_UP; a discount never exceeds
what is left to pay. Ties prefer the plan with fewer parts, then the one that keeps the
coupon for later, then the order in which promotions and coupons were given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from functools import reduce

__all__ = [
    "MAX_TIERS",
    "CouponOffer",
    "Plan",
    "Promotion",
    "Tier",
    "TierUse",
    "anchoring_hint",
    "best_promotion",
    "cents",
    "coupon_discount",
    "format_yuan",
    "promotion_discount",
]

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
MAX_TIERS = 10
#: Largest knapsack table the exact search builds (units of the tiers' common divisor).
#: Promotions whose tiers would need more are refused when they are defined.
MAX_TABLE = 400_000


def cents(value: Decimal | int | str) -> Decimal:
    """A money amount rounded to cents (ROUND_HALF_UP)."""
    try:
        amount = Decimal(value)
        if not amount.is_finite():
            raise ValueError(f"not an amount: {value!r}")
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError) as exc:
        raise ValueError(f"not an amount: {value!r}") from exc


def format_yuan(amount: Decimal) -> str:
    """``37`` for 37.00, ``37.5`` for 37.50: how prices are written on a poster."""
    text = f"{cents(amount):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True)
class Tier:
    threshold: Decimal
    discount: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "threshold", cents(self.threshold))
        object.__setattr__(self, "discount", cents(self.discount))
        if self.threshold <= 0 or self.discount <= 0:
            raise ValueError("a tier needs a threshold and a discount above zero")
        if self.discount > self.threshold:
            raise ValueError(f"满{format_yuan(self.threshold)}减{format_yuan(self.discount)}: the discount exceeds the threshold")

    @property
    def label(self) -> str:
        return f"满{format_yuan(self.threshold)}减{format_yuan(self.discount)}"


@dataclass(frozen=True)
class Promotion:
    name: str
    tiers: tuple[Tier, ...]
    stackable: bool = False
    cap: Decimal | None = None
    stacks_with_coupons: bool = True
    key: str = ""

    def __post_init__(self) -> None:
        tiers = tuple(sorted(self.tiers, key=lambda t: (t.threshold, t.discount)))
        if not tiers:
            raise ValueError("a promotion needs at least one tier")
        if len(tiers) > MAX_TIERS:
            raise ValueError(f"a promotion has at most {MAX_TIERS} tiers")
        if len({t.threshold for t in tiers}) != len(tiers):
            raise ValueError("two tiers have the same threshold")
        object.__setattr__(self, "tiers", tiers)
        if self.cap is not None:
            cap = cents(self.cap)
            if cap <= 0:
                raise ValueError("the cap must be above zero")
            object.__setattr__(self, "cap", cap)
        if self.stackable and len(tiers) > 1:
            units = _units(tiers)
            best = _best_ratio(tiers, units)
            if _reduced_capacity_bound(units, best) > MAX_TABLE:
                raise ValueError("the tiers are too fine-grained to combine; use thresholds in whole ¥10 or fewer tiers")


@dataclass(frozen=True)
class CouponOffer:
    """A coupon the customer could use: ``kind`` fixed / percent / threshold; ``value`` is
    yuan, or percent off for ``percent``."""

    code: str
    kind: str
    value: Decimal
    threshold: Decimal = ZERO
    percent_cap: Decimal | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "percent", "threshold"):
            raise ValueError(f"unknown coupon kind {self.kind!r}")
        object.__setattr__(self, "value", Decimal(self.value))
        object.__setattr__(self, "threshold", cents(self.threshold))


@dataclass(frozen=True)
class TierUse:
    threshold: Decimal
    discount: Decimal
    count: int


@dataclass(frozen=True)
class Plan:
    basket_total: Decimal
    discount: Decimal
    payable: Decimal
    promotion: str | None = None
    promotion_key: str = ""
    promotion_discount: Decimal = ZERO
    tiers_used: tuple[TierUse, ...] = ()
    coupon: str | None = None
    coupon_discount: Decimal = ZERO
    explanation: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------- one promotion


def _units(tiers: Sequence[Tier]) -> tuple[int, list[int]]:
    """The tiers' thresholds in units of their greatest common divisor (in cents)."""
    thresholds = [int(t.threshold * 100) for t in tiers]
    unit = reduce(math.gcd, thresholds)
    return unit, [t // unit for t in thresholds]


def _best_ratio(tiers: Sequence[Tier], units: tuple[int, list[int]]) -> int:
    """Index of the tier with the best discount per unit of spend."""
    weights = units[1]
    return max(range(len(tiers)), key=lambda i: (tiers[i].discount / weights[i], -weights[i]))


def _reduced_capacity_bound(units: tuple[int, list[int]], best: int) -> int:
    weights = units[1]
    return (weights[best] - 1) * max(weights) + 2 * weights[best]


def _stack(tiers: Sequence[Tier], total: Decimal, extra_units: int = 0) -> list[tuple[Decimal, tuple[TierUse, ...]]]:
    """Best combinations of repeating tiers (an unbounded knapsack) for ``total`` and for
    each of the next ``extra_units`` steps of the tiers' common divisor above it.

    Some optimal combination uses fewer than ``w_b`` tiers other than the best-ratio tier
    ``b`` (any ``w_b`` of them contain a subset whose weights sum to a multiple of ``w_b``,
    which copies of ``b`` replace without losing discount), and leaves less than ``w_b``
    unused. So for a large basket all but a bounded remainder is filled with ``b``, and
    the table covers only that remainder: huge baskets cost no more than small ones."""
    unit, weights = _units(tiers)
    capacity = int(cents(total) * 100) // unit
    values = [int(t.discount * 100) for t in tiers]
    best = _best_ratio(tiers, (unit, weights))
    forced = 0
    bound = _reduced_capacity_bound((unit, weights), best)
    if capacity > bound:
        forced = (capacity - bound) // weights[best]
        capacity -= forced * weights[best]
    size_max = capacity + extra_units
    table = [0] * (size_max + 1)
    choice = [-1] * (size_max + 1)
    for size in range(1, size_max + 1):
        table[size], choice[size] = table[size - 1], -1
        for i, weight in enumerate(weights):
            if weight <= size and table[size - weight] + values[i] > table[size]:
                table[size], choice[size] = table[size - weight] + values[i], i
    results: list[tuple[Decimal, tuple[TierUse, ...]]] = []
    for top in range(capacity, size_max + 1):
        counts = [0] * len(tiers)
        counts[best] += forced
        size = top
        while size > 0:
            if choice[size] == -1:
                size -= 1
            else:
                counts[choice[size]] += 1
                size -= weights[choice[size]]
        discount = Decimal(table[top] + forced * values[best]) / 100
        uses = tuple(TierUse(t.threshold, t.discount, n) for t, n in zip(tiers, counts, strict=True) if n)
        results.append((cents(discount), tuple(sorted(uses, key=lambda u: -u.threshold))))
    return results


def _apply_cap(promotion: Promotion, total: Decimal, discount: Decimal) -> Decimal:
    if promotion.cap is not None and discount > promotion.cap:
        discount = promotion.cap
    return cents(min(discount, total))


def _promotion_uses(promotion: Promotion, total: Decimal) -> tuple[Decimal, tuple[TierUse, ...]]:
    total = cents(total)
    if total <= 0:
        return ZERO, ()
    uses: tuple[TierUse, ...]
    if promotion.stackable:
        if len(promotion.tiers) == 1:
            tier = promotion.tiers[0]
            count = int((total / tier.threshold).to_integral_value(rounding=ROUND_DOWN))
            discount, uses = tier.discount * count, ((TierUse(tier.threshold, tier.discount, count),) if count else ())
        else:
            discount, uses = _stack(promotion.tiers, total)[0]
    else:
        reached = [t for t in promotion.tiers if t.threshold <= total]
        if not reached:
            return ZERO, ()
        tier = max(reached, key=lambda t: (t.discount, -t.threshold))
        discount, uses = tier.discount, (TierUse(tier.threshold, tier.discount, 1),)
    return _apply_cap(promotion, total, discount), uses


def promotion_discount(promotion: Promotion, total: Decimal) -> Decimal:
    """The discount one promotion gives a basket of ``total``."""
    return _promotion_uses(promotion, total)[0]


def coupon_discount(coupon: CouponOffer, amount: Decimal) -> Decimal:
    """The discount a coupon gives on ``amount`` (zero below its threshold)."""
    amount = cents(amount)
    if amount <= 0 or amount < coupon.threshold:
        return ZERO
    if coupon.kind == "percent":
        discount = cents(amount * coupon.value / 100)
        if coupon.percent_cap is not None:
            discount = min(discount, cents(coupon.percent_cap))
    else:
        discount = cents(coupon.value)
    return min(discount, amount)


# ---------------------------------------------------------------- the best plan


def best_promotion(basket_total: Decimal, promotions: Sequence[Promotion], coupons: Sequence[CouponOffer] = ()) -> Plan:
    """The plan with the largest discount for a basket: at most one promotion and at
    most one coupon (see the module docstring for what stacks)."""
    total = cents(basket_total)
    if total < 0:
        raise ValueError("the basket total cannot be negative")
    best = Plan(basket_total=total, discount=ZERO, payable=total)
    best_rank: tuple[Decimal, int, int, int] = (ZERO, 0, 0, 0)
    order = 0
    promotion_options: list[Promotion | None] = [None, *promotions]
    coupon_options: list[CouponOffer | None] = [None, *coupons]
    for promotion in promotion_options:
        p_discount, uses = _promotion_uses(promotion, total) if promotion else (ZERO, ())
        if promotion is not None and p_discount == 0:
            continue
        for coupon in coupon_options:
            order += 1
            if coupon is not None and promotion is not None and not promotion.stacks_with_coupons:
                continue
            c_discount = coupon_discount(coupon, total - p_discount) if coupon else ZERO
            if coupon is not None and c_discount == 0:
                continue
            discount = p_discount + c_discount
            parts = (promotion is not None) + (coupon is not None)
            # Larger discount first; then fewer parts; then keep the coupon; then the
            # earlier option.
            rank = (discount, -parts, -(coupon is not None), -order)
            if rank > best_rank:
                best_rank = rank
                explanation: list[str] = []
                if promotion is not None:
                    tiers = " + ".join(f"{u.count}×满{format_yuan(u.threshold)}减{format_yuan(u.discount)}" for u in uses)
                    capped = "（封顶）" if promotion.cap is not None and p_discount == promotion.cap else ""
                    explanation.append(f"{promotion.name}: {tiers} = -¥{format_yuan(p_discount)}{capped}")
                if coupon is not None:
                    explanation.append(f"券 {coupon.code}: -¥{format_yuan(c_discount)}")
                best = Plan(
                    basket_total=total,
                    discount=discount,
                    payable=total - discount,
                    promotion=promotion.name if promotion else None,
                    promotion_key=promotion.key if promotion else "",
                    promotion_discount=p_discount,
                    tiers_used=uses,
                    coupon=coupon.code if coupon else None,
                    coupon_discount=c_discount,
                    explanation=tuple(explanation),
                )
    return best


def _next_step(promotion: Promotion, total: Decimal, beat: Decimal) -> tuple[Decimal, Decimal] | None:
    """The smallest amount above ``total`` at which this promotion gives more than
    ``beat``, with that discount; None if it never does."""
    if promotion.cap is not None and promotion.cap <= beat:
        return None
    if not promotion.stackable:
        for tier in promotion.tiers:
            if tier.threshold > total:
                saved = promotion_discount(promotion, tier.threshold)
                if saved > beat:
                    return tier.threshold, saved
        return None
    if len(promotion.tiers) == 1:
        tier = promotion.tiers[0]
        reached = int((total / tier.threshold).to_integral_value(rounding=ROUND_DOWN))
        needed = int((beat / tier.discount).to_integral_value(rounding=ROUND_DOWN))
        amount = cents(tier.threshold * (max(reached, needed) + 1))
        return amount, promotion_discount(promotion, amount)
    unit_cents, weights = _units(promotion.tiers)
    best = _best_ratio(promotion.tiers, (unit_cents, weights))
    own = promotion_discount(promotion, total)
    # The discount changes only at multiples of the unit, and each further best-ratio
    # tier adds its discount: the amount that beats ``beat`` lies within this many units.
    gap = max(Decimal(0), beat - own)
    rounds = int((gap / promotion.tiers[best].discount).to_integral_value(rounding=ROUND_DOWN)) + 1
    extra = max(weights) + rounds * weights[best] + 1
    base = Decimal(int(cents(total) * 100) // unit_cents * unit_cents) / 100
    for offset, (discount, _uses) in enumerate(_stack(promotion.tiers, total, extra_units=extra)):
        amount = cents(base + Decimal(unit_cents * offset) / 100)
        saved = _apply_cap(promotion, amount, discount)
        if amount > total and saved > beat:
            return amount, saved
    return None


def anchoring_hint(basket_total: Decimal, promotions: Sequence[Promotion]) -> dict[str, object] | None:
    """The nearest amount to add for a bigger 满减 discount, e.g. for ¥163 and 满200减50:
    ``{"add": Decimal("37.00"), "to_save": Decimal("50.00"), "extra": Decimal("50.00"),
    "promotion": "...", "text": "再买 ¥37 立减 50"}``; None when no tier is ahead.
    ``to_save`` is the whole discount at the new amount, ``extra`` what it adds to the
    best discount the basket already has."""
    total = cents(basket_total)
    if total < 0:
        raise ValueError("the basket total cannot be negative")
    current = max((promotion_discount(p, total) for p in promotions), default=ZERO)
    offers = []
    for index, promotion in enumerate(promotions):
        step = _next_step(promotion, total, current)
        if step is not None:
            offers.append((step[0], -step[1], index, step[1]))
    if not offers:
        return None
    amount, _, index, saved = min(offers)
    add = amount - total
    return {
        "add": add,
        "to_save": saved,
        "extra": saved - current,
        "promotion": promotions[index].name,
        "text": f"再买 ¥{format_yuan(add)} 立减 {format_yuan(saved)}",
    }
