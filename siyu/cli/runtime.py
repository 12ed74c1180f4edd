"""What every ``siyu`` command shares: lazy Django set-up, the audit "via", output as
text or JSON, and turning domain errors into exit codes.

Exit codes: 0 done (an import with rejected rows is done: the rows are reported),
1 refused by the domain (not found, forbidden, invalid), 2 usage (bad option, unreadable
file).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import typer

from siyu.core.errors import SiyuError

SETTINGS_MODULE = "config.settings"


class UsageError(SiyuError):
    """The command line itself is wrong (exit code 2)."""

    code = "usage"


def setup_django() -> None:
    """Configure Django once, on the first command that needs it (``siyu --help`` does not)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS_MODULE)
    from django.apps import apps

    if not apps.ready:
        import django

        django.setup()


def to_json(data: Any) -> str:
    from django.core.serializers.json import DjangoJSONEncoder

    return json.dumps(data, ensure_ascii=False, cls=DjangoJSONEncoder)


def emit(json_out: bool, data: Any, text: str) -> None:
    typer.echo(to_json(data) if json_out else text)


def fail(error: SiyuError, json_out: bool, exit_code: int = 1) -> NoReturn:
    if json_out:
        typer.echo(to_json({"error": error.as_dict()}))
    else:
        typer.echo(f"error: {error.message}", err=True)
    raise typer.Exit(exit_code)


def _is_usage(error: SiyuError) -> bool:
    from siyu.contacts.importing import InvalidColumns, UnreadableFile

    return isinstance(error, UsageError | UnreadableFile | InvalidColumns)


@contextmanager
def command(json_out: bool) -> Iterator[None]:
    """Run a command body: Django ready, writes audited as coming ``via="cli"``, and a
    domain error printed (or returned as ``{"error": ...}`` with --json) with its exit code."""
    setup_django()
    from siyu.accounts.events import current_via

    token = current_via.set("cli")
    try:
        yield
    except SiyuError as error:
        fail(error, json_out, 2 if _is_usage(error) else 1)
    finally:
        current_via.reset(token)


def workspace_by_slug(slug: str) -> Any:
    from siyu.accounts.actions import get_workspace

    return get_workspace(slug)


def staff_or_system(workspace: Any, email: str | None) -> Any:
    """The staff member to act as, or None (the system: full rights) without --staff."""
    if not email:
        return None
    from siyu.accounts.actions import find_staff_by_email

    return find_staff_by_email(workspace, email)
