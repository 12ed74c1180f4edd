"""``siyu analytics …``: the analytics runners from the command line (a typer app the main
``siyu`` command mounts with ``app.add_typer(analytics_app, name="analytics")``).

    siyu analytics fit-bgnbd --transactions FILE.csv --customer-col C --date-col D
                             [--amount-col A] [--calibration-end DATE] [--freq D|W] --json
    siyu analytics fit-bgnbd --workspace SLUG --json
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from pydantic import ValidationError

from siyu.cli.runtime import UsageError, command, emit, workspace_by_slug

analytics_app = typer.Typer(help="Analytics: repurchase models (BG/NBD, Gamma-Gamma, CLV).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@analytics_app.callback()
def _analytics() -> None:
    """Analytics: repurchase models (BG/NBD, Gamma-Gamma, CLV)."""
    # A callback keeps this a command group even while it has a single command.


def _text(result: Any) -> str:
    lines = [
        f"BG/NBD on {result.customers} customers ({result.repeat_customers} repeat), time unit: {result.time_unit}",
        f"  r={result.r:.4f} alpha={result.alpha:.4f} a={result.a:.4f} b={result.b:.4f}  log-likelihood {result.log_likelihood:.2f}",
    ]
    if result.p is not None:
        lines.append(f"Gamma-Gamma: p={result.p:.4f} q={result.q:.4f} v={result.v:.4f}")
    elif result.gamma_gamma_note:
        lines.append(f"Gamma-Gamma: {result.gamma_gamma_note}")
    for warning in result.diagnostics.warnings:
        lines.append(f"warning: {warning}")
    if result.holdout is not None:
        h = result.holdout
        lines.append(f"holdout {h.calibration_end}…{h.observation_end}: actual {h.actual_purchases:.0f}, predicted {h.predicted_purchases:.1f}")
        lines += [f"  x={b.frequency:>3}: {b.customers:6d} customers, actual {b.actual_mean:.3f}, predicted {b.predicted_mean:.3f}" for b in h.buckets]
    return "\n".join(lines)


@analytics_app.command("fit-bgnbd")
def fit_bgnbd_command(
    transactions: Annotated[Path | None, typer.Option("--transactions", help="CSV file of purchases (UTF-8 or GB18030).")] = None,
    customer_col: Annotated[str, typer.Option("--customer-col", help="Column with the customer id.")] = "customer",
    date_col: Annotated[str, typer.Option("--date-col", help="Column with the purchase date (or date-time).")] = "date",
    amount_col: Annotated[str | None, typer.Option("--amount-col", help="Column with the amount (enables Gamma-Gamma and CLV).")] = None,
    workspace: Annotated[str | None, typer.Option("--workspace", help="Fit on this workspace's orders instead of a file.")] = None,
    calibration_end: Annotated[str | None, typer.Option("--calibration-end", help="Fit up to this day (YYYY-MM-DD), test after it.")] = None,
    observation_end: Annotated[str | None, typer.Option("--observation-end", help="Last day of data (default: the last purchase / today).")] = None,
    freq: Annotated[str, typer.Option("--freq", help="Purchase periods: D (distinct days) or W (weeks).")] = "D",
    min_repeat_customers: Annotated[int, typer.Option("--min-repeat-customers", min=2)] = 20,
    json_out: JsonFlag = False,
) -> None:
    """Fit BG/NBD (and Gamma-Gamma with amounts) by maximum likelihood; print the
    parameters, fit diagnostics and, with --calibration-end, the holdout report."""
    with command(json_out):
        from siyu.analytics.queries import BgNbdQuery
        from siyu.analytics.runners import run_query
        from siyu.analytics.sources import DataSource, TransactionFileSource, WorkspaceSource
        from siyu.analytics.transactions import read_transactions_csv

        if (transactions is None) == (workspace is None):
            raise UsageError("give either --transactions FILE.csv or --workspace SLUG")
        if freq not in ("D", "W"):
            raise UsageError("--freq must be D or W")
        try:
            cal_end = dt.date.fromisoformat(calibration_end) if calibration_end else None
            obs_end = dt.date.fromisoformat(observation_end) if observation_end else None
        except ValueError as exc:
            raise UsageError(f"dates are YYYY-MM-DD: {exc}") from exc
        source: DataSource
        if transactions is not None:
            log = read_transactions_csv(transactions, customer_col=customer_col, date_col=date_col, amount_col=amount_col)
            source = TransactionFileSource(log, name=transactions.name)
        else:
            source = WorkspaceSource(workspace_by_slug(str(workspace)))
        period: Literal["D", "W"] = "D" if freq == "D" else "W"
        try:
            query = BgNbdQuery(
                calibration_end=cal_end, observation_end=obs_end, freq=period, min_repeat_customers=min_repeat_customers, top_customers=0
            )
        except ValidationError as exc:
            raise UsageError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from exc
        result = run_query(query, source)
        emit(json_out, result.model_dump(mode="json"), _text(result))
