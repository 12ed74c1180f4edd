"""Analytics console (分析): lifecycle stages, RFM segments, revenue concentration (80/20)
and the sales formula (销售额 = 流量 × 转化率 × 人均购买次数 × 客单价) with the LMDI
decomposition of the change between two periods.

Every number comes from the analytics query runners (``run_query``) or a plain count;
the view only reshapes results for the templates and the charts (``json_script``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from pydantic import ValidationError

from siyu.accounts.permissions import Perm
from siyu.analytics.queries import ParetoQuery, ParetoResult, Period, RfmQuery, RfmResult, SalesFormulaQuery, SalesFormulaResult
from siyu.analytics.rfm import SEGMENTS
from siyu.analytics.runners import run_query
from siyu.analytics.sources import WorkspaceSource
from siyu.console.workspace import Console, console_view
from siyu.contacts.models import Contact, LifecycleStage
from siyu.core.errors import ValidationFailed

PERIOD_DAYS = 30
FACTORS = ("traffic", "conversion_rate", "purchases_per_buyer", "aov")


def default_periods(today: dt.date) -> tuple[Period, Period]:
    """Last 30 full days (to yesterday) against the 30 days before them."""
    b_end = today - dt.timedelta(days=1)
    b_start = b_end - dt.timedelta(days=PERIOD_DAYS - 1)
    a_end = b_start - dt.timedelta(days=1)
    return Period(start=a_end - dt.timedelta(days=PERIOD_DAYS - 1), end=a_end), Period(start=b_start, end=b_end)


def _periods(request: HttpRequest, today: dt.date) -> tuple[Period, Period, str | None]:
    a, b = default_periods(today)
    keys = ("a_start", "a_end", "b_start", "b_end")
    if not any(request.GET.get(k) for k in keys):
        return a, b, None
    try:
        days = [dt.date.fromisoformat(request.GET.get(k, "").strip()) for k in keys]
        return Period(start=days[0], end=days[1]), Period(start=days[2], end=days[3]), None
    except (ValueError, ValidationError):
        return a, b, _("Those periods are not valid (each needs a start on or before its end); showing the last 30 days instead.")


def _stage_counts(console: Console) -> list[dict[str, Any]]:
    counts = dict(
        Contact.objects.in_workspace(console.workspace).filter(merged_into__isnull=True)
        .values("lifecycle_stage").annotate(n=Count("id")).values_list("lifecycle_stage", "n")
    )
    return [{"stage": value, "label": str(label), "count": counts.get(value, 0)} for value, label in LifecycleStage.choices]


def _run(query: Any, source: WorkspaceSource) -> tuple[Any, str | None]:
    try:
        return run_query(query, source), None
    except ValidationFailed as exc:
        return None, exc.message


def _chart_data(stages: list[dict[str, Any]], rfm: RfmResult | None, pareto: ParetoResult | None,
                sales: SalesFormulaResult | None, factor_labels: dict[str, str]) -> dict[str, Any]:
    """What the charts draw: numbers as floats (ECharts), labels already translated."""
    data: dict[str, Any] = {"stages": {"labels": [s["label"] for s in stages], "values": [s["count"] for s in stages]}}
    if rfm is not None:
        data["rfm"] = [{"name": s.label.split(" (")[0], "value": s.customers, "revenue": float(s.revenue)} for s in rfm.segments if s.customers]
    if pareto is not None:
        data["lorenz"] = [[round(p.customer_share, 4), round(p.revenue_share, 4)] for p in pareto.lorenz]
    if sales is not None and sales.decomposition is not None:
        data["waterfall"] = {
            "labels": [factor_labels[f] for f in FACTORS],
            "values": [float(sales.decomposition.contributions.get(f, 0)) for f in FACTORS],
            "start": float(sales.period_a.revenue),
            "end": float(sales.period_b.revenue) if sales.period_b else None,
            "start_label": _("Period A"),
            "end_label": _("Period B"),
        }
    return data


@require_GET
@console_view(Perm.VIEW_ALL_CONTACTS)
def analytics_overview(request: HttpRequest, console: Console) -> HttpResponse:
    source = WorkspaceSource(console.workspace)
    today = source.today()
    as_of = today - dt.timedelta(days=1)  # today is still running: its numbers would look like a drop
    period_a, period_b, period_error = _periods(request, today)
    stages = _stage_counts(console)
    rfm, rfm_note = _run(RfmQuery(as_of=as_of, top_customers=0), source)
    pareto, pareto_note = _run(ParetoQuery(as_of=as_of), source)
    sales_note: str | None = None
    try:
        sales, sales_note = _run(SalesFormulaQuery(period_a=period_a, period_b=period_b), source)
    except ValidationError:
        period_error = _("The two periods must not overlap; showing the last 30 days instead.")
        period_a, period_b = default_periods(today)
        sales, sales_note = _run(SalesFormulaQuery(period_a=period_a, period_b=period_b), source)
    factor_labels = {
        "traffic": _("Traffic"),
        "conversion_rate": _("Conversion"),
        "purchases_per_buyer": _("Purchases per buyer"),
        "aov": _("Average order value"),
    }
    contributions = []
    if sales is not None and sales.decomposition is not None:
        contributions = [(factor_labels[f], sales.decomposition.contributions.get(f)) for f in FACTORS]
    return render(
        request,
        "console/analytics/overview.html",
        {
            "stages": stages,
            "stage_total": sum(s["count"] for s in stages),
            "rfm": rfm,
            "rfm_note": rfm_note,
            "segment_help": SEGMENTS,
            "pareto": pareto,
            "pareto_note": pareto_note,
            "sales": sales,
            "sales_note": sales_note,
            "period_a": period_a,
            "period_b": period_b,
            "period_error": period_error,
            "contributions": contributions,
            "as_of": as_of,
            "chart_data": _chart_data(stages, rfm, pareto, sales, factor_labels),
        },
    )
