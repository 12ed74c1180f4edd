"""Django's SQLite backend, with write transactions taking turns.

SQLite lets one connection write at a time, and a connection that finds the lock taken
does not queue: its busy handler sleeps and retries (1, 2, 5 … 100 ms). Under a steady
writer — the worker processing inbox batches back to back — another writer (the web
process storing callbacks, a console edit) keeps missing the short gaps between the
worker's transactions: measured waits of over a second (decision 0004).

Here every transaction (siyu's are ``BEGIN IMMEDIATE``: they take SQLite's write lock at
the start) first takes a turn: an exclusive ``flock`` on a file beside the database
(``<name>.turn``), held until the commit or rollback. A waiter tries again every 0.2–2 ms
(not SQLite's up to 100 ms), so turns change hands without idle gaps, and while a
transaction runs the others wait for the turn instead of sleeping inside SQLite's busy
handler.
Writes outside a transaction (autocommit statements) do not take a turn and keep SQLite's
own waiting; so does a turn that is not free within ``TURN_GIVE_UP`` seconds (the
transaction then begins anyway and SQLite's lock decides) — a safety net, so that no
two locks can wait on each other for ever. In-memory databases take no turns.
"""

from __future__ import annotations

import fcntl
import os
import time
from typing import BinaryIO

from django.db.backends.sqlite3 import base

#: seconds a transaction waits for its turn before going ahead under SQLite's lock alone
TURN_GIVE_UP = 10.0


class DatabaseWrapper(base.DatabaseWrapper):
    _turn_file: tuple[int, BinaryIO] | None = None  # (pid, file) this connection takes its turns on
    _has_turn = False

    def _start_transaction_under_autocommit(self) -> None:
        self._take_turn()
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]  # (django-stubs lacks the private hooks)
        except BaseException:
            self._end_turn()
            raise

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]  # (django-stubs lacks the private hooks)
        finally:
            self._end_turn()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]  # (django-stubs lacks the private hooks)
        finally:
            self._end_turn()

    def _close(self) -> None:
        try:
            super()._close()  # type: ignore[misc]  # (django-stubs lacks the private hooks)
        finally:
            self._end_turn()
            held, self._turn_file = self._turn_file, None
            if held is not None and held[0] == os.getpid():
                held[1].close()  # opened again by the next transaction; no file left open per finished thread

    def _turn_fd(self) -> int | None:
        name = str(self.settings_dict.get("NAME") or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            return None
        held = self._turn_file
        # a forked child opens its own file: one inherited from the parent shares the parent's lock
        if held is None or held[0] != os.getpid():
            fd = os.open(f"{name}.turn", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            held = self._turn_file = (os.getpid(), os.fdopen(fd, "r+b"))  # kept open with the connection
        return held[1].fileno()

    def _take_turn(self) -> None:
        if self._has_turn:
            return
        fd = self._turn_fd()
        if fd is None:
            return
        deadline: float | None = None
        pause = 0.0002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + TURN_GIVE_UP
                elif now >= deadline:
                    return  # go ahead without a turn: SQLite's own lock still serialises the writes
                time.sleep(pause)
                pause = min(pause * 2, 0.002)
                continue
            self._has_turn = True
            return

    def _end_turn(self) -> None:
        had, self._has_turn = self._has_turn, False
        held = self._turn_file
        if had and held is not None and held[0] == os.getpid():
            fcntl.flock(held[1].fileno(), fcntl.LOCK_UN)
