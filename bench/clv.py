"""Benchmark: BG/NBD + Gamma-Gamma fit and CLV scoring on synthetic customers from a
known process, side by side with the ``lifetimes`` package on the same data.

    python -m bench.clv --customers 200000 --json

Simulates ``--customers`` customers (true r, alpha, a, b in days; Gamma-Gamma spend),
summarises their daily purchase log, fits ours on all of them (``fit_seconds``), scores
all of them (P(alive), 90-day purchases, expected AOV, 12-month CLV: ``score_seconds``),
then fits ``lifetimes``' BetaGeoFitter on the first ``--peer-customers`` customers' summary
and ours on exactly the same arrays, each timed as the best of ``--repeats`` runs
(``speedup_vs_lifetimes``). ``lifetimes`` is a dev/test dependency only.

BLAS runs single-threaded for both fitters (set before numpy loads): the optimisers'
4×4 algebra gains nothing from threads, and on a busy 2-core machine OpenBLAS's thread
hand-offs add milliseconds per iteration to whichever fitter uses BLAS.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from siyu.analytics import bgnbd, gamma_gamma  # noqa: E402
from siyu.analytics.runners import expected_aov  # noqa: E402
from siyu.analytics.simulate import simulate_transactions  # noqa: E402
from siyu.analytics.transactions import day_to_date  # noqa: E402

TRUE_BGNBD = bgnbd.BgNbdParams(r=0.25, alpha=30.0, a=0.8, b=2.5)
TRUE_GAMMA_GAMMA = gamma_gamma.GammaGammaParams(p=6.0, q=4.0, v=150.0)


def _best(repeats: int, run: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def _round(params: dict[str, float]) -> dict[str, float]:
    return {k: round(float(v), 6) for k, v in params.items()}


def run(customers: int, peer_customers: int, repeats: int, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    log = simulate_transactions(customers, TRUE_BGNBD, TRUE_GAMMA_GAMMA, seed=seed)
    simulate_seconds = time.perf_counter() - started
    assert log.last_day is not None
    observation_end = day_to_date(log.last_day)

    started = time.perf_counter()
    summary = bgnbd.summarize(log, observation_end, "D")
    summary_seconds = time.perf_counter() - started
    x, t_x, big_t, monetary = summary.frequency, summary.recency, summary.T, summary.monetary
    assert monetary is not None

    started = time.perf_counter()
    fit = bgnbd.fit_bgnbd(x, t_x, big_t)
    spend = gamma_gamma.fit_gamma_gamma(x, monetary)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    scores = bgnbd.score(fit.params, x, t_x, big_t, horizon=90.0, months=12, monthly_discount_rate=0.01)
    aov = expected_aov(spend.params, x, monetary)
    clv = aov * scores.discounted_purchases
    score_seconds = time.perf_counter() - started

    report: dict[str, Any] = {
        "customers": len(summary),
        "transactions": len(log),
        "repeat_customers": fit.diagnostics.repeat_customers,
        "distinct_histories": fit.diagnostics.distinct_patterns,
        "simulate_seconds": round(simulate_seconds, 3),
        "summary_seconds": round(summary_seconds, 3),
        "fit_seconds": round(fit_seconds, 3),
        "bgnbd_fit_seconds": round(fit.diagnostics.seconds, 3),
        "gamma_gamma_fit_seconds": round(spend.diagnostics.seconds, 3),
        "score_seconds": round(score_seconds, 3),
        "true_params": {**TRUE_BGNBD.as_dict(), **TRUE_GAMMA_GAMMA.as_dict()},
        "params": _round({**fit.params.as_dict(), **spend.params.as_dict()}),
        "standard_errors": _round({**(fit.diagnostics.standard_errors or {}), **(spend.diagnostics.standard_errors or {})}),
        "relative_error_vs_true": _round(
            {k: v / t - 1 for k, v, t in (
                (name, {**fit.params.as_dict(), **spend.params.as_dict()}[name], true)
                for name, true in {**TRUE_BGNBD.as_dict(), **TRUE_GAMMA_GAMMA.as_dict()}.items()
            )}
        ),
        "converged": fit.diagnostics.converged and spend.diagnostics.converged,
        "log_likelihood": round(fit.diagnostics.log_likelihood, 3),
        "clv_total": round(float(clv.sum()), 2),
        "expected_purchases_90d_total": round(float(scores.expected_purchases.sum()), 3),
    }

    subset = slice(0, min(peer_customers, len(summary)))
    sx, stx, sT = x[subset], t_x[subset], big_t[subset]
    ours_seconds, ours = _best(repeats, lambda: bgnbd.fit_bgnbd(sx, stx, sT))
    report["ours_subset_fit_seconds"] = round(ours_seconds, 4)
    report["ours_subset_params"] = _round(ours.params.as_dict())
    report["lifetimes_subset_customers"] = int(sx.shape[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from lifetimes import BetaGeoFitter
    except ImportError:
        report["lifetimes"] = "not installed (pip install lifetimes==0.11.3: a dev dependency)"
        return report
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer_seconds, peer = _best(repeats, lambda: BetaGeoFitter().fit(sx, stx, sT))
    peer_params = {k: float(v) for k, v in peer.params_.items()}
    report["lifetimes_fit_seconds"] = round(peer_seconds, 4)
    report["lifetimes_params"] = _round(peer_params)
    report["max_relative_param_diff_vs_lifetimes"] = float(
        max(abs(ours.params.as_dict()[k] / peer_params[k] - 1) for k in bgnbd.PARAM_NAMES)
    )
    report["speedup_vs_lifetimes"] = round(peer_seconds / ours_seconds, 1)
    report["lifetimes_version"] = __import__("lifetimes").__version__
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.clv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--peer-customers", type=int, default=100_000, help="subset fitted by both ours and lifetimes")
    parser.add_argument("--repeats", type=int, default=3, help="time each subset fit as the best of this many runs")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", action="store_true", help="print JSON (the only output format; kept for the siyu bench interface)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = run(args.customers, args.peer_customers, args.repeats, args.seed)
    report["total_seconds"] = round(time.perf_counter() - started, 2)
    report["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__,
                         "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS"), "date": dt.date.today().isoformat()}
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
