"""The inbox (收件箱): inbound platform events are stored first, acknowledged, then
processed by the worker exactly once.

Idempotent in: ``(account, dedupe_key)`` is unique, so a replayed or concurrently
duplicated callback stores one row and schedules one processing. Processing locks the
row, runs the handler and marks it processed in one transaction: a crash rolls both
back and the row is retried. Unknown kinds are kept as ``ignored`` and malformed
payloads as ``malformed`` — visible in the console, never dropped.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from siyu.channels.base import InboundEvent, InboundKind
from siyu.channels.models import ChannelAccount, InboxEvent, InboxStatus
from siyu.core.oncommit import on_commit_batched

log = logging.getLogger(__name__)
MAX_PROCESS_ATTEMPTS = 5
#: inbox rows one worker task processes in one transaction (setting ``SIYU_INBOX_BATCH_SIZE``)
BATCH_SIZE: int = max(1, int(getattr(settings, "SIYU_INBOX_BATCH_SIZE", 1000)))


_PROCESSED = ("id", "workspace_id", "account_id", "dedupe_key", "kind", "data", "status", "attempts", "occurred_at")
_RECEIVED = ("workspace_id", "account_id", "dedupe_key", "kind", "data", "raw", "status", "error", "attempts", "occurred_at", "received_at")


def do_receive(account: ChannelAccount, events: Sequence[InboundEvent], *, raw: str = "") -> list[tuple[InboxEvent, bool]]:
    """Store inbound events (once per dedupe key) and schedule their processing after
    commit; returns (row, created) per event. A delivery is stored with one
    ``INSERT … ON CONFLICT DO NOTHING`` (:func:`insert_new_rows`): the keys stored
    before — a redelivery, or a concurrent receiver that stored one first — are
    skipped by the database and those rows read back."""
    stored: list[tuple[InboxEvent, bool]] = []
    new_ids: list[int] = []
    # the rows are built before the transaction: the write lock is held for the statements only
    received_at = timezone.now()
    values: dict[str, dict[str, Any]] = {}
    keys = [event.dedupe_key[:255] for event in events]
    for event, key in zip(events, keys, strict=True):
        if key in values:
            continue
        values[key] = {
            "workspace_id": account.workspace_id, "account_id": account.pk, "dedupe_key": key, "kind": event.kind.value, "data": event.data,
            "raw": raw[:20000], "status": InboxStatus.IGNORED if event.kind == InboundKind.UNKNOWN else InboxStatus.PENDING, "error": "",
            "attempts": 0, "occurred_at": event.occurred_at, "received_at": received_at, "processed_at": None,
        }
    with transaction.atomic():
        ids = {key: pk for (_a, key), pk in insert_new_rows(
            InboxEvent, _RECEIVED, [tuple(v[name] for name in _RECEIVED) for v in values.values()], unique=("account_id", "dedupe_key"),
        ).items()}
        known = [key for key in values if key not in ids]
        existing = {row.dedupe_key: row for row in InboxEvent.objects.filter(account=account, dedupe_key__in=known)} if known else {}
        attnames = [f.attname for f in InboxEvent._meta.concrete_fields]
        fresh = dict(zip(ids, instances(InboxEvent, attnames, [[ids[key] if name == "id" else values[key][name] for name in attnames] for key in ids]),
                         strict=True))
        for row in fresh.values():
            row._state.fields_cache["account"] = account
        seen: set[str] = set()
        for key in keys:
            if key in fresh and key not in seen:  # the first of its key in this delivery is the new row
                seen.add(key)
                stored.append((fresh[key], True))
                if fresh[key].status == InboxStatus.PENDING:
                    new_ids.append(fresh[key].pk)
            else:
                stored.append((existing.get(key) or fresh[key], False))
        if new_ids:
            # one worker task for the whole delivery — and for every delivery stored in the
            # same transaction (a Matrix sync stores its events one by one): the batch
            # processor takes them together
            on_commit_batched("inbox_batch", None, new_ids, _schedule_ids)
    return stored


def insert_rows(model: Any, fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A plain ``INSERT`` of many rows through the driver's ``executemany`` — for the
    batch processor's append-only tables, where the ORM's ``bulk_create`` spends more
    time compiling values than the database spends storing them. ``rows`` are tuples in
    ``fields`` order; date-times and JSON go through the backend's own adaptation, so
    what is stored is what ``bulk_create`` stores. Ids are not returned."""
    if not rows:
        return
    table, columns, values = _insert_values(model, fields, rows)
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", values)


