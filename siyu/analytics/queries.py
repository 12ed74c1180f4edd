"""Typed analytics queries and their results (pydantic). A query names its ``kind``; the
API takes the :data:`AnalyticsQuery` union, the CLI and console build the query they
need, and :func:`siyu.analytics.runners.run_query` answers with the matching result."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Query):
    """Calendar days ``start`` … ``end`` (both included) in the workspace's time zone."""

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end < self.start:
            raise ValueError("a period must end on or after its start")
        if (self.end - self.start).days > 3660:
            raise ValueError("a period may span at most ten years")
        return self

    def overlaps(self, other: Period) -> bool:
        return self.start <= other.end and other.start <= self.end


# --------------------------------------------------------------------------- queries


class BgNbdQuery(_Query):
    """Fit BG/NBD (+ Gamma-Gamma when amounts are known) and score customers.

    With ``calibration_end`` the models are fitted on the purchases up to it and the
    report compares predicted and actual repeat purchases after it; the customer scores
    then use the calibration fit on the whole history."""

    kind: Literal["bgnbd"] = "bgnbd"
    observation_end: dt.date | None = Field(default=None, description="last day of data used (default: today / the file's last day)")
    calibration_end: dt.date | None = Field(default=None, description="fit on purchases up to this day, test on the rest")
    freq: Literal["D", "W"] = Field(default="D", description="purchase periods: distinct days (D) or weeks (W)")
    horizon_days: int = Field(default=90, ge=1, le=3650, description="expected purchases over this many days")
    clv_months: int = Field(default=12, ge=1, le=120)
    monthly_discount_rate: float = Field(default=0.01, ge=0, le=1)
    min_repeat_customers: int = Field(default=20, ge=2, le=1_000_000, description="refuse to fit below this many repeat customers")
    top_customers: int = Field(default=20, ge=0, le=1000, description="how many of the highest-CLV customers to list")

    @model_validator(mode="after")
    def _calibration_before_end(self) -> BgNbdQuery:
        if self.calibration_end and self.observation_end and self.calibration_end >= self.observation_end:
            raise ValueError("calibration_end must be before observation_end")
        return self


class RfmQuery(_Query):
    """RFM scores and segments of the buyers of the last ``window_days`` days."""

    kind: Literal["rfm"] = "rfm"
    window_days: int = Field(default=365, ge=1, le=3660)
    as_of: dt.date | None = Field(default=None, description="last day of the window (default: today)")
    top_customers: int = Field(default=20, ge=0, le=1000, description="how many customers to list, highest spend first")


class ParetoQuery(_Query):
    """Revenue concentration (80/20) over the last ``window_days`` days."""

    kind: Literal["pareto"] = "pareto"
    window_days: int = Field(default=365, ge=1, le=3660)
    as_of: dt.date | None = None
    top_share: float = Field(default=0.2, gt=0, lt=1, description="share of customers counted as the top")
    points: int = Field(default=20, ge=2, le=200, description="Lorenz curve points")


class SalesFormulaQuery(_Query):
    """The sales formula for a period, and with ``period_b`` the decomposition of the
    change from ``period_a`` to ``period_b``."""

    kind: Literal["sales_formula"] = "sales_formula"
    period_a: Period
    period_b: Period | None = None
    group_id: int | None = None
    channel: str | None = Field(default=None, min_length=1, max_length=64)
    staff_id: int | None = None
    method: Literal["lmdi", "shapley"] = "lmdi"

    @model_validator(mode="after")
    def _separate_periods(self) -> SalesFormulaQuery:
        if self.period_b is not None and self.period_a.overlaps(self.period_b):
            raise ValueError("a decomposition needs two periods that do not overlap")
        return self


AnalyticsQuery = Annotated[BgNbdQuery | RfmQuery | ParetoQuery | SalesFormulaQuery, Field(discriminator="kind")]


# --------------------------------------------------------------------------- results


class FitDiagnosticsOut(BaseModel):
    converged: bool
    message: str
    iterations: int
    evaluations: int
    log_likelihood: float
    gradient_norm: float
    customers: int
    repeat_customers: int
    distinct_patterns: int
    seconds: float
    at_bound: bool
    standard_errors: dict[str, float] | None
    warnings: list[str]


