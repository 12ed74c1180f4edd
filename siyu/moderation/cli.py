"""``siyu moderation check``: the verdict for a text (and/or an image) without writing;
``siyu moderation blacklist list|add|add-ids|lift``: the blacklist (黑名单)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from siyu.cli.runtime import UsageError, command, emit, workspace_by_slug

moderation_app = typer.Typer(help="Moderation: check texts and images against the policy; the blacklist.", no_args_is_help=True)


@moderation_app.callback()
def _group() -> None:
    """Keeps ``check`` a sub-command even while it is the only one."""


def check(text: str = "", *, workspace: str | None = None, group: int | None = None, image: bytes | None = None) -> dict[str, Any]:
    """The verdict as ``{"verdict": ..., "reasons": [{"detector", "evidence"}]}`` (plain
    function: the CLI and tests call it). With a workspace (and group) their stored
    policy and word lists apply, else the built-in defaults."""
    from siyu.moderation.actions import check_message

    workspace_id = None
    if workspace:
        ws = workspace_by_slug(workspace)
        workspace_id = ws.pk
        if group is not None:
            from siyu.communities.models import Group

            Group.objects.get_in_workspace(ws, pk=group)
    return check_message(text, workspace_id=workspace_id, group_id=group, image=image).as_dict()


@moderation_app.command("check")
def check_command(
    text: Annotated[str, typer.Argument(help="The message text.")] = "",
    workspace: Annotated[str | None, typer.Option("--workspace", help="Workspace slug (its policy and word lists).")] = None,
    group: Annotated[int | None, typer.Option("--group", help="Group id (its own policy).")] = None,
    image: Annotated[Path | None, typer.Option("--image", help="An image file checked for QR codes.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Print the verdict (allow/warn/delete/remove/blacklist) and the reasons."""
    with command(json_out):
        if not text and image is None:
            raise UsageError("give a TEXT or --image FILE")
        try:
            data = image.read_bytes() if image is not None else None
        except OSError as exc:
            raise UsageError(f"cannot read {image}: {exc.strerror or exc}") from exc
        result = check(text, workspace=workspace, group=group, image=data)
        lines = [result["verdict"]] + [f"  {r['detector']}: {r['evidence']}" for r in result["reasons"]]
        emit(json_out, result, "\n".join(lines))


blacklist_app = typer.Typer(help="The blacklist (黑名单): who is banned from every group of the workspace.", no_args_is_help=True)
moderation_app.add_typer(blacklist_app, name="blacklist")

_WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
_StaffOpt = Annotated[str | None, typer.Option("--staff", help="Act as this staff e-mail (default: the system).")]
_JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def blacklist_entry(entry: Any) -> dict[str, Any]:
    return {"id": entry.pk, "contact_id": entry.contact_id, "contact_name": entry.contact.name, "reason": entry.reason,
            "case_id": entry.case_id, "created_at": entry.created_at, "lifted_at": entry.lifted_at}


def _line(entry: dict[str, Any]) -> str:
    state = f"lifted {entry['lifted_at']:%Y-%m-%d %H:%M}" if entry["lifted_at"] else "standing"
    return f"#{entry['id']} contact {entry['contact_id']} {entry['contact_name']} — {entry['reason'] or '-'} (since {entry['created_at']:%Y-%m-%d %H:%M}, {state})"


@blacklist_app.command("list")
def blacklist_list_command(
    workspace: _WorkspaceOpt,
    include_lifted: Annotated[bool, typer.Option("--include-lifted", help="Also the entries that were lifted.")] = False,
    q: Annotated[str, typer.Option("--q", help="Name, city, phone, external reference, a channel id they used, or part of the reason.")] = "",
    json_out: _JsonFlag = False,
) -> None:
    """The standing entries (with --include-lifted, all), newest first; --q searches them."""
    with command(json_out):
        from siyu.moderation.queries import find_blacklist

        qs = find_blacklist(workspace_by_slug(workspace), None, q=q, state="all" if include_lifted else "standing")
        rows = [blacklist_entry(e) for e in qs.select_related("contact")]
        emit(json_out, rows, "\n".join(_line(r) for r in rows) or ("no entry matches" if q.strip() else "nobody is blacklisted"))


