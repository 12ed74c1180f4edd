"""``siyu groups ...``: groups (社群) — list, show, create, update, archive — their settings
and keyword auto-replies from the command line.

    siyu groups list --workspace acme [--type traffic] [--horizon short_term] [--archived] --json
    siyu groups show 12 --workspace acme --json
    siyu groups create --workspace acme --name "双11快闪群" --horizon short_term --ends-on 2026-11-12 --dismiss-at-end --json
    siyu groups update 12 --workspace acme --owner ops@acme.cn --admins a@acme.cn,b@acme.cn --capacity 300 --json
    siyu groups archive 12 --workspace acme --staff ops@acme.cn --json
    siyu groups remove-member 12 345 --workspace acme --reason "多次发广告" --json
    siyu groups messages 12 --workspace acme --q 发货 --limit 20 --json
    siyu groups settings 12 --workspace acme --json
    siyu groups settings 12 --workspace acme --set refund_on_removal=false --set 'quiet_hours={"start": "22:00", "end": "08:00"}' --json
    siyu groups settings 12 --workspace acme --inherit welcome_message --staff ops@acme.cn --json
    siyu groups defaults --workspace acme [--type traffic] [--set capacity=300] [--inherit KEY] --json
    siyu groups auto-replies list --workspace acme --json
    siyu groups rebuild-activity --workspace acme --json
    siyu groups dismiss 12 --workspace acme --farewell "感谢陪伴，群将解散" --json
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from siyu.cli.runtime import command, emit, staff_or_system, workspace_by_slug

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from siyu.accounts.models import Staff
    from siyu.communities.models import Group
    from siyu.core.models import Workspace

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
WorkspaceOpt = Annotated[str, typer.Option("--workspace", help="Workspace slug.")]
StaffOpt = Annotated[str | None, typer.Option("--staff", help="Act as this staff e-mail (default: the system).")]
# the group's fields (None: not given, so the action's default or the current value stays)
NameOpt = Annotated[str | None, typer.Option("--name", help="The group's name.")]
TypeOpt = Annotated[str | None, typer.Option("--type", help="traffic (福利群), conversion (转化群) or organisational (组织群).")]
HorizonOpt = Annotated[str | None, typer.Option("--horizon", help="long_term (长期) or short_term (短期).")]
EndsOnOpt = Annotated[str | None, typer.Option("--ends-on", help="End date YYYY-MM-DD; a short-term group needs one (\"\" clears it).")]
DismissOpt = Annotated[bool | None, typer.Option(
    "--dismiss-at-end/--no-dismiss-at-end", help="Dismiss the short-term group on its channel at its end date, not only archive it.")]
FarewellOpt = Annotated[str | None, typer.Option("--end-farewell", help="Posted before that dismissal (到期告别语).")]
VisionOpt = Annotated[str | None, typer.Option("--vision", help="Vision / slogan (愿景 / 口号).")]
RightsOpt = Annotated[str | None, typer.Option("--rights", help="Member rights (成员权益).")]
ThresholdOpt = Annotated[str | None, typer.Option("--threshold", help="Threshold (入群门槛): none, price, identity or action.")]
ThresholdDetailOpt = Annotated[str | None, typer.Option("--threshold-detail", help="What the threshold asks.")]
RulesOpt = Annotated[str | None, typer.Option("--rules", help="Group rules (群规).")]
WelcomeOpt = Annotated[str | None, typer.Option("--welcome", help="Welcome message; {name} and {group} are filled in.")]
CapacityOpt = Annotated[int | None, typer.Option("--capacity", help="Capacity (容量), 2–2000.")]
OwnerOpt = Annotated[str | None, typer.Option("--owner", help="Owner's staff e-mail (\"\" for none).")]
AdminsOpt = Annotated[str | None, typer.Option("--admins", help="Admins' staff e-mails, comma-separated (\"\" for none).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="KEY=VALUE, repeatable. VALUE is read as JSON when it is JSON (true, 300, {\"start\": \"22:00\", \"end\": \"08:00\"}, "
                  "\"123\" for the text 123), otherwise as text.")]
InheritOpt = Annotated[list[str] | None, typer.Option("--inherit", help="KEY, repeatable: stop setting it on this layer (inherit it again).")]

#: what ``siyu groups list`` shows of each group; ``show`` and the writes show all of :func:`group_dict`
LIST_FIELDS = ("id", "name", "group_type", "horizon", "ends_on", "dismiss_at_end", "member_count", "health_state", "owner",
               "channel_account_id", "external_id", "archived_at", "dismissed_at")

groups_app = typer.Typer(help="Groups (社群): list, show, create, update, archive, dismiss; settings, auto-replies, activity.",
                         no_args_is_help=True)
auto_replies_app = typer.Typer(help="Keyword auto-replies (关键词自动回复).", no_args_is_help=True)
groups_app.add_typer(auto_replies_app, name="auto-replies")


def group_settings(group: Group) -> dict[str, Any]:
    """A group's effective settings with the source of each value."""
    from siyu.communities.group_settings import effective

    return {"group_id": group.pk, "group": group.name, "effective": effective(group).as_dict()}


