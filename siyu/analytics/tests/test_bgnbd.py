"""BG/NBD: summary semantics, published CDNOW estimates, agreement with lifetimes,
recovery of known parameters, the small-data guard, calibration/holdout."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest
from scipy.optimize import check_grad

from siyu.analytics import bgnbd
from siyu.analytics.bgnbd import BgNbdParams
from siyu.analytics.simulate import simulate_summary
from siyu.analytics.tests import cdnow
from siyu.analytics.transactions import TransactionLog, day_number
from siyu.core.errors import ValidationFailed

D = day_number


# --------------------------------------------------------------------------- summary


def test_summary_counts_distinct_purchase_days_and_averages_repeat_days():
    # given: customer "a" buys twice on day 1 (one purchase day), then on days 4 and 10;
    # "b" buys once; "c" only after the end of observation
    log = TransactionLog.from_rows(
        ["a", "a", "a", "a", "b", "c"],
        [D(dt.date(2024, 1, 1))] * 2 + [D(dt.date(2024, 1, 4)), D(dt.date(2024, 1, 10)), D(dt.date(2024, 1, 5)), D(dt.date(2024, 2, 1))],
        [1000, 500, 2000, 4000, 3000, 100],
    )
    # when
    summary = bgnbd.summarize(log, dt.date(2024, 1, 20))
    # then: frequency = purchase days after the first; monetary = mean of repeat days' totals
    assert summary.customer_keys.tolist() == ["a", "b"]
    assert summary.frequency.tolist() == [2.0, 0.0]
    assert summary.recency.tolist() == [9.0, 0.0]
    assert summary.T.tolist() == [19.0, 15.0]
    assert summary.monetary is not None and summary.monetary.tolist() == [30.0, 0.0]


def test_weekly_summary_uses_monday_weeks():
    # given: Mon 2024-01-01 and Sun 2024-01-07 are one week; Mon 2024-01-08 the next
    log = TransactionLog.from_rows([1, 1, 1], [D(dt.date(2024, 1, 1)), D(dt.date(2024, 1, 7)), D(dt.date(2024, 1, 8))])
    # when
    summary = bgnbd.summarize(log, dt.date(2024, 1, 31), freq="W")
    # then
    assert (summary.frequency.tolist(), summary.recency.tolist(), summary.T.tolist()) == ([1.0], [1.0], [4.0])
    assert summary.monetary is None


def test_cdnow_summary_from_transactions_matches_the_published_summary():
    # given: the raw CDNOW sample; when: summarised like FHL (days, in weeks, to 1997-09-30)
    summary = bgnbd.summarize(cdnow.transactions(), cdnow.CALIBRATION_END, "D", unit_days=7)
    reference = cdnow.summary_file()
    # then: every customer's x, t_x and T equal the shipped summary (rounded to 2 places)
    assert summary.customer_keys.tolist() == reference["id"].tolist()
    assert summary.frequency.tolist() == reference["x"].tolist()
    assert np.abs(np.round(summary.recency, 2) - reference["t_x"]).max() < 1e-9
    assert np.abs(np.round(summary.T, 2) - reference["T"]).max() < 1e-9
    assert summary.monetary is not None
    assert np.abs(summary.monetary - reference["zbar"]).max() <= 0.005 + 1e-9


# --------------------------------------------------------------------------- published estimates


def test_cdnow_fit_reproduces_the_published_estimates():
    # given: the raw CDNOW transactions summarised in weeks
    summary = bgnbd.summarize(cdnow.transactions(), cdnow.CALIBRATION_END, "D", unit_days=7)
    # when
    fit = bgnbd.fit_bgnbd(summary.frequency, summary.recency, summary.T)
    # then: FHL 2005's r=0.243, alpha=4.414, a=0.793, b=2.426 to 3 decimals, LL −9582.4
    assert {k: round(v, 3) for k, v in fit.params.as_dict().items()} == cdnow.PUBLISHED_BGNBD
    assert round(fit.diagnostics.log_likelihood, 1) == cdnow.PUBLISHED_LOG_LIKELIHOOD
    assert fit.diagnostics.converged and fit.diagnostics.customers == 2357 and fit.diagnostics.repeat_customers == 946
    assert fit.diagnostics.gradient_norm < 1e-6


def test_cdnow_fit_matches_lifetimes_parameters_and_standard_errors():
    # given: the shipped summary file (the data lifetimes' docs fit)
    data = cdnow.summary_file()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = cdnow.lifetimes().BetaGeoFitter().fit(data["x"], data["t_x"], data["T"])
    # when
    fit = bgnbd.fit_bgnbd(data["x"], data["t_x"], data["T"])
    # then: same maximum (relative 1e-5) and the same standard errors (relative 1e-3)
    for name in bgnbd.PARAM_NAMES:
        assert fit.params.as_dict()[name] == pytest.approx(float(peer.params_[name]), rel=1e-5)
        assert fit.diagnostics.standard_errors is not None
        assert fit.diagnostics.standard_errors[name] == pytest.approx(float(peer.standard_errors_[name]), rel=1e-3)


def test_predictions_match_lifetimes_on_cdnow():
    # given: both fitted on CDNOW in days (so a CLV month is 30 days for both)
    data = cdnow.summary_file()
    x, t_x, T, zbar = data["x"], data["t_x"] * 7, data["T"] * 7, data["zbar"]
    lt = cdnow.lifetimes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = lt.BetaGeoFitter().fit(x, t_x, T)
        repeat = x > 0
        peer_gg = lt.GammaGammaFitter().fit(x[repeat], zbar[repeat])
        import pandas as pd

        peer_clv = peer_gg.customer_lifetime_value(
            peer, pd.Series(x), pd.Series(t_x), pd.Series(T), pd.Series(zbar), time=12, discount_rate=0.01, freq="D"
        ).to_numpy()
    params = BgNbdParams(**{k: float(v) for k, v in peer.params_.items()})
    from siyu.analytics.gamma_gamma import GammaGammaParams, conditional_expected_average_value

    spend = GammaGammaParams(**{k: float(v) for k, v in peer_gg.params_.items()})
    # when: our predictions with the peer's parameters
    alive = bgnbd.probability_alive(params, x, t_x, T)
    expected = bgnbd.conditional_expected_purchases(params, 90, x, t_x, T)
    clv = bgnbd.customer_lifetime_value(params, x, t_x, T, conditional_expected_average_value(spend, x, zbar), months=12)
    # then
    np.testing.assert_allclose(alive, peer.conditional_probability_alive(x, t_x, T), rtol=1e-9)
    np.testing.assert_allclose(expected, peer.conditional_expected_number_of_purchases_up_to_time(90, x, t_x, T), rtol=1e-9)
    np.testing.assert_allclose(clv, peer_clv, rtol=1e-9)
    assert float(bgnbd.expected_purchases(params, 90)) == pytest.approx(float(peer.expected_number_of_purchases_up_to_time(90)), rel=1e-12)


# --------------------------------------------------------------------------- the likelihood itself


def test_analytic_gradient_matches_finite_differences():
    data = cdnow.summary_file()
    compressed = bgnbd.compress(data["x"], data["t_x"], data["T"])
    theta = np.log([0.3, 5.0, 0.9, 2.5])
    error = check_grad(
        lambda th: bgnbd.log_likelihood_and_gradient(th, compressed)[0],
        lambda th: bgnbd.log_likelihood_and_gradient(th, compressed)[1],
        theta,
    )
    norm = np.linalg.norm(bgnbd.log_likelihood_and_gradient(theta, compressed)[1])
    assert error / norm < 1e-5


def test_compressed_likelihood_equals_the_per_customer_sum():
    # given: customers with repeated histories; when: the weighted, compressed total
    x = np.array([0.0, 0.0, 2.0, 2.0, 1.0])
    t_x = np.array([0.0, 0.0, 5.0, 5.0, 3.0])
    T = np.array([10.0, 7.0, 10.0, 10.0, 4.0])
    params = BgNbdParams(r=0.5, alpha=3.0, a=1.2, b=2.0)
    total = bgnbd.log_likelihood(params, x, t_x, T)
    # then: equals the sum of single-customer likelihoods
    assert total == pytest.approx(sum(bgnbd.log_likelihood(params, x[i : i + 1], t_x[i : i + 1], T[i : i + 1]) for i in range(5)), rel=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_known_parameters_are_recovered_within_four_standard_errors(seed):
    # given: 30,000 simulated customers observed for 39–52 weeks
    truth = BgNbdParams(r=0.25, alpha=4.0, a=0.8, b=2.5)
    rng = np.random.default_rng(seed)
    x, t_x, T = simulate_summary(truth, rng.uniform(39, 52, 30_000), seed=seed)
    # when
    fit = bgnbd.fit_bgnbd(x, t_x, T)
    # then: every estimate is within 4 of its standard errors of the truth (and within 15%)
    assert fit.diagnostics.converged and fit.diagnostics.standard_errors is not None
    for name, true_value in truth.as_dict().items():
        estimate, se = fit.params.as_dict()[name], fit.diagnostics.standard_errors[name]
        assert abs(estimate - true_value) < 4 * se, (name, estimate, se)
        assert estimate == pytest.approx(true_value, rel=0.15)


def test_refuses_to_fit_with_too_few_repeat_customers():
    # given: 19 repeat customers and many one-time buyers
    x = np.array([1.0] * 19 + [0.0] * 200)
    t_x = np.array([3.0] * 19 + [0.0] * 200)
    T = np.full(219, 10.0)
    # when / then
    with pytest.raises(ValidationFailed) as refused:
        bgnbd.fit_bgnbd(x, t_x, T, min_repeat_customers=20)
    assert refused.value.code == "too_little_data"
    assert refused.value.message == "too little data to fit BG/NBD: 19 customers with repeat purchases, at least 20 are needed"
    assert refused.value.details == {"repeat_customers": 19, "required": 20}


def test_rejects_an_inconsistent_summary():
    with pytest.raises(ValidationFailed) as refused:
        bgnbd.fit_bgnbd(np.array([1.0, 0.0]), np.array([5.0, 1.0]), np.array([4.0, 3.0]), min_repeat_customers=1)
    assert refused.value.code == "invalid_summary"


# --------------------------------------------------------------------------- predictions and holdout


def test_probability_alive_is_one_without_repeats_and_falls_with_silence():
    params = BgNbdParams(r=0.25, alpha=4.0, a=0.8, b=2.5)
    alive = bgnbd.probability_alive(params, np.array([0.0, 3.0, 3.0]), np.array([0.0, 30.0, 10.0]), np.array([31.0, 31.0, 31.0]))
    assert alive[0] == 1.0
    assert 0 < alive[2] < alive[1] < 1


def test_score_equals_the_separate_predictions():
    data = cdnow.summary_file()
    params = BgNbdParams(**cdnow.PUBLISHED_BGNBD)
    scores = bgnbd.score(params, data["x"], data["t_x"], data["T"], horizon=13.0, months=6, unit_days=7)
    np.testing.assert_allclose(scores.probability_alive, bgnbd.probability_alive(params, data["x"], data["t_x"], data["T"]), rtol=1e-12)
    np.testing.assert_allclose(
        scores.expected_purchases, bgnbd.conditional_expected_purchases(params, 13.0, data["x"], data["t_x"], data["T"]), rtol=1e-12
    )
    np.testing.assert_allclose(
        scores.discounted_purchases,
        bgnbd.discounted_expected_purchases(params, data["x"], data["t_x"], data["T"], months=6, unit_days=7),
        rtol=1e-12,
    )


def test_calibration_holdout_report_on_cdnow():
    # given: FHL's split: calibration to 1997-09-30, holdout to 1998-06-30 (39 weeks)
    split = bgnbd.calibration_and_holdout(cdnow.transactions(), cdnow.CALIBRATION_END, cdnow.OBSERVATION_END, "D", unit_days=7)
    fit = bgnbd.fit_bgnbd(split.calibration.frequency, split.calibration.recency, split.calibration.T)
    # when
    buckets = bgnbd.holdout_report(fit.params, split)
    # then: 8 buckets covering every calibration customer; the 1,882 distinct holdout
    # purchase days of these customers (pandas: the distinct (customer, day) pairs of
    # 1997-10-01…1998-06-30); the model predicts 1,653.4 of them (within 15%)
    assert [b.frequency for b in buckets] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(b.customers for b in buckets) == 2357
    assert buckets[0].customers == 1411
    assert split.holdout_duration == pytest.approx(273 / 7)
    actual, predicted = sum(b.actual_purchases for b in buckets), sum(b.predicted_purchases for b in buckets)
    assert actual == 1882.0
    assert predicted == pytest.approx(1653.41, abs=0.05)
    assert abs(predicted - actual) / actual < 0.15
    for bucket in buckets:
        assert bucket.predicted_mean == pytest.approx(bucket.predicted_purchases / bucket.customers)


def test_calibration_end_must_precede_observation_end():
    with pytest.raises(ValidationFailed) as refused:
        bgnbd.calibration_and_holdout(cdnow.transactions(), dt.date(1998, 7, 1), dt.date(1998, 6, 30))
    assert refused.value.code == "invalid_calibration_end"


def test_an_optimiser_that_does_not_confirm_convergence_is_reported_as_a_warning(monkeypatch):
    # given: the optimiser's own verdict is "not converged"
    real = bgnbd.minimize

    def unconfirmed(*args, **kwargs):
        result = real(*args, **kwargs)
        result.success, result.message = False, "ABNORMAL: "
        return result

    monkeypatch.setattr(bgnbd, "minimize", unconfirmed)
    x, t_x, T = simulate_summary(BgNbdParams(r=0.25, alpha=4.0, a=0.8, b=2.5), np.full(2_000, 52.0), seed=4)
    # when
    fit = bgnbd.fit_bgnbd(x, t_x, T)
    # then
    assert fit.diagnostics.converged is False
    assert [w for w in fit.diagnostics.warnings if w.startswith("the optimiser stopped")] == [
        "the optimiser stopped without confirming convergence (ABNORMAL:): compare with a holdout before relying on it"
    ]
