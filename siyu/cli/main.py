"""The ``siyu`` command: set up, run, and administer a siyu installation.

    siyu init                       create the data directory and database
    siyu up [--host --port]         web + worker + scheduler on this machine
    siyu worker                     one more queue consumer (scale-out)
    siyu demo                       seed the demo workspace
    siyu workspace create|list
    siyu staff create
    siyu token create
    siyu contacts import|export
    siyu orders import
    siyu channels add-wecom|add-matrix|run-matrix|list|map-staff
    siyu sandbox say|join
    siyu moderation check|blacklist list|add|lift
    siyu analytics fit-bgnbd
    siyu campaigns poster|confirm-due
    siyu segments list|show|build|preview
    siyu broadcasts list|preview|send|stats
    siyu quota explain
    siyu journeys apply|list|show|runs|tick
    siyu playbooks list|instantiate
    siyu group-health health|heatmap|roles|alerts|care|repull
    siyu groups list|show|create|update|archive|messages|remove-member|dismiss|settings|auto-replies list|rebuild-activity
    siyu bench pipeline|clv|livecode|posters|outreach

Every command that reports accepts ``--json``. Django is set up only by the commands that
need it, so ``siyu --help`` works without a database.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import typer

from siyu.acquisition.cli import map_staff
from siyu.analytics.cli import analytics_app
from siyu.campaigns.cli import campaigns_app
from siyu.cli.admin import JsonFlag, staff_app, token_app, workspace_app
from siyu.cli.bench import bench_app
from siyu.cli.channels import channels_app, sandbox_app
from siyu.cli.contacts import contacts_app
from siyu.cli.runtime import SETTINGS_MODULE, command, emit, setup_django
from siyu.commerce.cli import app as orders_app
from siyu.communities.cli import groups_app
from siyu.communities.health_cli import health_app
from siyu.journeys.cli import journeys_app, playbooks_app
from siyu.moderation.cli import moderation_app
from siyu.outreach.cli import broadcasts_app, quota_app
from siyu.segments.cli import segments_app

app = typer.Typer(
    name="siyu",
    help="siyu (私域): private-domain customer operations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(workspace_app, name="workspace")
app.add_typer(staff_app, name="staff")
app.add_typer(token_app, name="token")
app.add_typer(contacts_app, name="contacts")
app.add_typer(orders_app, name="orders")
app.add_typer(campaigns_app, name="campaigns")
app.add_typer(channels_app, name="channels")
channels_app.command("map-staff")(map_staff)  # defined with the live codes that need it
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(moderation_app, name="moderation")
app.add_typer(analytics_app, name="analytics")
app.add_typer(segments_app, name="segments")
app.add_typer(broadcasts_app, name="broadcasts")
app.add_typer(quota_app, name="quota")
app.add_typer(journeys_app, name="journeys")
app.add_typer(playbooks_app, name="playbooks")
app.add_typer(health_app, name="group-health")
app.add_typer(groups_app, name="groups")
app.add_typer(bench_app, name="bench")


def _init_text(info: dict[str, Any]) -> str:
    applied = info["applied_migrations"]
    schema = f"{applied} migrations applied" if applied else "schema up to date"
    return f"siyu home: {info['home']}\ndatabase: {info['database']['engine']} {info['database']['name']} ({schema})\nqueue: {info['queue']}"


@app.command()
def init(json_out: JsonFlag = False) -> None:
    """Create the data directory (SIYU_HOME) and bring the database up to date."""
    with command(json_out):
        from siyu.cli.server import run_init

        info = run_init()
        emit(json_out, info, _init_text(info))


@app.command()
def up(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Web server processes (each with 4 threads).", min=1)] = 2,
    json_out: JsonFlag = False,
) -> None:
    """Run siyu on this machine: init, then the web server and the queue worker until Ctrl-C."""
    with command(json_out):
        from siyu.cli import server

        info = server.run_init()
        demo = server.demo_login()
        env = server.child_env()
    from django.db import connections

    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{server.bind_address(shown_host, port)}/console/"
    text = f"{_init_text(info)}\nsiyu console: {url}"
    if demo:
        text += f"\ndemo login: {demo['email']} / {demo['password']}  (workspace {demo['workspace']})"
    emit(json_out, {"url": url, "home": info["home"], "demo": demo}, text)
    children = [("web", server.web_command(host, port, workers)), ("worker", server.worker_command())]
    if server.has_matrix_accounts():
        children.append(("matrix", server.matrix_command()))
    connections.close_all()  # the children open their own
    code = server.supervise(
        children,
        env,
        lambda line: typer.echo(line, err=True),
    )
    raise typer.Exit(code)


@app.command()
def worker(
    threads: Annotated[int | None, typer.Option("--workers", help="Worker threads (default from settings).", min=1)] = None,
) -> None:
    """Run one Huey consumer (tasks and the periodic scheduler) in the foreground."""
    setup_django()
    from django.core.management import call_command

    options: dict[str, Any] = {}
    if threads:
        options["workers"] = threads
    call_command("run_huey", **options)


@app.command()
def demo(
    contacts: Annotated[int, typer.Option(help="How many contacts to generate.", min=1)] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    json_out: JsonFlag = False,
) -> None:
    """Create the demo workspace with generated contacts, groups and events (once)."""
    with command(json_out):
        from siyu.cli.server import run_init
        from siyu.demo.seed import seed_demo

        run_init()  # a first-time user runs `siyu demo` before anything else
        result = seed_demo(contacts=contacts, seed=seed)
        counts = ", ".join(f"{result[k]} {k}" for k in ("contacts", "groups", "tags", "staff", "events") if k in result)
        text = (
            f"demo workspace {result.get('workspace')} {'created' if result.get('created') else 'already there'}: {counts}\n"
            f"login: {result.get('owner_email')} / {result.get('password')}"
        )
        emit(json_out, result, text)


def main() -> None:
    """Entry point of the ``siyu`` console script."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    app()


if __name__ == "__main__":
    main()
