"""Query runners: a typed query in, a typed result out (PostHog's pattern). The API, the
console and the CLI all call :func:`run_query` with a query and a data source."""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from decimal import Decimal
from fractions import Fraction
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
from pydantic import BaseModel

from siyu.analytics import bgnbd, gamma_gamma, rfm
from siyu.analytics.queries import (
    BgNbdQuery,
    BgNbdResult,
    CustomerValueOut,
    DecompositionOut,
    FitDiagnosticsOut,
    HoldoutBucketOut,
    HoldoutOut,
    LorenzPoint,
    ParetoQuery,
    ParetoResult,
    RfmCustomerOut,
    RfmQuery,
    RfmResult,
    RfmSegmentOut,
    SalesFormulaOut,
    SalesFormulaQuery,
    SalesFormulaResult,
)
from siyu.analytics.sales import SalesFormula, decompose
from siyu.analytics.sources import DataSource, SalesFilters
from siyu.analytics.transactions import FloatArray, TransactionLog, cents_to_decimal, day_number
from siyu.core.errors import ValidationFailed

Q = TypeVar("Q", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

CENT = Decimal("0.01")


def money(value: float | Fraction | None) -> Decimal | None:
    """A float or fraction of yuan as Decimal cents (None stays None)."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return None
    if isinstance(value, Fraction):
        return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(CENT)
    return Decimal(f"{value:.2f}")


def _key(value: Any) -> int | str:
    item = value.item() if hasattr(value, "item") else value
    return item if isinstance(item, int) else str(item)


def diagnostics_out(diagnostics: bgnbd.FitDiagnostics) -> FitDiagnosticsOut:
    return FitDiagnosticsOut(**diagnostics.__dict__)


class QueryRunner(ABC, Generic[Q, R]):
    """Answers one kind of query from a data source."""

    kind: ClassVar[str]

    def __init__(self, query: Q, source: DataSource) -> None:
        self.query = query
        self.source = source

    @abstractmethod
    def run(self) -> R:
        """Compute the typed result of ``self.query``."""


# --------------------------------------------------------------------------- BG/NBD


class BgNbdRunner(QueryRunner[BgNbdQuery, BgNbdResult]):
    kind = "bgnbd"

    def run(self) -> BgNbdResult:
        q = self.query
        log = self.source.transactions()
        observation_end = q.observation_end or self.source.today()
        unit_days = 1.0 if q.freq == "D" else 7.0
        holdout: HoldoutOut | None = None
        full = bgnbd.summarize(log, observation_end, q.freq)
        if q.calibration_end is not None:
            if q.calibration_end >= observation_end:
                raise ValidationFailed("calibration_end must be before the end of observation", code="invalid_calibration_end")
            split = bgnbd.calibration_and_holdout(log, q.calibration_end, observation_end, q.freq)
            fit_summary = split.calibration
        else:
            fit_summary = full
        fit = bgnbd.fit_bgnbd(
            fit_summary.frequency, fit_summary.recency, fit_summary.T, min_repeat_customers=q.min_repeat_customers
        )
        if q.calibration_end is not None:
            holdout = self._holdout(fit.params, split, q.calibration_end, observation_end)

        gg_fit, gg_note = self._gamma_gamma(fit_summary, log)
        scores = bgnbd.score(
            fit.params, full.frequency, full.recency, full.T, horizon=q.horizon_days / unit_days,
            months=q.clv_months, monthly_discount_rate=q.monthly_discount_rate, unit_days=unit_days,
        )
        aov = clv = None
        if gg_fit is not None and full.monetary is not None:
            aov = expected_aov(gg_fit.params, full.frequency, full.monetary)
            clv = aov * scores.discounted_purchases
        ranking = clv if clv is not None else scores.expected_purchases
        top = np.lexsort((np.arange(len(full)), -ranking))[: q.top_customers]
        return BgNbdResult(
            r=fit.params.r,
            alpha=fit.params.alpha,
            a=fit.params.a,
            b=fit.params.b,
            p=gg_fit.params.p if gg_fit else None,
            q=gg_fit.params.q if gg_fit else None,
            v=gg_fit.params.v if gg_fit else None,
            customers=fit.diagnostics.customers,
            repeat_customers=fit.diagnostics.repeat_customers,
            log_likelihood=fit.diagnostics.log_likelihood,
            freq=q.freq,
            time_unit="day" if q.freq == "D" else "week",
            observation_end=observation_end,
            horizon_days=q.horizon_days,
            clv_months=q.clv_months,
            monthly_discount_rate=q.monthly_discount_rate,
            diagnostics=diagnostics_out(fit.diagnostics),
            gamma_gamma_diagnostics=diagnostics_out(gg_fit.diagnostics) if gg_fit else None,
            gamma_gamma_note=gg_note,
            expected_purchases_new_customer=float(bgnbd.expected_purchases(fit.params, q.horizon_days / unit_days)),
            expected_purchases_total=float(scores.expected_purchases.sum()),
            expected_alive_customers=float(scores.probability_alive.sum()),
            clv_total=money(float(clv.sum())) if clv is not None else None,
            holdout=holdout,
            top_customers=[
                CustomerValueOut(
                    customer_id=_key(full.customer_keys[i]),
                    frequency=int(full.frequency[i]),
                    recency=float(full.recency[i]),
                    T=float(full.T[i]),
                    probability_alive=float(scores.probability_alive[i]),
                    expected_purchases=float(scores.expected_purchases[i]),
                    expected_aov=money(float(aov[i])) if aov is not None else None,
                    clv=money(float(clv[i])) if clv is not None else None,
                )
                for i in top
            ],
        )

    def _gamma_gamma(self, summary: bgnbd.CustomerSummary, log: TransactionLog) -> tuple[gamma_gamma.GammaGammaFit | None, str | None]:
        if summary.monetary is None:
            return None, "no purchase amounts: expected order value and CLV need them"
        try:
            return gamma_gamma.fit_gamma_gamma(
                summary.frequency, summary.monetary, min_repeat_customers=self.query.min_repeat_customers
            ), None
        except ValidationFailed as refusal:
            return None, refusal.message

    @staticmethod
    def _holdout(
        params: bgnbd.BgNbdParams, split: bgnbd.CalibrationHoldout, calibration_end: dt.date, observation_end: dt.date
    ) -> HoldoutOut:
        buckets = bgnbd.holdout_report(params, split)
        return HoldoutOut(
            calibration_end=calibration_end,
            observation_end=observation_end,
            holdout_days=(observation_end - calibration_end).days,
            customers=len(split.calibration),
            actual_purchases=float(sum(b.actual_purchases for b in buckets)),
            predicted_purchases=float(sum(b.predicted_purchases for b in buckets)),
            buckets=[HoldoutBucketOut(**b.__dict__) for b in buckets],
        )


def expected_aov(
    params: gamma_gamma.GammaGammaParams, frequency: FloatArray, monetary: FloatArray, fallback_mean: float | None = None
) -> FloatArray:
    """Gamma-Gamma expected order value; when the population mean is infinite (q ≤ 1),
    customers without repeats get ``fallback_mean`` (default: the mean of the repeat
    customers' values among those given)."""
    repeat = frequency > 0
    if fallback_mean is None:
        fallback_mean = float(monetary[repeat].mean()) if repeat.any() else 0.0
    fallback = np.where(repeat, monetary, fallback_mean)
    return gamma_gamma.conditional_expected_average_value(params, frequency, monetary, fallback=fallback)


# --------------------------------------------------------------------------- RFM and Pareto


class RfmRunner(QueryRunner[RfmQuery, RfmResult]):
    kind = "rfm"

    def run(self) -> RfmResult:
        q = self.query
        as_of = q.as_of or self.source.today()
        table = rfm.rfm_table(self.source.transactions(), day_number(as_of), q.window_days)
        n = len(table)
        total = int(table.monetary_cents.sum())
        segments = []
        for name, label in rfm.SEGMENTS.items():
            mask = table.segment == name
            revenue = int(table.monetary_cents[mask].sum())
            segments.append(
                RfmSegmentOut(
                    segment=name, label=label, customers=int(mask.sum()), share=float(mask.sum()) / n if n else 0.0,
                    revenue=cents_to_decimal(revenue), revenue_share=revenue / total if total else 0.0,
                )
            )
        top = np.lexsort((np.arange(n), -table.monetary_cents))[: q.top_customers]
        return RfmResult(
            as_of=as_of,
            window_days=q.window_days,
            customers=n,
            revenue=cents_to_decimal(total),
            segments=segments,
            top_customers=[rfm_customer_out(table, int(i)) for i in top],
        )


def rfm_customer_out(table: rfm.RfmTable, i: int) -> RfmCustomerOut:
    return RfmCustomerOut(
        customer_id=_key(table.customer_keys[i]),
        recency_days=int(table.recency_days[i]),
        frequency=int(table.frequency[i]),
        monetary=cents_to_decimal(table.monetary_cents[i]),
        r=int(table.r_score[i]),
        f=int(table.f_score[i]),
        m=int(table.m_score[i]),
        segment=str(table.segment[i]),
    )


class ParetoRunner(QueryRunner[ParetoQuery, ParetoResult]):
    kind = "pareto"

    def run(self) -> ParetoResult:
        q = self.query
        as_of = q.as_of or self.source.today()
        last = day_number(as_of)
        window = self.source.transactions().between(first_day=last - q.window_days + 1, last_day=last)
        if window.cents is None:
            raise ValidationFailed("the Pareto view needs purchase amounts", code="amounts_required")
        totals = np.bincount(window.customer, weights=window.cents.astype(np.float64))
        # Per-customer totals are exact: each is a sum of whole cents far below 2^53.
        per_customer = np.round(totals[totals != 0]).astype(np.int64)
        view = rfm.pareto(per_customer, top_share=q.top_share, points=q.points)
        return ParetoResult(
            as_of=as_of,
            window_days=q.window_days,
            customers=view.customers,
            revenue=cents_to_decimal(view.revenue_cents),
            top_share=q.top_share,
            top_customers=view.top_customers,
            top_revenue=cents_to_decimal(view.top_revenue_cents),
            top_revenue_share=view.top_revenue_share,
            gini=view.gini,
            lorenz=[LorenzPoint(customer_share=c, revenue_share=r) for c, r in view.lorenz],
        )


# --------------------------------------------------------------------------- sales formula


def sales_out(start: dt.date, end: dt.date, formula: SalesFormula) -> SalesFormulaOut:
    conversion, per_buyer, margin_rate = formula.conversion_rate, formula.purchases_per_buyer, formula.margin_rate
    return SalesFormulaOut(
        start=start,
        end=end,
        reached_contacts=formula.reached,
        traffic=formula.traffic,
        buyers=formula.buyers,
        conversion_rate=float(conversion) if conversion is not None else None,
        purchases=formula.purchases,
        purchases_per_buyer=float(per_buyer) if per_buyer is not None else None,
        aov=money(formula.aov),
        revenue=formula.revenue.quantize(CENT),
        margin=formula.margin.quantize(CENT) if formula.margin is not None else None,
        margin_rate=float(margin_rate) if margin_rate is not None else None,
        margin_coverage=formula.margin_orders / formula.purchases if formula.purchases else None,
        unattributed_revenue=formula.unattributed_revenue.quantize(CENT),
        identity_holds=formula.identity_holds,
    )


class SalesFormulaRunner(QueryRunner[SalesFormulaQuery, SalesFormulaResult]):
    kind = "sales_formula"

    def run(self) -> SalesFormulaResult:
        q = self.query
        filters = SalesFilters(group_id=q.group_id, channel=q.channel, staff_id=q.staff_id)
        a = self.source.sales(q.period_a.start, q.period_a.end, filters)
        if q.period_b is None:
            return SalesFormulaResult(period_a=sales_out(q.period_a.start, q.period_a.end, a))
        b = self.source.sales(q.period_b.start, q.period_b.end, filters)
        return SalesFormulaResult(
            period_a=sales_out(q.period_a.start, q.period_a.end, a),
            period_b=sales_out(q.period_b.start, q.period_b.end, b),
            decomposition=DecompositionOut(
                method=q.method, revenue_change=(b.revenue - a.revenue).quantize(CENT), contributions=decompose(a, b, q.method)
            ),
        )


# --------------------------------------------------------------------------- dispatch


RUNNERS: dict[str, type[QueryRunner[Any, Any]]] = {
    runner.kind: runner for runner in (BgNbdRunner, RfmRunner, ParetoRunner, SalesFormulaRunner)
}


def get_runner(query: BaseModel, source: DataSource) -> QueryRunner[Any, Any]:
    """The runner for ``query.kind``."""
    kind = getattr(query, "kind", None)
    runner = RUNNERS.get(str(kind))
    if runner is None:
        raise ValidationFailed(f"unknown analytics query kind {kind!r}", code="unknown_query")
    return runner(query, source)


def run_query(query: BaseModel, source: DataSource) -> Any:
    """Answer ``query`` from ``source`` (a :class:`~siyu.analytics.sources.WorkspaceSource`
    for workspace data, a :class:`~siyu.analytics.sources.TransactionFileSource` for a
    file); returns the query's result model."""
    return get_runner(query, source).run()