def insert_new_rows(model: Any, fields: Sequence[str], rows: Sequence[Sequence[Any]], *,
                    unique: tuple[str, str] = ("workspace_id", "idempotency_key")) -> dict[tuple[Any, Any], int]:
    """:func:`insert_rows` for a table with a unique ``(scope, key)`` pair (``unique``,
    both among ``fields``): rows already stored under their pair are skipped, and the
    rows inserted are returned as ``{(scope, key): id}``. Where the database can return
    them (PostgreSQL, SQLite ≥ 3.35) that is one ``INSERT … ON CONFLICT DO NOTHING
    RETURNING`` statement; otherwise a lookup of the stored pairs, an insert and a lookup
    of the new ids."""
    if not rows:
        return {}
    scope, key = (fields.index(name) for name in unique)
    if not connection.features.can_return_rows_from_bulk_insert:
        stored = set(select_in(model, unique, unique[1], {row[key] for row in rows}, **{unique[0]: {row[scope] for row in rows}}))
        fresh = list({(row[scope], row[key]): row for row in rows if (row[scope], row[key]) not in stored}.values())
        insert_rows(model, fields, fresh)
        return {(s, k): pk for s, k, pk in select_in(model, (*unique, "id"), unique[1], [row[key] for row in fresh],
                                                     **{unique[0]: {row[scope] for row in fresh}})}
    table, columns, values = _insert_values(model, fields, rows)
    one = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = max(1, 30000 // len(fields))  # under SQLite's bound-parameter limit
    returning = ", ".join(connection.ops.quote_name(model._meta.get_field(name).column) for name in ("id", *unique))
    ids: dict[tuple[Any, Any], int] = {}
    with connection.cursor() as cursor:
        for start in range(0, len(values), per_statement):
            chunk = values[start:start + per_statement]
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {', '.join([one] * len(chunk))} ON CONFLICT DO NOTHING RETURNING {returning}",
                [value for row in chunk for value in row],
            )
            ids.update(((s, k), pk) for pk, s, k in cursor.fetchall())
    return ids


def _insert_values(model: Any, fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, str, list[Sequence[Any]]]:
    meta = model._meta
    columns = [meta.get_field(name) for name in fields]
    ops = connection.ops
    convert: list[tuple[int, Any]] = []
    for index, field in enumerate(columns):
        internal = field.get_internal_type()
        if internal == "DateTimeField":
            convert.append((index, _datetime_adapter()))
        elif internal == "JSONField":
            convert.append((index, _json_adapter(field)))
    values: list[Sequence[Any]] = []
    for row in rows:
        if convert:
            row = list(row)
            for index, adapt in convert:
                row[index] = adapt(row[index])
        values.append(row)
    return ops.quote_name(meta.db_table), ", ".join(ops.quote_name(f.column) for f in columns), values