@blacklist_app.command("add")
def blacklist_add_command(
    contact_ids: Annotated[list[int], typer.Argument(help="One or more contact ids (up to 500).")],
    workspace: _WorkspaceOpt,
    reason: Annotated[str, typer.Option("--reason", help="Why (≤ 300 characters).")] = "",
    staff: _StaffOpt = None,
    json_out: _JsonFlag = False,
) -> None:
    """Blacklist contacts (拉黑): out of every group now, and whenever they join one. With one
    id, prints its entry; with several (all or none), {"created": [...], "existing": [...]}."""
    from siyu.cli.runtime import staff_or_system

    with command(json_out):
        from siyu.contacts.queries import get_visible_contacts
        from siyu.moderation.actions import do_blacklist_contact, do_blacklist_contacts

        ws = workspace_by_slug(workspace)
        actor = staff_or_system(ws, staff)
        contacts = get_visible_contacts(ws, actor, contact_ids)
        if len(contacts) == 1:
            row = blacklist_entry(do_blacklist_contact(contacts[0], actor, reason=reason))
            emit(json_out, row, _line(row))
            return
        created, existing = do_blacklist_contacts(contacts, actor, reason=reason)
        result = {"created": [blacklist_entry(e) for e in created], "existing": [blacklist_entry(e) for e in existing]}
        emit(json_out, result, "\n".join([f"blacklisted {len(created)}, already blacklisted {len(existing)}",
                                           *(_line(r) for r in result["created"] + result["existing"])]))


def read_people(ids: list[str], file: Path | None) -> list[tuple[str, str]]:
    """(channel id, name) pairs from the arguments and from ``file`` (one person per line,
    as :func:`siyu.moderation.actions.parse_channel_ids` reads them)."""
    from siyu.moderation.actions import parse_channel_ids

    people = [(i, "") for i in ids]
    if file is not None:
        try:
            people += parse_channel_ids(file.read_text("utf-8-sig"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {file}: {getattr(exc, 'strerror', None) or exc}") from exc
    if not people:
        raise UsageError("give one or more channel ids, or --file FILE")
    return people


@blacklist_app.command("add-ids")
def blacklist_add_ids_command(
    workspace: _WorkspaceOpt,
    account: Annotated[int, typer.Option("--account", help="The channel account the ids belong to.")],
    external_ids: Annotated[list[str] | None, typer.Argument(help="Channel ids (a Matrix id, a WeCom external id).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="One id per line, optionally id<TAB>name or id,name; # comments.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why (≤ 300 characters).")] = "",
    staff: _StaffOpt = None,
    json_out: _JsonFlag = False,
) -> None:
    """Blacklist people by the id they use on a channel account (按渠道账号拉黑), seen
    before or not: they are removed the moment they join or speak in any group. Up to 500,
    all or none; prints {"created": [...], "existing": [...]}."""
    from siyu.cli.runtime import staff_or_system

    with command(json_out):
        from siyu.channels.models import ChannelAccount
        from siyu.moderation.actions import do_blacklist_identities

        people = read_people(external_ids or [], file)
        ws = workspace_by_slug(workspace)
        channel = ChannelAccount.objects.get_in_workspace(ws, pk=account)
        created, existing = do_blacklist_identities(channel, staff_or_system(ws, staff), people, reason=reason)
        result = {"created": [blacklist_entry(e) for e in created], "existing": [blacklist_entry(e) for e in existing]}
        emit(json_out, result, "\n".join([f"blacklisted {len(created)}, already blacklisted {len(existing)}",
                                           *(_line(r) for r in result["created"] + result["existing"])]))


@blacklist_app.command("lift")
def blacklist_lift_command(
    entry_ids: Annotated[list[int], typer.Argument(help="One or more entry ids (up to 500).")],
    workspace: _WorkspaceOpt,
    note: Annotated[str, typer.Option("--note", help="Why it is lifted (≤ 200 characters).")] = "",
    staff: _StaffOpt = None,
    json_out: _JsonFlag = False,
) -> None:
    """Lift entries (解除拉黑): the contacts may join groups again. With one id, prints the
    entry; with several (all or none; ones already lifted are skipped), {"lifted": [...]}."""
    from siyu.cli.runtime import staff_or_system

    with command(json_out):
        from siyu.moderation.actions import do_lift_blacklist, do_lift_blacklist_entries
        from siyu.moderation.queries import get_visible_entries

        ws = workspace_by_slug(workspace)
        actor = staff_or_system(ws, staff)
        entries = get_visible_entries(ws, actor, entry_ids)
        if len(entries) == 1:
            row = blacklist_entry(do_lift_blacklist(entries[0], actor, note=note))
            emit(json_out, row, _line(row))
            return
        lifted = [blacklist_entry(e) for e in do_lift_blacklist_entries(entries, actor, note=note)]
        emit(json_out, {"lifted": lifted}, "\n".join([f"lifted {len(lifted)}", *(_line(r) for r in lifted)]))