def settings_changes(set_values: list[str] | None, inherit: list[str] | None) -> dict[str, Any]:
    """The settings layer's changes from ``--set KEY=VALUE`` and ``--inherit KEY``: a value
    that parses as JSON is that JSON value, any other is the text itself; an inherited key
    is ``None`` (what the action reads as "not set here"). The action validates the keys
    and values."""
    from siyu.cli.runtime import UsageError

    changes: dict[str, Any] = {}
    for item in set_values or ():
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected KEY=VALUE")
        try:
            changes[key] = json.loads(raw)
        except ValueError:
            changes[key] = raw
    for key in inherit or ():
        if key.strip() in changes:
            raise UsageError(f"{key.strip()!r} is both set and inherited")
        changes[key.strip()] = None
    return changes


def group_dict(group: Group) -> dict[str, Any]:
    """A group as the API's ``GroupOut`` shows it, plus its owner's e-mail (``owner``).
    ``group`` comes from :func:`_groups` (member count, owner and admins loaded)."""
    fields = ("id", "name", "channel_account_id", "external_id", "group_type", "horizon", "ends_on", "dismiss_at_end", "end_farewell",
              "vision", "rights", "threshold", "threshold_detail", "rules_text", "welcome_message", "capacity", "owner_id")
    return {**{f: getattr(group, f) for f in fields}, "owner": group.owner.email if group.owner else None,
            "admin_ids": sorted(s.pk for s in group.admins.all()), "member_count": group.member_count,  # type: ignore[attr-defined]
            "created_at": group.created_at, "archived_at": group.archived_at, "dismissed_at": group.dismissed_at,
            "health_state": group.health_state}  # type: ignore[attr-defined]


def _groups(ws: Workspace, **search: Any) -> QuerySet[Group]:
    """The workspace's groups as :func:`siyu.communities.queries.find_groups` finds them
    (archived ones included unless ``search`` says otherwise), owner and admins loaded."""
    from siyu.communities.queries import find_groups

    return find_groups(ws, **{"archived": True, **search}).select_related("owner__user").prefetch_related("admins")


def _group(ws: Workspace, group_id: int) -> Group:
    """The workspace's group: another workspace's is not found."""
    from siyu.communities.models import Group

    return Group.objects.get_in_workspace(ws, pk=group_id)


def _emit_group(json_out: bool, ws: Workspace, group_id: int, done: str) -> None:
    data = group_dict(_groups(ws).get(pk=group_id))
    emit(json_out, data, f"{done} #{data['id']} {data['name']}" if done else "\n".join(f"{k}: {v}" for k, v in data.items()))


def _staff(ws: Workspace, email: str, code: str) -> Staff:
    from siyu.accounts.actions import find_staff_by_email
    from siyu.core.errors import NotFound, ValidationFailed

    try:
        return find_staff_by_email(ws, email)
    except NotFound as exc:
        raise ValidationFailed(f"{email.strip()!r} is not staff of workspace {ws.slug!r}", code=code) from exc


def group_changes(ws: Workspace, *, owner: str | None = None, admins: str | None = None, **options: Any) -> dict[str, Any]:
    """The action's keyword arguments from the options given (None: not given); the
    owner's and admins' e-mails become staff of ``ws`` (``""`` clears them)."""
    changes = {key: value for key, value in options.items() if value is not None}
    if owner is not None:
        changes["owner"] = _staff(ws, owner, "unknown_owner") if owner.strip() else None
    if admins is not None:
        changes["admins"] = [_staff(ws, email, "unknown_staff").pk for email in admins.split(",") if email.strip()]
    return changes


