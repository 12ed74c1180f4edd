"""``siyu campaigns ...``: a typer sub-app (the lead mounts ``campaigns_app``) and the plain
functions behind it.

    siyu campaigns poster --workspace acme --campaign 3 --contact 42 --out poster.png
    siyu campaigns confirm-due --workspace acme --campaign 3
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from siyu.cli.runtime import command, emit, workspace_by_slug

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
#: where invite URLs on posters point; the public address of this installation
DEFAULT_BASE_URL = os.environ.get("SIYU_PUBLIC_URL", "http://127.0.0.1:8000")

campaigns_app = typer.Typer(help="Fission campaigns (裂变): posters, confirmations.", no_args_is_help=True)


def make_poster(workspace_slug: str, campaign_id: int, contact_id: int, out: Path, base_url: str = DEFAULT_BASE_URL) -> dict[str, Any]:
    """Render a contact's poster for a campaign (joining them as a participant if needed)
    and copy it to ``out``."""
    from siyu.campaigns.actions import do_join_campaign
    from siyu.campaigns.models import Campaign
    from siyu.campaigns.posters import invite_url, render_poster
    from siyu.contacts.models import Contact

    workspace = workspace_by_slug(workspace_slug)
    campaign = Campaign.objects.select_related("live_code").get_in_workspace(workspace, pk=campaign_id)
    contact = Contact.objects.get_in_workspace(workspace, pk=contact_id)
    participant, _ = do_join_campaign(campaign, contact)
    path, drawn = render_poster(campaign, participant, base_url)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, out)
    return {"out": str(out), "cached": not drawn, "invite_code": participant.invite_code,
            "url": invite_url(base_url, campaign, participant)}


def confirm_due(workspace_slug: str, campaign_id: int) -> dict[str, int]:
    """Decide the held invites of a campaign whose hold period is over."""
    from siyu.campaigns.actions import do_confirm_due_invites
    from siyu.campaigns.models import Campaign

    campaign = Campaign.objects.get_in_workspace(workspace_by_slug(workspace_slug), pk=campaign_id)
    return do_confirm_due_invites(campaign)


@campaigns_app.command()
def poster(
    workspace: WorkspaceOpt,
    campaign: Annotated[int, typer.Option("--campaign", help="Campaign id.")],
    contact: Annotated[int, typer.Option("--contact", help="Contact id of the sharer.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    base_url: Annotated[str, typer.Option("--base-url", help="Public address the QR points to.")] = DEFAULT_BASE_URL,
    json_out: JsonFlag = False,
) -> None:
    """Render a sharer's fission poster (their own invite QR) to a PNG file."""
    with command(json_out):
        result = make_poster(workspace, campaign, contact, out, base_url)
        emit(json_out, result, f"poster written to {result['out']} ({result['url']})")


@campaigns_app.command("confirm-due")
def confirm_due_command(
    workspace: WorkspaceOpt, campaign: Annotated[int, typer.Option("--campaign", help="Campaign id.")], json_out: JsonFlag = False
) -> None:
    """Confirm or claw back the invites whose hold period is over."""
    with command(json_out):
        result = confirm_due(workspace, campaign)
        emit(json_out, result, ", ".join(f"{k}: {v}" for k, v in sorted(result.items())) or "nothing due")
