"""``siyu bench``: the benchmarks in ``bench/`` (each prints JSON with its baseline
measured side by side in the same run)."""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from siyu.acquisition import cli as acquisition_cli

bench_app = typer.Typer(help="Benchmarks (not tests): each prints JSON.", no_args_is_help=True)
bench_app.command("livecode")(acquisition_cli.livecode)
bench_app.command("posters")(acquisition_cli.posters)


def _run(module: str, argv: list[str]) -> None:
    code = importlib.import_module(f"bench.{module}").main(argv)
    raise typer.Exit(code or 0)


@bench_app.command("pipeline")
def pipeline(
    messages: Annotated[int, typer.Option(help="Messages to feed through the inbound path.")] = 100_000,
    words: Annotated[int, typer.Option(help="Size of the sensitive/competitor word list.")] = 1000,
    batch: Annotated[int, typer.Option(help="Messages per batch (0: the worker's SIYU_INBOX_BATCH_SIZE).")] = 0,
    probe_writes: Annotated[bool, typer.Option("--probe-writes", help="Time a console edit every 100 ms from a second process.")] = False,
    serial: Annotated[bool, typer.Option("--serial", help="Receive and process in turns in one process (no worker process).")] = False,
    threads: Annotated[int, typer.Option(help="Worker threads (0: the Huey consumer's, SIYU_WORKERS).")] = 0,
    json_out: Annotated[bool, typer.Option("--json")] = True,
) -> None:
    """Group messages through inbox → moderation → persisted, vs a naive keyword matcher."""
    _run("pipeline", ["--messages", str(messages), "--words", str(words), "--batch", str(batch), "--threads", str(threads),
                      *(["--probe-writes"] if probe_writes else []), *(["--serial"] if serial else []), *(["--json"] if json_out else [])])


@bench_app.command("clv")
def clv(
    customers: Annotated[int, typer.Option(help="Synthetic customers from a known BG/NBD process.")] = 200_000,
    json_out: Annotated[bool, typer.Option("--json")] = True,
) -> None:
    """BG/NBD + Gamma-Gamma fit and scoring, vs the lifetimes package on a subset."""
    _run("clv", ["--customers", str(customers), *(["--json"] if json_out else [])])


@bench_app.command("outreach")
def outreach(
    contacts: Annotated[int, typer.Option(help="Synthetic contacts.")] = 200_000,
    events: Annotated[int, typer.Option(help="Synthetic timeline events.")] = 2_000_000,
    database_url: Annotated[str, typer.Option("--database-url", help="A scratch PostgreSQL database instead of SQLite.")] = "",
    json_out: Annotated[bool, typer.Option("--json")] = True,
) -> None:
    """A segment over synthetic contacts: first build, incremental update vs full rebuild,
    then a broadcast planned through the quota ledger."""
    argv = ["--contacts", str(contacts), "--events", str(events), *(["--database-url", database_url] if database_url else [])]
    _run("outreach", [*argv, *(["--json"] if json_out else [])])