class HoldoutBucketOut(BaseModel):
    frequency: str = Field(description="calibration repeat purchases: 0, 1, …, 7+")
    customers: int
    actual_purchases: float
    predicted_purchases: float
    actual_mean: float
    predicted_mean: float


class HoldoutOut(BaseModel):
    calibration_end: dt.date
    observation_end: dt.date
    holdout_days: int
    customers: int
    actual_purchases: float
    predicted_purchases: float
    buckets: list[HoldoutBucketOut]


class CustomerValueOut(BaseModel):
    customer_id: int | str
    frequency: int = Field(description="repeat purchase periods")
    recency: float
    T: float
    probability_alive: float
    expected_purchases: float
    expected_aov: Decimal | None
    clv: Decimal | None


class BgNbdResult(BaseModel):
    kind: Literal["bgnbd"] = "bgnbd"
    r: float
    alpha: float
    a: float
    b: float
    p: float | None = Field(default=None, description="Gamma-Gamma, when amounts are known")
    q: float | None = None
    v: float | None = None
    customers: int
    repeat_customers: int
    log_likelihood: float
    freq: Literal["D", "W"]
    time_unit: Literal["day", "week"]
    observation_end: dt.date
    horizon_days: int
    clv_months: int
    monthly_discount_rate: float
    diagnostics: FitDiagnosticsOut
    gamma_gamma_diagnostics: FitDiagnosticsOut | None = None
    gamma_gamma_note: str | None = Field(default=None, description="why there is no Gamma-Gamma fit")
    expected_purchases_new_customer: float = Field(description="expected repeat purchases in the horizon of a customer just acquired")
    expected_purchases_total: float = Field(description="expected purchases of all current customers in the horizon")
    expected_alive_customers: float
    clv_total: Decimal | None
    holdout: HoldoutOut | None = None
    top_customers: list[CustomerValueOut]


class RfmSegmentOut(BaseModel):
    segment: str
    label: str
    customers: int
    share: float
    revenue: Decimal
    revenue_share: float


class RfmCustomerOut(BaseModel):
    customer_id: int | str
    recency_days: int
    frequency: int
    monetary: Decimal
    r: int
    f: int
    m: int
    segment: str


class RfmResult(BaseModel):
    kind: Literal["rfm"] = "rfm"
    as_of: dt.date
    window_days: int
    customers: int
    revenue: Decimal
    segments: list[RfmSegmentOut]
    top_customers: list[RfmCustomerOut]


class LorenzPoint(BaseModel):
    customer_share: float
    revenue_share: float


class ParetoResult(BaseModel):
    kind: Literal["pareto"] = "pareto"
    as_of: dt.date
    window_days: int
    customers: int
    revenue: Decimal
    top_share: float
    top_customers: int
    top_revenue: Decimal
    top_revenue_share: float
    gini: float
    lorenz: list[LorenzPoint]


class SalesFormulaOut(BaseModel):
    start: dt.date
    end: dt.date
    reached_contacts: int = Field(description="contacts with a message, scan or add in the period")
    traffic: int = Field(description="reached contacts plus buyers who were not reached")
    buyers: int
    conversion_rate: float | None
    purchases: int
    purchases_per_buyer: float | None
    aov: Decimal | None
    revenue: Decimal
    margin: Decimal | None
    margin_rate: float | None = Field(description="margin / revenue of the orders whose margin is known")
    margin_coverage: float | None = Field(description="share of purchases whose margin is known")
    unattributed_revenue: Decimal = Field(description="orders without a contact, outside the formula")
    identity_holds: bool


class DecompositionOut(BaseModel):
    method: Literal["lmdi", "shapley"]
    revenue_change: Decimal
    contributions: dict[str, Decimal] = Field(description="traffic, conversion_rate, purchases_per_buyer, aov: sum = revenue_change")


class SalesFormulaResult(BaseModel):
    kind: Literal["sales_formula"] = "sales_formula"
    period_a: SalesFormulaOut
    period_b: SalesFormulaOut | None = None
    decomposition: DecompositionOut | None = None


AnalyticsResult = Annotated[BgNbdResult | RfmResult | ParetoResult | SalesFormulaResult, Field(discriminator="kind")]
