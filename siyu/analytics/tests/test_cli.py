"""``siyu analytics fit-bgnbd`` on a CSV file."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from siyu.analytics.cli import analytics_app
from siyu.analytics.tests import cdnow
from siyu.analytics.transactions import day_to_date


def _csv(tmp_path):
    log = cdnow.transactions()
    assert log.cents is not None
    rows = ["cust,day,amount"] + [
        f"{log.customer_keys[c]},{day_to_date(int(d)).isoformat()},{cents / 100:.2f}" for c, d, cents in zip(log.customer, log.day, log.cents, strict=True)
    ]
    path = tmp_path / "cdnow.csv"
    path.write_text("\n".join(rows))
    return path


def test_fit_bgnbd_json(tmp_path):
    path = _csv(tmp_path)
    result = CliRunner().invoke(analytics_app, [
        "fit-bgnbd", "--transactions", str(path), "--customer-col", "cust", "--date-col", "day", "--amount-col", "amount",
        "--calibration-end", "1997-09-30", "--observation-end", "1998-06-30", "--json",
    ])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert (round(body["r"], 3), round(body["alpha"] / 7, 3), round(body["a"], 3), round(body["b"], 3)) == (0.243, 4.414, 0.793, 2.426)
    assert (body["customers"], body["holdout"]["actual_purchases"]) == (2357, 1882.0)
    assert {"p", "q", "v", "log_likelihood"} <= set(body)


def test_fit_bgnbd_usage_errors(tmp_path):
    path = _csv(tmp_path)
    both_missing = CliRunner().invoke(analytics_app, ["fit-bgnbd", "--json"])
    assert both_missing.exit_code == 2
    assert json.loads(both_missing.output)["error"]["message"] == "give either --transactions FILE.csv or --workspace SLUG"
    reversed_dates = CliRunner().invoke(analytics_app, [
        "fit-bgnbd", "--transactions", str(path), "--customer-col", "cust", "--date-col", "day",
        "--calibration-end", "1998-07-01", "--observation-end", "1998-06-30", "--json",
    ])
    assert reversed_dates.exit_code == 2
    assert json.loads(reversed_dates.output)["error"]["message"] == "calibration_end must be before observation_end"
    missing_column = CliRunner().invoke(analytics_app, ["fit-bgnbd", "--transactions", str(path), "--customer-col", "客户", "--json"])
    assert missing_column.exit_code == 1
    assert json.loads(missing_column.output)["error"]["code"] == "invalid_columns"
