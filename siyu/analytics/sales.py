"""The sales formula (销售额 = 流量 × 转化率 × 客单价, with repurchase split out) and the
attribution of a change in revenue to its factors.

For one period::

    revenue = traffic × conversion_rate × purchases_per_buyer × AOV
    conversion_rate = buyers / traffic,  purchases_per_buyer = purchases / buyers,
    AOV = revenue / purchases

The identity is exact (the factors are kept as fractions). ``traffic`` is the contacts
reached in the period together with the buyers (a purchase is itself a touch; without
it a buyer who was never messaged would push conversion above 1 and break the identity).

Decomposition of ΔV = V_b − V_a over the factors x_k (k = traffic, conversion,
repurchase, AOV):

- ``lmdi`` (log-mean Divisia index, LMDI-I; Ang 2004): with the logarithmic mean
  L(u, w) = (u − w)/(ln u − ln w) (L(u, u) = u), factor k contributes
  ``C_k = L(V_b, V_a) · ln(x_k,b / x_k,a)``. Since Σ ln(x_k,b/x_k,a) = ln(V_b/V_a), the
  contributions add up to ΔV exactly, with no residual term.
- ``shapley``: C_k is the average over the 4! orders of switching factors from period a
  to period b of the change in V when factor k switches (exact in fractions).

Both are computed with 40 significant digits and rounded to cents; the rounding residue
(a cent or two) goes to the largest contribution, so the rounded contributions always
sum to ΔV to the cent.

Zero periods. LMDI needs logs of positive numbers. When both periods have zero revenue
every contribution is 0. When one has zero revenue the analytical limit of LMDI (Ang &
Liu 2007: the factor that goes to zero takes the whole change) is used: the whole ΔV goes
to the first factor of the chain that is zero in that period (traffic if nobody was
reached, otherwise conversion); the factors after it are undefined there and get 0. For
Shapley, an undefined factor counts as 0.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from fractions import Fraction
from typing import Literal

CENT = Decimal("0.01")
FACTORS = ("traffic", "conversion_rate", "purchases_per_buyer", "aov")
Method = Literal["lmdi", "shapley"]


@dataclass(frozen=True)
class SalesFormula:
    """One period's numbers. ``margin`` sums the orders whose margin is known
    (``margin_orders`` of ``purchases``); ``unattributed_revenue`` is the revenue of
    orders without a contact, which the formula leaves out (nobody to count)."""

    reached: int
    traffic: int
    buyers: int
    purchases: int
    revenue: Decimal
    margin: Decimal | None = None
    margin_orders: int = 0
    margin_revenue: Decimal = Decimal("0")
    unattributed_revenue: Decimal = Decimal("0")

    def __post_init__(self) -> None:
        if not (0 <= self.buyers <= self.traffic) or self.purchases < self.buyers or (self.buyers == 0 and self.purchases):
            raise ValueError(f"inconsistent counts: traffic {self.traffic}, buyers {self.buyers}, purchases {self.purchases}")

    @property
    def conversion_rate(self) -> Fraction | None:
        return Fraction(self.buyers, self.traffic) if self.traffic else None

    @property
    def purchases_per_buyer(self) -> Fraction | None:
        return Fraction(self.purchases, self.buyers) if self.buyers else None

    @property
    def aov(self) -> Fraction | None:
        return Fraction(self.revenue) / self.purchases if self.purchases else None

    @property
    def margin_rate(self) -> Fraction | None:
        """Margin over the revenue of the orders whose margin is known."""
        if self.margin is None or self.margin_revenue <= 0:
            return None
        return Fraction(self.margin) / Fraction(self.margin_revenue)

    def factors(self) -> dict[str, Fraction | None]:
        return {
            "traffic": Fraction(self.traffic),
            "conversion_rate": self.conversion_rate,
            "purchases_per_buyer": self.purchases_per_buyer,
            "aov": self.aov,
        }

    @property
    def identity_holds(self) -> bool:
        """traffic × conversion × purchases per buyer × AOV == revenue, exactly."""
        product = Fraction(1)
        for value in self.factors().values():
            if value is None:
                return self.revenue == 0
            product *= value
        return product == Fraction(self.revenue)


def _ln(value: Fraction) -> Decimal:
    return (Decimal(value.numerator).ln() - Decimal(value.denominator).ln()) if value != 1 else Decimal(0)


def _lmdi(a: SalesFormula, b: SalesFormula) -> dict[str, Decimal]:
    fa, fb = a.factors(), b.factors()
    va, vb = a.revenue, b.revenue
    if va == 0 and vb == 0:
        return dict.fromkeys(FACTORS, Decimal(0))
    if va == 0 or vb == 0:
        zero_side = fa if va == 0 else fb
        first_zero = next(k for k in FACTORS if not zero_side[k])
        return {k: (vb - va) if k == first_zero else Decimal(0) for k in FACTORS}
    weight = (vb - va) / (vb.ln() - va.ln()) if va != vb else va
    contributions: dict[str, Decimal] = {}
    for k in FACTORS:
        xa, xb = fa[k], fb[k]
        assert xa and xb  # positive revenue means every factor is positive
        contributions[k] = weight * _ln(xb / xa)
    return contributions


def _shapley(a: SalesFormula, b: SalesFormula) -> dict[str, Decimal]:
    fa = {k: v or Fraction(0) for k, v in a.factors().items()}
    fb = {k: v or Fraction(0) for k, v in b.factors().items()}
    n = len(FACTORS)

    def value(switched: frozenset[str]) -> Fraction:
        return math.prod((fb[k] if k in switched else fa[k] for k in FACTORS), start=Fraction(1))

    result: dict[str, Decimal] = {}
    for k in FACTORS:
        others = [o for o in FACTORS if o != k]
        total = Fraction(0)
        for size in range(n):
            weight = Fraction(math.factorial(size) * math.factorial(n - size - 1), math.factorial(n))
            for subset in itertools.combinations(others, size):
                s = frozenset(subset)
                total += weight * (value(s | {k}) - value(s))
        result[k] = Decimal(total.numerator) / Decimal(total.denominator)
    return result


def decompose(a: SalesFormula, b: SalesFormula, method: Method = "lmdi") -> dict[str, Decimal]:
    """Contributions of traffic, conversion, purchases per buyer and AOV to the change of
    revenue from period ``a`` to period ``b``, in cents, adding up exactly to
    ``b.revenue − a.revenue`` (see the module docstring)."""
    with localcontext() as ctx:
        ctx.prec = 40
        raw = _lmdi(a, b) if method == "lmdi" else _shapley(a, b)
        rounded = {k: v.quantize(CENT, rounding=ROUND_HALF_EVEN) for k, v in raw.items()}
    change = (b.revenue - a.revenue).quantize(CENT)
    residue = change - sum(rounded.values(), Decimal(0))
    if residue:
        largest = max(FACTORS, key=lambda k: (abs(raw[k]), -FACTORS.index(k)))
        rounded[largest] += residue
    return rounded
