"""Writes for workspaces, staff and API tokens (the only code that changes them)."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from siyu.accounts.events import record_audit
from siyu.accounts.models import ApiToken, Role, Staff
from siyu.accounts.permissions import Perm, require
from siyu.core.errors import Conflict, NotFound, ValidationFailed
from siyu.core.models import Workspace, validate_time_zone

User = get_user_model()

TOKEN_PREFIX = "siyu_"


def check_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationFailed(f"unknown role {role!r}; expected one of {', '.join(Role.values)}", code="unknown_role")
    return role


def do_create_workspace(
    *, slug: str, name: str, time_zone: str = "Asia/Shanghai", currency: str = "CNY", language: str = "zh-hans"
) -> Workspace:
    """Create a workspace (tenant). Records ``workspace.created``."""
    from django.core.exceptions import ValidationError
    from django.core.validators import validate_slug

    try:
        validate_slug(slug)
        validate_time_zone(time_zone)
    except ValidationError as exc:
        raise ValidationFailed("; ".join(exc.messages), code="invalid_workspace") from exc
    if language not in ("zh-hans", "en"):
        raise ValidationFailed("language must be zh-hans or en", code="invalid_workspace")
    with transaction.atomic():
        if Workspace.objects.filter(slug=slug).exists():
            raise Conflict(f"workspace {slug!r} already exists", code="workspace_exists")
        ws = Workspace.objects.create(slug=slug, name=name, time_zone=time_zone, currency=currency, language=language)
        record_audit(ws, None, "workspace.created", target=ws, after={"slug": slug, "name": name})
    return ws


def get_workspace(slug: str) -> Workspace:
    try:
        return Workspace.objects.get(slug=slug)
    except Workspace.DoesNotExist as exc:
        raise NotFound(f"workspace {slug!r} not found") from exc


def do_create_staff(
    workspace: Workspace,
    actor: Staff | None,
    *,
    email: str,
    display_name: str = "",
    role: str = Role.AGENT,
    password: str | None = None,
    store: str = "",
) -> Staff:
    """Add a staff member (creating the login user by email if needed). Records
    ``staff.created``."""
    require(actor, Perm.MANAGE_STAFF)
    check_role(role)
    email = email.strip().lower()
    if "@" not in email:
        raise ValidationFailed(f"not an email address: {email!r}", code="invalid_email")
    if actor is not None and role == Role.OWNER and actor.role != Role.OWNER:
        raise ValidationFailed("only an owner can make another owner", code="permission_denied")
    with transaction.atomic():
        user = User.objects.filter(username=email).first()
        if user is None:
            user = User(username=email, email=email)
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
        elif password:
            user.set_password(password)
            user.save(update_fields=["password"])
        if Staff.objects.in_workspace(workspace).filter(user=user).exists():
            raise Conflict(f"{email} is already staff of {workspace.slug}", code="staff_exists")
        staff = Staff.objects.create(
            workspace=workspace, user=user, display_name=display_name or email.split("@")[0], role=role, store=store
        )
        if role == Role.OWNER and not user.is_staff:
            # Owners keep Django admin (/admin/) for break-glass work.
            user.is_staff = True
            user.is_superuser = True
            user.save(update_fields=["is_staff", "is_superuser"])
        record_audit(workspace, actor, "staff.created", target=staff, after={"email": email, "role": role})
    return staff


def do_update_staff(
    staff: Staff, actor: Staff | None, *, role: str | None = None, is_active: bool | None = None, display_name: str | None = None, store: str | None = None
) -> Staff:
    """Change a staff member's role, name, store or active flag. Records ``staff.updated``."""
    require(actor, Perm.MANAGE_STAFF)
    before = {"role": staff.role, "is_active": staff.is_active, "display_name": staff.display_name, "store": staff.store}
    fields: list[str] = []
    if role is not None and role != staff.role:
        check_role(role)
        if actor is not None and Role.OWNER in (role, staff.role) and actor.role != Role.OWNER:
            raise ValidationFailed("only an owner can grant or take away the owner role", code="permission_denied")
        staff.role = role
        fields.append("role")
    if is_active is not None and is_active != staff.is_active:
        staff.is_active = is_active
        fields.append("is_active")
    if display_name is not None and display_name != staff.display_name:
        staff.display_name = display_name
        fields.append("display_name")
    if store is not None and store != staff.store:
        staff.store = store
        fields.append("store")
    if not fields:
        return staff
    with transaction.atomic():
        if staff.role != Role.OWNER or not staff.is_active:
            others = Staff.objects.in_workspace(staff.workspace_id).filter(role=Role.OWNER, is_active=True).exclude(pk=staff.pk)
            if before["role"] == Role.OWNER and not others.exists():
                raise ValidationFailed("a workspace must keep at least one active owner", code="last_owner")
        staff.save(update_fields=fields)
        if "is_active" in fields and not staff.is_active:
            ApiToken.objects.filter(staff=staff, revoked_at__isnull=True).update(revoked_at=timezone.now())
        after = {"role": staff.role, "is_active": staff.is_active, "display_name": staff.display_name, "store": staff.store}
        record_audit(staff.workspace, actor, "staff.updated", target=staff, before=before, after=after)
    return staff


def find_staff_by_email(workspace: Workspace, email: str) -> Staff:
    staff = Staff.objects.in_workspace(workspace).select_related("user").filter(user__username=email.strip().lower()).first()
    if staff is None:
        raise NotFound(f"no staff member {email!r} in workspace {workspace.slug!r}")
    return staff


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def do_create_api_token(staff: Staff, actor: Staff | None, *, name: str = "cli") -> tuple[ApiToken, str]:
    """Create a bearer token for ``staff``; returns the row and the secret (shown once).
    Staff may create tokens for themselves; others need ``staff.manage``. Records
    ``token.created``."""
    if actor is None or actor.pk != staff.pk:
        require(actor, Perm.MANAGE_STAFF)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ApiToken.objects.create(
            workspace_id=staff.workspace_id, staff=staff, name=name[:100], prefix=raw[:12], token_hash=hash_token(raw)
        )
        record_audit(staff.workspace, actor, "token.created", target=token, summary=f"token {token.prefix}… for {staff.email}")
    return token, raw


def do_revoke_api_token(token: ApiToken, actor: Staff | None) -> ApiToken:
    """Revoke a token at once. Records ``token.revoked``."""
    if actor is None or actor.pk != token.staff_id:
        require(actor, Perm.MANAGE_STAFF)
    if token.revoked_at is None:
        with transaction.atomic():
            token.revoked_at = timezone.now()
            token.save(update_fields=["revoked_at"])
            record_audit(token.workspace, actor, "token.revoked", target=token)
    return token


def authenticate_token(raw: str) -> ApiToken | None:
    """Return the live token for a bearer secret, or None. Read-mostly: last_used_at is
    bumped at most once a minute to keep the hot path free of writes."""
    if not raw or not raw.startswith(TOKEN_PREFIX):
        return None
    token = (
        ApiToken.objects.select_related("staff", "staff__user", "workspace")
        .filter(token_hash=hash_token(raw), revoked_at__isnull=True, staff__is_active=True)
        .first()
    )
    if token is None:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token
