"""``siyu bench livecode`` and ``siyu bench posters``: a typer sub-app (the lead mounts
``bench_app``) that runs the benchmarks in ``bench/`` and prints their JSON."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

BENCH_DIR = Path(__file__).resolve().parent.parent.parent / "bench"

bench_app = typer.Typer(help="Benchmarks (each prints JSON).", no_args_is_help=True)


def _bench(name: str) -> ModuleType:
    # bench/ is not an installed package: load the script from the source tree.
    path = BENCH_DIR / f"{name}.py"
    if not path.is_file():
        raise typer.BadParameter(f"{path} not found (benchmarks run from a source checkout)")
    spec = importlib.util.spec_from_file_location(f"siyu_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_livecode(scans: int = 20000, concurrency: int = 64, database_url: str = "") -> dict[str, Any]:
    result: dict[str, Any] = _bench("livecode").run(scans, concurrency, database_url)
    return result


def run_posters(count: int = 500) -> dict[str, Any]:
    result: dict[str, Any] = _bench("posters").run(count)
    return result


@bench_app.command()
def livecode(
    scans: Annotated[int, typer.Option(help="Scans to send.", min=1)] = 20000,
    concurrency: Annotated[int, typer.Option(help="Concurrent HTTP clients.", min=1, max=1024)] = 64,
    database_url: Annotated[str, typer.Option("--database-url", help="PostgreSQL URL (default: a fresh SQLite).")] = "",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Drive /c/<code> of a real server; cap_violations must be 0."""
    result = run_livecode(scans, concurrency, database_url)
    typer.echo(json.dumps(result) if json_out else "\n".join(f"{k}: {v}" for k, v in result.items()))
    raise typer.Exit(0 if result["cap_violations"] == 0 else 1)


@bench_app.command()
def posters(
    count: Annotated[int, typer.Option(help="Posters to render.", min=1)] = 500,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Render distinct fission posters and report posters_per_s."""
    result = run_posters(count)
    typer.echo(json.dumps(result) if json_out else "\n".join(f"{k}: {v}" for k, v in result.items()))


def map_staff_userid(workspace_slug: str, account_id: int, staff_id: int, userid: str) -> dict[str, Any]:
    """Map a staff member to their WeCom userid on one account (empty userid: unmap)."""
    from siyu.accounts.models import Staff
    from siyu.acquisition.actions import do_map_staff_identity
    from siyu.channels.models import ChannelAccount
    from siyu.cli.runtime import workspace_by_slug

    ws = workspace_by_slug(workspace_slug)
    account = ChannelAccount.objects.get_in_workspace(ws, pk=account_id)
    staff = Staff.objects.get_in_workspace(ws, pk=staff_id)
    identity = do_map_staff_identity(account, staff, None, userid=userid)
    return {"account_id": account.pk, "staff_id": staff.pk, "userid": identity.external_id if identity else ""}


def map_staff(
    account: Annotated[int, typer.Option("--account", help="Channel account id.")],
    staff: Annotated[int, typer.Option("--staff", help="Staff id.")],
    userid: Annotated[str, typer.Option("--userid", help="The staff member's WeCom userid ('' removes the mapping).")],
    workspace: Annotated[str, typer.Option("--workspace", help="Workspace slug.")] = "demo",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Map a staff member to their WeCom userid (needed for 「联系我」 live codes)."""
    from siyu.cli.runtime import command, emit

    with command(json_out):
        result = map_staff_userid(workspace, account, staff, userid)
        emit(json_out, result, f"staff {result['staff_id']} on account {result['account_id']}: {result['userid'] or '(unmapped)'}")
