"""Side effects after commit, batched per transaction.

Actions schedule work with ``transaction.on_commit``. When one transaction schedules
the same kind of work many times (an import tagging 200 contacts, a demo creating four
rules), :func:`on_commit_batched` keeps one callback per *kind* and *key* and hands it
every item added before the commit, so the worker gets one task instead of hundreds.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from django.db import connection, transaction

_MARK = "siyu_batch"


def on_commit_batched(kind: str, key: Hashable, items: Iterable[Hashable], run: Callable[[set[Hashable]], None]) -> None:
    """After commit, call ``run(items)`` once for every ``(kind, key)`` of this
    transaction, with the union of the items scheduled for it. Outside a transaction
    ``run`` happens at once (as ``on_commit`` does). Items whose savepoint rolled back
    stay in the batch: ``run`` must tolerate ids that no longer exist."""
    batch = set(items)
    if connection.in_atomic_block:
        # Django keeps the pending callbacks on the connection; join ours if it is there
        # and has not run yet (a test's captured callbacks run but stay on the list)
        for _sids, func, *_ in connection.run_on_commit:
            pending = getattr(func, _MARK, None)
            if pending is not None and pending[0] == (kind, key) and not pending[2]:
                pending[1].update(batch)
                return
    state: list[Any] = [(kind, key), batch, False]

    def _run() -> None:
        state[2] = True
        run(batch)

    setattr(_run, _MARK, state)
    transaction.on_commit(_run)


def batch_kind(func: Callable[..., object]) -> str | None:
    """The kind of a callback registered by :func:`on_commit_batched` (for tests)."""
    pending = getattr(func, _MARK, None)
    return pending[0][0] if pending is not None else None
