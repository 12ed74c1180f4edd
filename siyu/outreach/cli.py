"""``siyu broadcasts ...`` and ``siyu quota ...``: typer sub-apps (mounted in
``siyu.cli.main``) and the plain functions behind them.

    siyu broadcasts list --workspace acme --json
    siyu broadcasts preview --workspace acme --broadcast 3 --json
    siyu broadcasts send --workspace acme --broadcast 3 [--staff ops@acme.test] --json
    siyu broadcasts stats --workspace acme --broadcast 3 --json
    siyu quota explain --workspace acme --contact 42 --json
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from siyu.cli.runtime import command, emit, staff_or_system, workspace_by_slug

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
BroadcastOpt = Annotated[int, typer.Option("--broadcast", help="Broadcast id.")]
StaffOpt = Annotated[str, typer.Option("--staff", help="Act as this staff member (email); default: the system.")]

broadcasts_app = typer.Typer(help="Broadcasts (群发): preview, send, stats.", no_args_is_help=True)
quota_app = typer.Typer(help="The quota ledger (发送配额): why did (or didn't) someone get a message.", no_args_is_help=True)


def _broadcast(workspace_slug: str, broadcast_id: int) -> Any:
    from siyu.outreach.models import Broadcast

    return Broadcast.objects.select_related("workspace", "winner").get_in_workspace(workspace_by_slug(workspace_slug), pk=broadcast_id)


def list_broadcasts(workspace_slug: str) -> list[dict[str, Any]]:
    from siyu.outreach.queries import broadcasts

    return [
        {"id": b.pk, "name": b.name, "status": b.status, "audience": b.audience, "schedule_mode": b.schedule_mode,
         "scheduled_at": b.scheduled_at, "plan_summary": b.plan_summary}
        for b in broadcasts(workspace_by_slug(workspace_slug))
    ]


def preview(workspace_slug: str, broadcast_id: int) -> dict[str, Any]:
    from siyu.outreach.planning import preview_broadcast

    return preview_broadcast(_broadcast(workspace_slug, broadcast_id)).as_dict()


def send(workspace_slug: str, broadcast_id: int, staff_email: str = "") -> dict[str, Any]:
    from siyu.outreach.actions import do_send_broadcast

    broadcast = _broadcast(workspace_slug, broadcast_id)
    return asdict(do_send_broadcast(broadcast, staff_or_system(broadcast.workspace, staff_email)))


def stats(workspace_slug: str, broadcast_id: int) -> list[dict[str, Any]]:
    from siyu.outreach.planning import broadcast_stats

    return broadcast_stats(_broadcast(workspace_slug, broadcast_id))


def explain(workspace_slug: str, contact_id: int, limit: int = 20) -> dict[str, Any]:
    from siyu.contacts.queries import get_visible_contact
    from siyu.outreach.queries import contact_ledger

    workspace = workspace_by_slug(workspace_slug)
    return contact_ledger(workspace, get_visible_contact(workspace, None, contact_id), limit=limit)


@broadcasts_app.command("list")
def list_command(workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """The workspace's broadcasts, newest first."""
    with command(json_out):
        rows = list_broadcasts(workspace)
        emit(json_out, rows, "\n".join(f"{r['id']}\t{r['status']}\t{r['name']}" for r in rows) or "no broadcasts")


@broadcasts_app.command("preview")
def preview_command(workspace: WorkspaceOpt, broadcast: BroadcastOpt, json_out: JsonFlag = False) -> None:
    """What sending would do now: reach, consent exclusions, deferred/skipped by rule,
    variants and WeCom tasks per staff member. Writes nothing."""
    with command(json_out):
        result = preview(workspace, broadcast)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted({**result["deferred_by_reason"], **result["skipped_by_reason"]}.items()))
        emit(json_out, result, f"reach {result['reach']}: send {result['planned']}, deferred {result['deferred']}, "
                               f"skipped {result['skipped']}" + (f" ({reasons})" if reasons else ""))


@broadcasts_app.command("send")
def send_command(workspace: WorkspaceOpt, broadcast: BroadcastOpt, staff: StaffOpt = "", json_out: JsonFlag = False) -> None:
    """Plan and send a draft broadcast through the quota ledger."""
    with command(json_out):
        result = send(workspace, broadcast, staff)
        emit(json_out, result, f"planned {result['planned']}, deferred {result['deferred']}, skipped {result['skipped']}")


@broadcasts_app.command("stats")
def stats_command(workspace: WorkspaceOpt, broadcast: BroadcastOpt, json_out: JsonFlag = False) -> None:
    """Per variant: sent, queued, deferred, skipped, replied (48 h), converted (7 days)."""
    with command(json_out):
        rows = stats(workspace, broadcast)
        emit(json_out, rows, "\n".join(
            f"{r['variant']}: sent {r['sent']}, queued {r['queued']}, replied {r['replied']}, converted {r['converted']}" for r in rows
        ))


@quota_app.command("explain")
def explain_command(
    workspace: WorkspaceOpt,
    contact: Annotated[int, typer.Option("--contact", help="Contact id.")],
    limit: Annotated[int, typer.Option("--limit", help="How many recent deliveries to show.")] = 20,
    json_out: JsonFlag = False,
) -> None:
    """Why did (or didn't) this contact get messages: the ledger's answer for each class
    now, and the recent deliveries with their decisions."""
    with command(json_out):
        result = explain(workspace, contact, limit)
        lines = [f"{cls}: " + ("allowed now" if d["allowed"] else f"{d['rule']} — {d['reason']}" + (
            f" (next {d['next_allowed_at']})" if d["next_allowed_at"] else "")) for cls, d in result["now"].items()]
        lines += [f"{d['requested_at']} {d['source']} {d['message_class']}: {d['status']} {d['rule']} {d['reason']}".rstrip()
                  for d in result["deliveries"]]
        emit(json_out, result, "\n".join(lines))