def list_auto_replies(workspace_slug: str) -> list[dict[str, Any]]:
    from siyu.communities.models import AutoReplyRule

    return list(AutoReplyRule.objects.in_workspace(workspace_by_slug(workspace_slug)).values(
        "id", "group_id", "name", "match", "pattern", "reply", "cooldown_seconds", "priority", "is_active"))


@groups_app.command("settings")
def settings_command(
    group_id: int, workspace: WorkspaceOpt, set_values: SetOpt = None, inherit: InheritOpt = None, staff: StaffOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Show a group's effective settings and where each value comes from; with --set or
    --inherit, change the group's own settings first (群设置)."""
    with command(json_out):
        changes = settings_changes(set_values, inherit)
        ws = workspace_by_slug(workspace)
        group = _group(ws, group_id)
        if changes:
            from siyu.communities.actions import do_set_group_settings

            do_set_group_settings(group, staff_or_system(ws, staff), changes)
        result = group_settings(group)
        lines = [f"{k}: {v['value']!r} ({v['source']})" for k, v in result["effective"].items()]
        emit(json_out, result, "\n".join(lines))


@groups_app.command("defaults")
def defaults_command(
    workspace: WorkspaceOpt,
    group_type: Annotated[str, typer.Option("--type", help="The template for this group type (traffic, conversion, organisational) "
                                                          "instead of the workspace default.")] = "",
    set_values: SetOpt = None, inherit: InheritOpt = None, staff: StaffOpt = None, json_out: JsonFlag = False,
) -> None:
    """Show the workspace default settings (默认设置), or a group type's template (模板),
    as stored on that layer; with --set or --inherit, change them first."""
    with command(json_out):
        from siyu.communities.group_settings import layer_values

        ws = workspace_by_slug(workspace)
        changes = settings_changes(set_values, inherit)
        if changes:
            from siyu.communities.actions import do_set_settings_layer

            do_set_settings_layer(ws, staff_or_system(ws, staff), changes, group_type=group_type)
        own = layer_values(ws, group_type=group_type or None)
        result = {"group_type": group_type, "own": own} if group_type else {"own": own}
        emit(json_out, result, "\n".join(f"{k}: {v!r}" for k, v in own.items()) or "(nothing set on this layer)")


@groups_app.command("list")
def list_groups_command(
    workspace: WorkspaceOpt,
    group_type: TypeOpt = None,
    horizon: HorizonOpt = None,
    archived: Annotated[bool, typer.Option("--archived", help="List the archived groups instead of the open ones.")] = False,
    q: Annotated[str, typer.Option("--q", help="Only groups whose name contains this.")] = "",
    health: Annotated[str | None, typer.Option("--health", help="thriving, steady, fading or silent (the latest daily snapshot).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """List the workspace's groups, newest first."""
    with command(json_out):
        from siyu.communities.models import GroupType, HealthState, Horizon
        from siyu.core.errors import ValidationFailed

        for value, choices, code in ((group_type, GroupType.values, "invalid_group_type"), (horizon, Horizon.values, "invalid_horizon"),
                                     (health, HealthState.values, "invalid_health")):
            if value is not None and value not in choices:
                raise ValidationFailed(f"unknown value {value!r}; expected {', '.join(choices)}", code=code)
        qs = _groups(workspace_by_slug(workspace), q=q.strip(), group_type=group_type or "", horizon=horizon or "",
                     health=health or "").filter(archived_at__isnull=not archived)
        rows = [{f: d[f] for f in LIST_FIELDS} for d in map(group_dict, qs)]
        emit(json_out, rows, "\n".join(
            f"#{r['id']} {r['name']} [{r['group_type']}, {r['horizon']}{' → ' + str(r['ends_on']) if r['ends_on'] else ''}]"
            f" {r['member_count']} members, owner {r['owner'] or '-'}" for r in rows) or "no groups")


@groups_app.command("show")
def show_command(group_id: int, workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """Show one group: its positioning, owner, admins, member count and dates."""
    with command(json_out):
        ws = workspace_by_slug(workspace)
        _emit_group(json_out, ws, _group(ws, group_id).pk, "")


@groups_app.command("create")
def create_command(
    workspace: WorkspaceOpt,
    name: Annotated[str, typer.Option("--name", help="The group's name.")],
    group_type: TypeOpt = None, horizon: HorizonOpt = None, ends_on: EndsOnOpt = None, dismiss_at_end: DismissOpt = None,
    end_farewell: FarewellOpt = None, vision: VisionOpt = None, rights: RightsOpt = None, threshold: ThresholdOpt = None,
    threshold_detail: ThresholdDetailOpt = None, rules: RulesOpt = None, welcome: WelcomeOpt = None, capacity: CapacityOpt = None,
    owner: OwnerOpt = None, staff: StaffOpt = None, json_out: JsonFlag = False,
) -> None:
    """Create a group (新建社群) with its positioning; options left out take their defaults."""
    with command(json_out):
        from siyu.communities.actions import do_create_group

        ws = workspace_by_slug(workspace)
        fields = group_changes(
            ws, owner=owner, group_type=group_type, horizon=horizon, ends_on=ends_on, dismiss_at_end=dismiss_at_end, end_farewell=end_farewell,
            vision=vision, rights=rights, threshold=threshold, threshold_detail=threshold_detail, rules_text=rules, welcome_message=welcome,
            capacity=capacity)
        group = do_create_group(ws, staff_or_system(ws, staff), name=name, **fields)
        _emit_group(json_out, ws, group.pk, "created")


@groups_app.command("update")
def update_command(
    group_id: int, workspace: WorkspaceOpt,
    name: NameOpt = None, group_type: TypeOpt = None, horizon: HorizonOpt = None, ends_on: EndsOnOpt = None, dismiss_at_end: DismissOpt = None,
    end_farewell: FarewellOpt = None, vision: VisionOpt = None, rights: RightsOpt = None, threshold: ThresholdOpt = None,
    threshold_detail: ThresholdDetailOpt = None, rules: RulesOpt = None, welcome: WelcomeOpt = None, capacity: CapacityOpt = None,
    owner: OwnerOpt = None, admins: AdminsOpt = None, staff: StaffOpt = None, json_out: JsonFlag = False,
) -> None:
    """Change a group's settings: only the options given change."""
    with command(json_out):
        from siyu.communities.actions import do_update_group
        from siyu.core.errors import ValidationFailed

        ws = workspace_by_slug(workspace)
        group = _group(ws, group_id)
        changes = group_changes(
            ws, owner=owner, admins=admins, name=name, group_type=group_type, horizon=horizon, ends_on=ends_on, dismiss_at_end=dismiss_at_end,
            end_farewell=end_farewell, vision=vision, rights=rights, threshold=threshold, threshold_detail=threshold_detail, rules_text=rules,
            welcome_message=welcome, capacity=capacity)
        if not changes:
            raise ValidationFailed("nothing to change: give at least one option", code="nothing_to_change")
        do_update_group(group, staff_or_system(ws, staff), **changes)
        _emit_group(json_out, ws, group.pk, "updated")


@groups_app.command("archive")
def archive_command(group_id: int, workspace: WorkspaceOpt, staff: StaffOpt = None, json_out: JsonFlag = False) -> None:
    """Archive a group (归档) in siyu: open memberships close (to end it on its channel too: dismiss)."""
    with command(json_out):
        from siyu.communities.actions import do_archive_group

        ws = workspace_by_slug(workspace)
        group = do_archive_group(_group(ws, group_id), staff_or_system(ws, staff))
        _emit_group(json_out, ws, group.pk, "archived")


@groups_app.command("messages")
def messages_command(
    group_id: int,
    workspace: WorkspaceOpt,
    q: Annotated[str, typer.Option("--q", help="Only messages containing this text.")] = "",
    contact: Annotated[int | None, typer.Option("--contact", help="Only this contact's messages.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="How many, newest first.")] = 50,
    json_out: JsonFlag = False,
) -> None:
    """A group's messages (群聊记录), newest first, with the moderation verdict on each."""
    with command(json_out):
        from siyu.communities.queries import group_messages

        group = _group(workspace_by_slug(workspace), group_id)
        rows = [
            {"id": m.pk, "external_id": m.external_id, "sender_id": m.sender_id, "sender_name": m.sender.name if m.sender else "",
             "msgtype": m.msgtype, "text": m.text, "sent_at": m.sent_at, "deleted_at": m.deleted_at,
             "verdict": m.verdict, "case_id": m.case_id}  # type: ignore[attr-defined]
            for m in group_messages(group, q=q.strip(), sender_id=contact)[:limit]
        ]
        emit(json_out, rows, "\n".join(f"{r['sent_at']:%Y-%m-%d %H:%M:%S} {r['sender_name'] or '-'}: {r['text']}"
                                       + (f"  [{r['verdict']}]" if r["verdict"] else "") for r in rows) or "no messages")


@groups_app.command("remove-member")
def remove_member_command(
    group_id: int,
    contact_id: int,
    workspace: WorkspaceOpt,
    reason: Annotated[str, typer.Option("--reason", help="Shown to the member where the channel shows one (≤ 200).")] = "",
    staff: StaffOpt = None,
    json_out: JsonFlag = False,
) -> None:
    """Remove a member from a group (移出群聊) on its channel too — or a task for the owner
    where the channel cannot — and close the membership."""
    with command(json_out):
        from siyu.communities.actions import do_remove_member_on_channel
        from siyu.communities.models import Membership
        from siyu.core.errors import NotFound

        ws = workspace_by_slug(workspace)
        group = _group(ws, group_id)
        membership = Membership.objects.filter(group=group, contact_id=contact_id, left_at__isnull=True).select_related("contact").first()
        if membership is None:
            raise NotFound("no such member in this group", code="member_not_found")
        queued = do_remove_member_on_channel(membership, staff_or_system(ws, staff), reason=reason)
        how = ("the owner has a task to remove them in the app" if any("staff_task" in q for q in queued)
               else "the channel removes them" if queued else "nothing to send (a group on no channel, or a member it does not know)")
        emit(json_out, {"group_id": group.pk, "contact_id": contact_id, "membership_id": membership.pk, "left_at": membership.left_at,
                        "queued": queued}, f"{membership.contact.name} left {group.name}; {how}")


@groups_app.command("dismiss")
def dismiss_command(
    group_id: int,
    workspace: WorkspaceOpt,
    farewell: Annotated[str, typer.Option("--farewell", help="Posted in the group before it ends.")] = "",
    reason: Annotated[str, typer.Option("--reason", help="Shown to removed members where the channel shows one.")] = "",
    staff: Annotated[str | None, typer.Option("--staff", help="Act as this staff e-mail (default: the system).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Dismiss a group (解散群) on its channel — farewell, everyone out, the bot leaves; or a
    task for the owner where the channel cannot — and archive it."""
    with command(json_out):
        from siyu.communities.actions import do_dismiss_group
        from siyu.communities.models import Group

        ws = workspace_by_slug(workspace)
        group = Group.objects.get_in_workspace(ws, pk=group_id)
        queued = do_dismiss_group(group, staff_or_system(ws, staff), farewell_text=farewell, reason=reason)
        result = {"group_id": group.pk, "group": group.name, "archived_at": group.archived_at, "dismissed_at": group.dismissed_at,
                  "queued": queued}
        how = ("the owner has a task to dismiss it in the app" if any("staff_task" in q for q in queued)
               else "the channel dismisses it" if queued else "nothing to send (already dismissed, or on no channel)")
        emit(json_out, result, f"{group.name}: archived; {how}")


@groups_app.command("rebuild-activity")
def rebuild_activity_command(workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """Recompute the per-member per-day activity counters from stored messages."""
    with command(json_out):
        from siyu.communities.actions import do_rebuild_activity

        rows = do_rebuild_activity(workspace_by_slug(workspace))
        emit(json_out, {"rows": rows}, f"{rows} counter rows rebuilt")


@auto_replies_app.command("list")
def list_command(workspace: WorkspaceOpt, json_out: JsonFlag = False) -> None:
    """List the workspace's keyword auto-replies."""
    with command(json_out):
        rows = list_auto_replies(workspace)
        emit(json_out, rows, "\n".join(f"#{r['id']} [{r['match']}] {r['pattern']} → {r['reply']}" for r in rows) or "no auto-replies")
