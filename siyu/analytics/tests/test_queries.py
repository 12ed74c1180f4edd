"""Query validation, dispatch, and the runners on a purchase file (the CLI's path)."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import TypeAdapter, ValidationError

from siyu.analytics.queries import AnalyticsQuery, BgNbdQuery, BgNbdResult, ParetoQuery, Period, RfmQuery, SalesFormulaQuery
from siyu.analytics.runners import BgNbdRunner, get_runner, run_query
from siyu.analytics.sources import TransactionFileSource
from siyu.analytics.tests import cdnow
from siyu.analytics.transactions import day_to_date, read_transactions_csv
from siyu.core.errors import ValidationFailed

QUERY = TypeAdapter(AnalyticsQuery)


def _cdnow_csv() -> bytes:
    log = cdnow.transactions()
    assert log.cents is not None
    lines = ["客户,日期,金额"]
    for customer, day, cents in zip(log.customer, log.day, log.cents, strict=True):
        lines.append(f"{log.customer_keys[customer]},{day_to_date(int(day)):%Y%m%d},{cents / 100:.2f}")
    return "\n".join(lines).encode("gb18030")


def test_query_union_dispatches_on_kind():
    query = QUERY.validate_python({"kind": "sales_formula", "period_a": {"start": "2025-01-01", "end": "2025-01-31"}})
    assert isinstance(query, SalesFormulaQuery) and query.method == "lmdi"
    assert isinstance(QUERY.validate_python({"kind": "rfm"}), RfmQuery)
    assert isinstance(get_runner(BgNbdQuery(), TransactionFileSource(cdnow.transactions())), BgNbdRunner)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"kind": "sales_formula", "period_a": {"start": "2025-01-01", "end": "2025-01-31"}, "period_b": {"start": "2025-01-31", "end": "2025-02-27"}},
         "a decomposition needs two periods that do not overlap"),
        ({"kind": "sales_formula", "period_a": {"start": "2025-02-01", "end": "2025-01-31"}}, "a period must end on or after its start"),
        ({"kind": "bgnbd", "calibration_end": "2025-06-30", "observation_end": "2025-06-30"}, "calibration_end must be before observation_end"),
        ({"kind": "bgnbd", "horizon_days": 0}, "greater than or equal to 1"),
        ({"kind": "bgnbd", "monthly_discount_rate": 2}, "less than or equal to 1"),
        ({"kind": "rfm", "window": 30}, "Extra inputs are not permitted"),
        ({"kind": "pareto", "top_share": 1}, "less than 1"),
        ({"kind": "funnel"}, "does not match any of the expected tags"),
    ],
)
def test_bad_queries_are_rejected(payload, message):
    with pytest.raises(ValidationError, match=message):
        QUERY.validate_python(payload)


def test_periods_overlap():
    january = Period(start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 31))
    assert january.overlaps(Period(start=dt.date(2025, 1, 31), end=dt.date(2025, 2, 5)))
    assert not january.overlaps(Period(start=dt.date(2025, 2, 1), end=dt.date(2025, 2, 5)))


def test_fit_from_a_csv_file_gives_the_cli_json():
    # given: CDNOW as a GB18030 CSV with Chinese headers, as a shop would export it
    log = read_transactions_csv(_cdnow_csv(), customer_col="客户", date_col="日期", amount_col="金额")
    # when: fitted on daily periods up to the end of FHL's calibration period
    result = run_query(BgNbdQuery(observation_end=cdnow.CALIBRATION_END, top_customers=3), TransactionFileSource(log))
    body = result.model_dump(mode="json")
    # then: the keys `siyu analytics fit-bgnbd --json` promises; in days alpha is 7× the
    # weekly estimate and r, a, b do not change
    assert isinstance(result, BgNbdResult)
    assert {"r", "alpha", "a", "b", "customers", "log_likelihood", "p", "q", "v"} <= set(body)
    assert (round(body["r"], 3), round(body["alpha"] / 7, 3), round(body["a"], 3), round(body["b"], 3)) == (0.243, 4.414, 0.793, 2.426)
    assert (body["customers"], body["repeat_customers"], body["time_unit"]) == (2357, 946, "day")
    assert body["p"] is not None and body["gamma_gamma_note"] is None
    assert len(body["top_customers"]) == 3
    clvs = [float(c["clv"]) for c in body["top_customers"]]
    assert clvs == sorted(clvs, reverse=True)


def test_holdout_report_through_the_runner():
    result = run_query(
        BgNbdQuery(calibration_end=cdnow.CALIBRATION_END, observation_end=cdnow.OBSERVATION_END), TransactionFileSource(cdnow.transactions())
    )
    assert result.holdout is not None
    assert (result.holdout.customers, result.holdout.actual_purchases, result.holdout.holdout_days) == (2357, 1882.0, 273)
    assert [b.frequency for b in result.holdout.buckets][-1] == "7+"


def test_file_without_amounts_fits_bgnbd_only():
    log = cdnow.transactions()
    without = type(log)(log.customer_keys, log.customer, log.day, None)
    result = run_query(BgNbdQuery(observation_end=cdnow.CALIBRATION_END), TransactionFileSource(without))
    assert (result.p, result.clv_total, result.gamma_gamma_note) == (None, None, "no purchase amounts: expected order value and CLV need them")
    assert result.top_customers[0].clv is None


def test_small_file_is_refused_with_a_clear_message():
    log = read_transactions_csv(b"c,d\n1,2025-01-01\n1,2025-01-05\n2,2025-01-02\n", customer_col="c", date_col="d")
    with pytest.raises(ValidationFailed) as refused:
        run_query(BgNbdQuery(), TransactionFileSource(log))
    assert refused.value.code == "too_little_data"
    assert "1 customers with repeat purchases, at least 20 are needed" in refused.value.message


def test_rfm_and_pareto_on_a_file():
    source = TransactionFileSource(cdnow.transactions())
    rfm_result = run_query(RfmQuery(as_of=cdnow.OBSERVATION_END, top_customers=2), source)
    pareto_result = run_query(ParetoQuery(as_of=cdnow.OBSERVATION_END), source)
    assert rfm_result.customers == pareto_result.customers
    assert sum(s.customers for s in rfm_result.segments) == rfm_result.customers
    assert sum((s.revenue for s in rfm_result.segments), start=rfm_result.revenue * 0) == rfm_result.revenue == pareto_result.revenue
    assert rfm_result.top_customers[0].monetary >= rfm_result.top_customers[1].monetary
    assert 0 < pareto_result.top_revenue_share < 1 and len(pareto_result.lorenz) == 21


def test_sales_formula_needs_workspace_data():
    query = SalesFormulaQuery(period_a=Period(start=dt.date(1997, 1, 1), end=dt.date(1997, 1, 31)))
    with pytest.raises(ValidationFailed) as refused:
        run_query(query, TransactionFileSource(cdnow.transactions()))
    assert refused.value.code == "unsupported_source"


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"customer,day\n1,2025-01-01\n", "invalid_columns"),
        (b"customer,date\n1,2025-13-01\n2,yesterday\n", "invalid_rows"),
    ],
)
def test_unreadable_csv(content, code):
    with pytest.raises(ValidationFailed) as refused:
        read_transactions_csv(content, customer_col="customer", date_col="date")
    assert refused.value.code == code


def test_csv_dates_and_anonymous_rows():
    log = read_transactions_csv(
        b"c,d,a\nx,2025-01-01T23:30:00+08:00,1.5\n,2025-01-02,9\ny,2025/01/03,\"1,200.00\"\n",
        customer_col="c", date_col="d", amount_col="a",
    )
    assert [str(k) for k in log.customer_keys[log.customer]] == ["x", "y"]
    assert [day_to_date(int(d)) for d in log.day] == [dt.date(2025, 1, 1), dt.date(2025, 1, 3)]
    assert log.cents is not None and log.cents.tolist() == [150, 120000]