def instances(model: Any, attnames: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[Any]:
    """Model instances for rows already in the database (``attnames`` order), as
    ``Model.from_db`` makes them but without running ``Model.__init__`` per row — a
    tenth of the cost, for the batch paths that build hundreds at a time. Only when
    nobody listens to the model's ``pre_init``/``post_init`` signals (which ``__init__``
    sends); otherwise ``from_db`` it is."""
    from django.db.models.base import ModelState
    from django.db.models.signals import post_init, pre_init

    alias = connection.alias
    if pre_init.has_listeners(model) or post_init.has_listeners(model):
        return [model.from_db(alias, attnames, row) for row in rows]
    out = []
    new = model.__new__
    for row in rows:
        obj = new(model)
        obj.__dict__.update(zip(attnames, row, strict=True))
        state = obj._state = ModelState()
        state.adding, state.db = False, alias
        out.append(obj)
    return out


def _quoter(model: Any) -> Any:
    """``attname → quoted column`` for ``model`` on the current connection."""
    ops, meta = connection.ops, model._meta
    return lambda attname: ops.quote_name(meta.get_field(attname).column)


def _in_chunks(items: Sequence[Any], size: int, statement: Any) -> list[tuple[Any, ...]]:
    """Run ``statement(chunk) → (sql, params)`` for each ``size``-long chunk of ``items``
    (long lists stay under the driver's parameter limit) and gather the rows returned."""
    out: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for start in range(0, len(items), size):
            cursor.execute(*statement(items[start:start + size]))
            if cursor.description is not None:
                out.extend(cursor.fetchall())
    return out


def select_in(model: Any, columns: Sequence[str], column: str, values: Any, **equal: Any) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM model WHERE column IN values AND k = v …`` (``k IN v`` for a
    collection, ``k IS NULL`` for ``None``) as plain SQL, for
    the batch's large ``IN`` lists of ids and keys (the ORM prepares every value on
    its own). Only for integer and text columns: values are returned as the driver
    gives them. Long lists are split to stay under the driver's parameter limit."""
    values = list(values)
    if not values:
        return []
    name = _quoter(model)
    conditions = ""
    params: list[Any] = []
    for key, value in equal.items():
        if value is None:
            conditions += f" AND {name(key)} IS NULL"
        elif isinstance(value, list | set | tuple | frozenset):
            # the leading column of a composite index must be constrained for it to be used
            conditions += f" AND {name(key)} IN ({', '.join(['%s'] * len(value))})"
            params.extend(value)
        else:
            conditions += f" AND {name(key)} = %s"
            params.append(value)
    head = f"SELECT {', '.join(name(c) for c in columns)} FROM {connection.ops.quote_name(model._meta.db_table)} WHERE {name(column)} IN "
    return _in_chunks(values, 900, lambda chunk: (f"{head}({', '.join(['%s'] * len(chunk))}){conditions}", [*chunk, *params]))


