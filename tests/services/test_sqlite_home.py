"""Data under ``SIYU_HOME`` on a single machine: the SQLite database in WAL mode (readers
run beside the one writer) and the generated keys, readable by the owner only."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A first connection from the real settings, as any siyu process makes on start.
CONNECT = "import django; django.setup(); from django.db import connection; connection.ensure_connection()"


def test_a_new_home_gets_a_wal_database_and_private_keys(tmp_path: Path):
    # given an empty SIYU_HOME and no DATABASE_URL (the single-machine default)
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SIYU_HUEY_IMMEDIATE")}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "SIYU_HOME": str(home)})
    # when
    done = subprocess.run([sys.executable, "-c", CONNECT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    # then: WAL is recorded in the database file itself, so every later reader sees it
    assert done.returncode == 0, done.stderr
    with closing(sqlite3.connect(home / "siyu.sqlite3")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert stat.S_IMODE((home / "keys").stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in (home / "keys").iterdir()} == {
        "django-secret": 0o600,
        "pii-key": 0o600,
    }
