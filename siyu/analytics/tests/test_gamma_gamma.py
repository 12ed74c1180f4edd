"""Gamma-Gamma: the published CDNOW estimates, agreement with lifetimes, the expected
order value, recovery of known parameters, the small-data guard."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from siyu.analytics import gamma_gamma
from siyu.analytics.bgnbd import BgNbdParams, summarize
from siyu.analytics.gamma_gamma import GammaGammaParams
from siyu.analytics.simulate import simulate_transactions
from siyu.analytics.tests import cdnow
from siyu.analytics.transactions import day_to_date
from siyu.core.errors import ValidationFailed


def test_cdnow_fit_reproduces_the_published_estimates():
    # given: CDNOW's repeat customers with their mean repeat spend (the shipped summary)
    data = cdnow.summary_file()
    # when
    fit = gamma_gamma.fit_gamma_gamma(data["x"], data["zbar"])
    # then: lifetimes' documented p=6.25, q=3.74, v=15.45 (to 2 decimals), 946 customers
    assert {k: round(v, 2) for k, v in fit.params.as_dict().items()} == cdnow.PUBLISHED_GAMMA_GAMMA
    assert fit.diagnostics.customers == 946 and fit.diagnostics.converged


def test_cdnow_fit_matches_lifetimes():
    data = cdnow.summary_file()
    repeat = data["x"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer = cdnow.lifetimes().GammaGammaFitter().fit(data["x"][repeat], data["zbar"][repeat])
    fit = gamma_gamma.fit_gamma_gamma(data["x"], data["zbar"])
    for name in gamma_gamma.PARAM_NAMES:
        assert fit.params.as_dict()[name] == pytest.approx(float(peer.params_[name]), rel=1e-5)
        assert fit.diagnostics.standard_errors is not None
        assert fit.diagnostics.standard_errors[name] == pytest.approx(float(peer.standard_errors_[name]), rel=1e-3)
    expected = gamma_gamma.conditional_expected_average_value(fit.params, data["x"], data["zbar"])
    np.testing.assert_allclose(expected, peer.conditional_expected_average_profit(data["x"], data["zbar"]), rtol=1e-5)


def test_expected_value_is_a_credibility_weighted_mean():
    params = GammaGammaParams(p=6.0, q=4.0, v=15.0)
    value = gamma_gamma.conditional_expected_average_value(params, np.array([0.0, 2.0]), np.array([0.0, 40.0]))
    # x = 0: the population mean p·v/(q−1) = 30; x = 2: (q−1)/(px+q−1)·30 + px/(px+q−1)·40
    assert value[0] == pytest.approx(30.0)
    assert value[1] == pytest.approx(3 / 15 * 30 + 12 / 15 * 40)
    assert params.population_mean == pytest.approx(30.0)


def test_known_spend_parameters_are_recovered():
    # given: 40,000 simulated customers with Gamma-Gamma spend p=6, q=4, v=150 (yuan)
    truth = GammaGammaParams(p=6.0, q=4.0, v=150.0)
    log = simulate_transactions(40_000, BgNbdParams(r=0.5, alpha=20.0, a=0.8, b=2.5), truth, seed=7)
    assert log.last_day is not None
    summary = summarize(log, day_to_date(log.last_day))
    assert summary.monetary is not None
    # when
    fit = gamma_gamma.fit_gamma_gamma(summary.frequency, summary.monetary)
    # then
    assert fit.diagnostics.standard_errors is not None
    for name, true_value in truth.as_dict().items():
        assert abs(fit.params.as_dict()[name] - true_value) < 4 * fit.diagnostics.standard_errors[name], name


def test_refuses_with_too_few_repeat_customers():
    with pytest.raises(ValidationFailed) as refused:
        gamma_gamma.fit_gamma_gamma(np.array([1.0] * 5 + [0.0] * 50), np.array([20.0] * 5 + [0.0] * 50), min_repeat_customers=20)
    assert refused.value.code == "too_little_data"
    assert refused.value.message == "too little data to fit Gamma-Gamma: 5 customers with repeat purchases, at least 20 are needed"


def test_an_optimiser_that_does_not_confirm_convergence_is_reported_as_a_warning(monkeypatch):
    # given: the optimiser's own verdict is "not converged" (as L-BFGS-B's ABNORMAL ends are)
    real = gamma_gamma.minimize

    def unconfirmed(*args, **kwargs):
        result = real(*args, **kwargs)
        result.success, result.message = False, "ABNORMAL: "
        return result

    monkeypatch.setattr(gamma_gamma, "minimize", unconfirmed)
    data = cdnow.summary_file()
    # when
    fit = gamma_gamma.fit_gamma_gamma(data["x"], data["zbar"])
    # then: the fit says so in its warnings, not only in its diagnostics
    assert fit.diagnostics.converged is False
    assert [w for w in fit.diagnostics.warnings if w.startswith("the optimiser stopped")] == [
        "the optimiser stopped without confirming convergence (ABNORMAL:): compare with a holdout before relying on it"
    ]