def select_pairs(model: Any, columns: Sequence[str], keys: tuple[str, str], pairs: Any) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM model`` for the rows whose ``keys`` (two integer or text
    columns leading an index, like a group and a message id) equal one of ``pairs``: the
    pairs go in as a ``VALUES`` list joined to the table, one index probe per pair. Two
    ``IN`` lists (``a IN … AND b IN …``) would probe every combination — 20 groups × 500
    ids are 10,000 probes for 500 answers."""
    pairs = list(pairs)
    if not pairs:
        return []
    name = _quoter(model)
    first, second = (name(k) for k in keys)
    tail = (f"SELECT {', '.join('t.' + name(c) for c in columns)} FROM wanted "
            f"JOIN {connection.ops.quote_name(model._meta.db_table)} t ON t.{first} = wanted.a AND t.{second} = wanted.b")
    return _in_chunks(pairs, 450, lambda chunk: (
        f"WITH wanted (a, b) AS (VALUES {', '.join(['(%s, %s)'] * len(chunk))}) {tail}", [value for pair in chunk for value in pair],
    ))


def _read_pending(ids: Sequence[int]) -> list[list[Any]]:
    """The pending rows among ``ids`` (``_PROCESSED`` columns, id order), read without a
    lock (:func:`_claim` takes them), as plain SQL with the fields' own conversions — on
    SQLite done the quick way: the JSON payload through orjson, the date-time (parsed by
    the driver) given its zone."""
    if not ids:
        return []
    ops = connection.ops
    meta = InboxEvent._meta
    fields: list[Any] = [meta.get_field(name) for name in _PROCESSED]
    name = _quoter(InboxEvent)
    head = f"SELECT {', '.join(name(f) for f in _PROCESSED)} FROM {ops.quote_name(meta.db_table)} WHERE {name('id')} IN "
    raw = _in_chunks(list(ids), 900, lambda chunk: (
        f"{head}({', '.join(['%s'] * len(chunk))}) AND {name('status')} = %s", [*chunk, InboxStatus.PENDING],
    ))
    raw.sort(key=lambda row: row[0])
    data, occurred = _PROCESSED.index("data"), _PROCESSED.index("occurred_at")
    if connection.vendor == "sqlite" and settings.USE_TZ:
        zone = connection.timezone

        def load(text: Any) -> Any:
            try:
                return orjson.loads(text)
            except orjson.JSONDecodeError:  # what orjson refuses (integers past 64 bits...): the ORM's way
                return fields[data].from_db_value(text, None, connection)

        def when(value: Any) -> Any:  # the driver parses declared datetime columns already; naive, in the connection's zone
            return (dt.datetime.fromisoformat(value) if isinstance(value, str) else value).replace(tzinfo=zone)

        return [[*row[:data], None if row[data] is None else load(row[data]), *row[data + 1:occurred], when(row[occurred]),
                 *row[occurred + 1:]] for row in raw]
    cols = [f.get_col(meta.db_table) for f in fields]
    converters = [(i, col, [*ops.get_db_converters(col), *col.get_db_converters(connection)]) for i, col in enumerate(cols)]
    out = []
    for row in raw:
        values = list(row)
        for index, col, functions in converters:
            for convert in functions:
                values[index] = convert(values[index], col, connection)
        out.append(values)
    return out


def _claim(ids: Sequence[int]) -> set[int]:
    """Inside the batch's transaction: the ids among ``ids`` still pending, locked where
    the database can (``FOR UPDATE SKIP LOCKED``: a row another worker holds is its own;
    SQLite's write transaction is exclusive anyway)."""
    if not ids:
        return set()
    name = _quoter(InboxEvent)
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    head = f"SELECT {name('id')} FROM {connection.ops.quote_name(InboxEvent._meta.db_table)} WHERE {name('id')} IN "
    return {pk for pk, in _in_chunks(list(ids), 900, lambda chunk: (
        f"{head}({', '.join(['%s'] * len(chunk))}) AND {name('status')} = %s{lock}", [*chunk, InboxStatus.PENDING],
    ))}


def _mark_done(pks: Sequence[int], status: str, now: dt.datetime, error: str) -> None:
    """``status``, ``processed_at``, ``error`` and one more attempt on the rows ``pks``, as
    plain SQL (the ORM prepares each of a batch's thousand ids on its own)."""
    name = _quoter(InboxEvent)
    head = (f"UPDATE {connection.ops.quote_name(InboxEvent._meta.db_table)} SET {name('status')} = %s, {name('processed_at')} = %s, "
            f"{name('error')} = %s, {name('attempts')} = {name('attempts')} + 1 WHERE {name('id')} IN ")
    when = connection.ops.adapt_datetimefield_value(now)
    _in_chunks(list(pks), 900, lambda chunk: (f"{head}({', '.join(['%s'] * len(chunk))})", [status, when, error, *chunk]))


def _json_adapter(field: Any) -> Any:
    """The backend's JSON adaptation, with ``None`` as SQL NULL as the ORM saves it. On
    SQLite (JSON stored as text) the text comes from orjson: several times faster than
    ``json.dumps`` and UTF-8 rather than ``\\u`` escapes (a Chinese message takes half the
    bytes); values orjson does not take, or a field with its own encoder, go the ORM's
    way."""
    ops = connection.ops
    encoder = field.encoder
    if connection.vendor != "sqlite" or encoder is not None:
        return lambda value: None if value is None else ops.adapt_json_value(value, encoder)

    def adapt(value: Any) -> Any:
        if value is None:
            return None
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
        except TypeError:  # what json.dumps takes and orjson does not (or raises on, as it would)
            return ops.adapt_json_value(value, encoder)

    return adapt


def _datetime_adapter() -> Any:
    """The backend's date-time adaptation; on SQLite its result (the naive local time in
    the connection's zone, as text) computed without the per-value settings lookups."""
    if connection.vendor != "sqlite" or not settings.USE_TZ:
        return connection.ops.adapt_datetimefield_value
    zone = connection.timezone
    last: list[Any] = [None, None]  # a batch's rows share their "now": adapted once

    def adapt(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        if value is None or value.tzinfo is None:
            return connection.ops.adapt_datetimefield_value(value)
        if value.tzinfo is zone is dt.UTC:  # the usual case: ISO text without its "+00:00"
            last[0], last[1] = value, value.isoformat(" ")[:-6]
        else:
            last[0], last[1] = value, str(value.astimezone(zone).replace(tzinfo=None))
        return last[1]

    return adapt


def do_receive_malformed(account: ChannelAccount, raw: str, error: str) -> InboxEvent:
    """Keep a payload that could not be understood, marked malformed, for the console."""
    key = "malformed:" + hashlib.sha256(raw.encode("utf-8", "replace")).hexdigest()
    with transaction.atomic():
        row, _ = InboxEvent.objects.get_or_create(
            account=account,
            dedupe_key=key,
            defaults={
                "workspace_id": account.workspace_id, "kind": InboundKind.UNKNOWN.value, "raw": raw[:20000],
                "status": InboxStatus.MALFORMED, "error": error[:2000], "occurred_at": timezone.now(),
            },
        )
    return row


def _schedule_ids(inbox_ids: set[Any]) -> None:
    schedule_batches(sorted(inbox_ids))


def _schedule(inbox_id: int) -> None:
    schedule_batches([inbox_id])


def schedule_batches(inbox_ids: Sequence[int]) -> int:
    """Hand pending rows to the worker, ``BATCH_SIZE`` per task. Returns the task count."""
    from siyu.worker.tasks import process_inbox_batch_task

    ids = sorted(inbox_ids)
    for start in range(0, len(ids), BATCH_SIZE):
        process_inbox_batch_task(ids[start:start + BATCH_SIZE])
    return (len(ids) + BATCH_SIZE - 1) // BATCH_SIZE


def process(inbox_id: int) -> str:
    """Process one stored event through the domain actions, exactly once. Returns the
    row's status afterwards."""
    from siyu.channels.handlers import PermanentEventError, handle

    try:
        with transaction.atomic():
            row = InboxEvent.objects.select_for_update().select_related("account", "account__workspace").filter(pk=inbox_id).first()
            if row is None or row.status != InboxStatus.PENDING:
                return row.status if row else "missing"
            outcome = handle(row)
            row.status = InboxStatus.PROCESSED if outcome != "ignored" else InboxStatus.IGNORED
            row.processed_at = timezone.now()
            row.attempts += 1
            row.error = "" if outcome in ("ok", "ignored") else outcome
            row.save(update_fields=["status", "processed_at", "attempts", "error"])
            return row.status
    except Exception as exc:
        log.exception("inbox %s failed", inbox_id)
        with transaction.atomic():
            row = InboxEvent.objects.select_for_update().get(pk=inbox_id)
            row.attempts += 1
            row.error = f"{type(exc).__name__}: {exc}"[:2000]
            if row.attempts >= MAX_PROCESS_ATTEMPTS or isinstance(exc, PermanentEventError):
                row.status = InboxStatus.FAILED
            row.save(update_fields=["attempts", "error", "status"])
        if row.status == InboxStatus.FAILED:
            return row.status
        raise


def do_requeue(row: InboxEvent, actor: object | None = None) -> InboxEvent:
    """Console "retry": put a failed event back to pending and process it again."""
    from siyu.accounts.events import record_audit
    from siyu.accounts.permissions import Perm, require

    require(actor, Perm.OPERATE_CHANNELS)  # type: ignore[arg-type]
    if row.status not in (InboxStatus.FAILED,):
        return row
    with transaction.atomic():
        InboxEvent.objects.filter(pk=row.pk).update(status=InboxStatus.PENDING, attempts=0, error="")
        record_audit(row.account.workspace, actor, "inbox.retried", target=row)  # type: ignore[arg-type]
        transaction.on_commit(lambda: _schedule(row.pk))
    row.refresh_from_db()
    return row


def pending_ids(older_than: dt.timedelta = dt.timedelta(seconds=30), limit: int = 1000) -> list[int]:
    """Pending rows whose processing task was lost (worker killed) — for the sweeper."""
    cutoff = timezone.now() - older_than
    return list(
        InboxEvent.objects.filter(status=InboxStatus.PENDING, received_at__lt=cutoff).order_by("id").values_list("pk", flat=True)[:limit]
    )


class OldestFirst:
    """One holder at a time, in the order of keys (a batch's first inbox id: the oldest
    rows first). A batch takes its place in line when it starts (:meth:`place`) and
    waits for its turn only when it needs it (:meth:`Place.turn`): the turn goes to the
    smallest key in line, so a batch that is still reading and preparing its rows keeps
    the batches after it waiting. The worker's threads dequeue their tasks in order but
    may reach the turn out of it, and processing order decides auto-reply cool-downs and
    flood windows."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._busy = False
        self._waiting: list[tuple[int, int]] = []
        self._arrivals = itertools.count()

    @contextmanager
    def place(self, key: int) -> Iterator[Place]:
        """A place in line for ``key``, given up on leaving (whether or not its turn came)."""
        mine = (key, next(self._arrivals))
        with self._changed:
            heapq.heappush(self._waiting, mine)
        try:
            yield Place(self, mine)
        finally:
            self._leave(mine)

    @contextmanager
    def turn(self, key: int) -> Iterator[None]:
        """A place and, at once, its turn."""
        with self.place(key) as place, place.turn():
            yield

    def _wait_for(self, mine: tuple[int, int]) -> None:
        with self._changed:
            while self._busy or self._waiting[0] != mine:
                self._changed.wait()
            self._busy = True

    def _done(self, mine: tuple[int, int]) -> None:
        with self._changed:
            self._busy = False
        self._leave(mine)

    def _leave(self, mine: tuple[int, int]) -> None:
        with self._changed:
            if mine in self._waiting:
                self._waiting.remove(mine)
                heapq.heapify(self._waiting)
            self._changed.notify_all()


class Place:
    """A batch's place in an :class:`OldestFirst` line."""

    def __init__(self, line: OldestFirst, mine: tuple[int, int]) -> None:
        self._line, self._mine = line, mine

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait until no one holds the turn and no smaller key is in line; hold it."""
        self._line._wait_for(self._mine)
        try:
            yield
        finally:
            self._line._done(self._mine)


#: on SQLite, one batch's transaction at a time per process, oldest rows first (see :func:`process_batch`)
_BATCHES = OldestFirst()


def process_batch(inbox_ids: Sequence[int], *, fill: int = 0, latencies: list[float] | None = None) -> dict[str, int]:
    """Process many stored events in one transaction, exactly once, in id order.

    The pending rows among ``inbox_ids`` are claimed (``SELECT … FOR UPDATE SKIP LOCKED``
    where the database has it; SQLite's write transaction is exclusive anyway). Plain
    group messages go through :class:`siyu.channels.handlers.MessageBatch` — caches
    loaded for the batch, the pure moderation engine and auto-reply decision per
    message, bulk writes; every other event (and any message the batch declines) runs
    its per-event handler in a savepoint, in order. The rows are marked processed in the
    same transaction, so a worker killed mid-batch leaves all of them pending and the
    sweeper runs the batch again; a replay of processed rows is a no-op.

    ``fill`` (the worker's tasks pass :data:`BATCH_SIZE`): when ``inbox_ids`` are fewer,
    the oldest other pending rows that were never tried join the batch up to that size.
    Platforms that call back once per event (WeCom) schedule one task per event; under
    load the first task takes the backlog in one transaction and the later tasks find
    their rows processed (skipped).

    A handler that raises only sends its own row to :func:`process` after the commit
    (retries, attempts, ``failed``); an error in the batch machinery rolls the batch
    back and every row goes through :func:`process` one by one.

    ``latencies`` (optional) receives, per message decided in the batch, the
    milliseconds from the batch's start to its verdict and auto-reply decision — what a
    member waits for the bot to have made up its mind, not counting the commit.

    The rows are read, and the work that depends on their texts alone is done (see
    :meth:`MessageBatch.prepare`), before the transaction begins: the write lock is held
    for the decisions that depend on stored state, and for the writes. On SQLite a
    process runs one batch's transaction at a time, in the order of the batches' first
    rows (:class:`OldestFirst`: the worker's threads would otherwise only contend for
    the one write lock and the interpreter — two whole batches at once measured the same
    throughput with twice the decision latency); the next batch reads and prepares its
    rows meanwhile, while the running one is in SQLite with the interpreter free.

    Returns counts of rows by outcome.
    """
    if connection.vendor != "sqlite":
        return _process_batch(inbox_ids, fill, latencies, nullcontext)
    with _BATCHES.place(min(inbox_ids, default=0)) as place:
        return _process_batch(inbox_ids, fill, latencies, place.turn)


def _process_batch(inbox_ids: Sequence[int], fill: int, latencies: list[float] | None,
                   turn: Callable[[], AbstractContextManager[None]]) -> dict[str, int]:
    from siyu.channels.handlers import MessageBatch, handle

    ids = sorted(set(inbox_ids))
    counts = {"processed": 0, "ignored": 0, "fallback": 0, "retried": 0, "skipped": 0}
    retry: list[int] = []
    try:
        started = time.perf_counter()
        if fill > len(ids):
            # rows a handler failed on (attempts > 0) keep to their own retry schedule
            backlog = InboxEvent.objects.filter(status=InboxStatus.PENDING, attempts=0).exclude(pk__in=ids).order_by("id")
            ids = sorted({*ids, *backlog.values_list("pk", flat=True)[: fill - len(ids)]})
        # read and prepared before the transaction (a stored event's payload never changes):
        # the write lock is held for the decisions that depend on what is stored, and the
        # writes. The raw payload (up to 20 kB) and bookkeeping dates are not needed to
        # process: left out, they are deferred fields (loaded if a handler reads them)
        rows: list[InboxEvent] = instances(InboxEvent, _PROCESSED, _read_pending(ids))
        accounts = {a.pk: a for a in ChannelAccount.objects.filter(pk__in={r.account_id for r in rows}).select_related("workspace")}
        for row in rows:
            row._state.fields_cache["account"] = accounts[row.account_id]
        prepared = MessageBatch.prepare(rows)
        with turn(), transaction.atomic():
            # claimed now: rows another worker processed meanwhile are left to it
            claimed = _claim(ids)
            rows = [row for row in rows if row.pk in claimed]
            batch = MessageBatch(rows, started=started, latencies=latencies, prepared=prepared)
            outcomes: dict[str, list[int]] = {}
            for index, row in enumerate(rows):
                outcome = batch.accept(row, index)
                if outcome is None:
                    batch.flush()
                    counts["fallback"] += 1
                    try:
                        with transaction.atomic():
                            outcome = handle(row)
                    except Exception:
                        log.warning("inbox %s: handler failed inside a batch; retried on its own", row.pk, exc_info=True)
                        retry.append(row.pk)
                        continue
                    finally:
                        batch.after_handler(row)
                outcomes.setdefault(outcome, []).append(row.pk)
            batch.finish()
            now = timezone.now()
            for outcome, pks in outcomes.items():
                status = InboxStatus.IGNORED if outcome == "ignored" else InboxStatus.PROCESSED
                _mark_done(pks, status, now, "" if outcome in ("ok", "ignored") else outcome[:2000])
                counts["ignored" if outcome == "ignored" else "processed"] += len(pks)
            counts["skipped"] = len(ids) - len(rows)
    except Exception:
        log.exception("inbox batch of %d failed; processing its rows one by one", len(ids))
        retry = ids
        counts = {"processed": 0, "ignored": 0, "fallback": 0, "retried": 0, "skipped": 0}
    for pk in retry:
        counts["retried"] += 1
        try:
            process(pk)
        except Exception:  # noqa: BLE001 - the row stays pending with its error; the sweeper retries it
            log.warning("inbox %s still failing; left pending for the sweeper", pk)
    return counts
