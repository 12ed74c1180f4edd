"""``siyu workspace``, ``siyu staff`` and ``siyu token``: set up tenants and the people
who log in. The CLI is run by whoever runs the server, so it acts as the system."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal

import typer

from siyu.cli.runtime import command, emit, staff_or_system, workspace_by_slug
from siyu.core.errors import ValidationFailed

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
# Literal, not the model's choices, so that --help works before Django is set up; a test
# keeps the two equal.
RoleName = Literal["owner", "admin", "operator", "analyst", "agent"]
LanguageName = Literal["zh-hans", "en"]

workspace_app = typer.Typer(help="Workspaces (one per brand or shop).", no_args_is_help=True)
staff_app = typer.Typer(help="Staff members and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)


def _password_for(email: str, given: str | None) -> tuple[str | None, bool]:
    """The password to set and whether it was generated. An existing login keeps its
    password unless one is given: adding a person to a second workspace must not lock
    them out of the first."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    if given:
        try:
            validate_password(given)
        except ValidationError as exc:
            raise ValidationFailed(" ".join(exc.messages), code="weak_password") from exc
        return given, False
    if get_user_model().objects.filter(username=email.strip().lower()).exists():
        return None, False
    return secrets.token_urlsafe(12), True


def _staff_dict(staff: Any, password: str | None) -> dict[str, Any]:
    out = {"id": staff.pk, "workspace": staff.workspace.slug, "email": staff.email, "role": staff.role, "display_name": staff.display_name}
    if password:
        out["password"] = password
    return out


def _staff_text(staff: Any, password: str | None) -> str:
    text = f"staff {staff.email} ({staff.role}) added to {staff.workspace.slug}"
    if password:
        text += f"\npassword: {password}  (generated: store it now, it is not shown again)"
    return text


@workspace_app.command("create")
def workspace_create(
    slug: Annotated[str, typer.Option(help="Short id used in URLs and commands, e.g. 'shop-sh'.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    time_zone: Annotated[str, typer.Option(help="IANA time zone reports are shown in.")] = "Asia/Shanghai",
    language: Annotated[LanguageName, typer.Option(help="Console language.")] = "zh-hans",
    currency: Annotated[str, typer.Option(help="ISO currency code.")] = "CNY",
    owner_email: Annotated[str | None, typer.Option(help="Create the first owner with this login email.")] = None,
    owner_password: Annotated[str | None, typer.Option(help="Owner's password (generated when omitted).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Create a workspace, optionally with its first owner."""
    with command(json_out):
        from django.db import transaction

        from siyu.accounts.actions import do_create_staff, do_create_workspace
        from siyu.accounts.models import Role
        from siyu.cli.runtime import UsageError

        if owner_password and not owner_email:
            raise UsageError("--owner-password needs --owner-email")
        with transaction.atomic():
            ws = do_create_workspace(slug=slug, name=name, time_zone=time_zone, currency=currency, language=language)
            owner, password, generated = None, None, False
            if owner_email:
                password, generated = _password_for(owner_email, owner_password)
                owner = do_create_staff(ws, None, email=owner_email, role=Role.OWNER, password=password)
        data: dict[str, Any] = {
            "id": ws.pk, "slug": ws.slug, "name": ws.name, "time_zone": ws.time_zone, "language": ws.language, "currency": ws.currency,
        }
        text = f"workspace {ws.slug} ({ws.name}) created"
        if owner is not None:
            data["owner"] = _staff_dict(owner, password if generated else None)
            text += "\n" + _staff_text(owner, password if generated else None)
        emit(json_out, data, text)


@workspace_app.command("list")
def workspace_list(json_out: JsonFlag = False) -> None:
    """List workspaces with their staff and contact counts."""
    with command(json_out):
        from siyu.accounts.models import Staff
        from siyu.contacts.models import Contact
        from siyu.core.models import Workspace

        rows = [
            {
                "slug": ws.slug,
                "name": ws.name,
                "time_zone": ws.time_zone,
                "language": ws.language,
                "staff": Staff.objects.in_workspace(ws).filter(is_active=True).count(),
                "contacts": Contact.objects.in_workspace(ws).filter(merged_into__isnull=True).count(),
                "created_at": ws.created_at.isoformat(timespec="seconds"),
            }
            for ws in Workspace.objects.order_by("slug")
        ]
        lines = [f"{r['slug']:<20} {r['name']:<24} {r['staff']:>5} staff {r['contacts']:>8} contacts  {r['time_zone']}" for r in rows]
        emit(json_out, {"workspaces": rows}, "\n".join(lines) or "no workspaces yet: siyu workspace create --slug ... --name ...")


@staff_app.command("create")
def staff_create(
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    email: Annotated[str, typer.Option(help="Login email.")],
    role: Annotated[RoleName, typer.Option(help="Role in this workspace.")],
    name: Annotated[str | None, typer.Option(help="Display name (default: the part of the email before @).")] = None,
    password: Annotated[str | None, typer.Option(help="Password (generated for a new login when omitted).")] = None,
    json_out: JsonFlag = False,
) -> None:
    """Add a staff member to a workspace."""
    with command(json_out):
        from siyu.accounts.actions import do_create_staff

        ws = workspace_by_slug(workspace)
        secret, generated = _password_for(email, password)
        staff = do_create_staff(ws, None, email=email, display_name=name or "", role=role, password=secret)
        shown = secret if generated else None
        emit(json_out, _staff_dict(staff, shown), _staff_text(staff, shown))


@token_app.command("create")
def token_create(
    workspace: Annotated[str, typer.Option(help="Workspace slug.")],
    staff: Annotated[str, typer.Option(help="Email of the staff member the token acts as.")],
    name: Annotated[str, typer.Option(help="A label to recognise the token by.")] = "cli",
    json_out: JsonFlag = False,
) -> None:
    """Create an API token for a staff member (shown once)."""
    with command(json_out):
        from siyu.accounts.actions import do_create_api_token

        ws = workspace_by_slug(workspace)
        member = staff_or_system(ws, staff)
        token, raw = do_create_api_token(member, None, name=name)
        emit(
            json_out,
            {"token": raw, "id": token.pk, "staff": member.email, "workspace": ws.slug},
            f"{raw}\n(token for {member.email} in {ws.slug}; store it now, it is not shown again)",
        )
