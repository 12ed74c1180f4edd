"""Factories for tests (given/when/then set-up), shared by every domain's tests.

Each factory writes through the real actions so tests exercise what production does.
"""

from __future__ import annotations

import itertools
import subprocess
from typing import Any

from siyu.accounts.actions import do_create_api_token, do_create_staff, do_create_workspace
from siyu.accounts.models import Role, Staff
from siyu.contacts.actions import do_create_contact, do_create_tag, do_create_tag_group
from siyu.contacts.models import Contact, Tag, TagGroup
from siyu.core.models import Workspace

_seq = itertools.count(1)


def make_workspace(slug: str | None = None, **kw: Any) -> Workspace:
    n = next(_seq)
    return do_create_workspace(slug=slug or f"ws{n}", name=kw.pop("name", f"Workspace {n}"), **kw)


def make_staff(workspace: Workspace, role: str = Role.OWNER, email: str | None = None, **kw: Any) -> Staff:
    n = next(_seq)
    return do_create_staff(
        workspace, None, email=email or f"staff{n}@example.com", role=role, password=kw.pop("password", "pass-1234"), **kw
    )


def make_token(staff: Staff) -> str:
    return do_create_api_token(staff, None)[1]


def make_contact(workspace: Workspace, name: str | None = None, **kw: Any) -> Contact:
    return do_create_contact(workspace, None, name=name or f"客户{next(_seq)}", **kw)


def make_tag(workspace: Workspace, name: str, group: str = "兴趣", exclusive: bool = False, kind: str = "business") -> Tag:
    tag_group = TagGroup.objects.in_workspace(workspace).filter(name=group).first() or do_create_tag_group(
        workspace, None, name=group, exclusive=exclusive, kind=kind
    )
    return do_create_tag(workspace, None, group=tag_group, name=name)


def start_consumer(huey_home: Any, **extra: str) -> subprocess.Popen[bytes]:
    """Start a real Huey consumer subprocess (``python -m django run_huey``, its output in
    ``huey_home/consumer.log``) working on this test run's database — the SQLite test file, or the PostgreSQL test
    database (a ``transaction=True`` test commits, so the subprocess sees its rows) — with
    its own queue: SQLite Huey storage under ``huey_home``, never the shared Redis another
    test worker's consumer could take tasks from. The PII key is the test process's."""
    import os
    import sys
    from pathlib import Path
    from urllib.parse import quote

    from django.conf import settings
    from django.db import connection

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "SIYU_HOME": str(huey_home), "SIYU_PII_KEY": settings.SIYU_PII_KEY,
           **extra}
    for name in ("SIYU_HUEY_IMMEDIATE", "REDIS_URL", "DATABASE_URL", "SIYU_SQLITE_PATH"):
        env.pop(name, None)
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        env["SIYU_SQLITE_PATH"] = str(db["NAME"])
    elif connection.vendor == "postgresql":
        auth = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
        host = quote(db["HOST"] or "localhost", safe="")  # a socket directory is a percent-encoded path
        env["DATABASE_URL"] = f"postgres://{auth}@{host}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"
    else:
        raise NotImplementedError(f"no consumer subprocess for {connection.vendor}")
    log = open(Path(huey_home) / "consumer.log", "ab")  # the subprocess writes to it for its whole life
    return subprocess.Popen([sys.executable, "-m", "django", "run_huey"], cwd=Path(__file__).resolve().parents[2], env=env, stdout=log, stderr=log)


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s until it is true; fail naming ``what`` after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
