"""Outreach benchmark: a segment over synthetic contacts with tags and millions of timeline
events, kept up to date incrementally, then a broadcast planned through the quota ledger.

    python -m bench.outreach --contacts 200000 --events 2000000 --json [--database-url URL]

A fresh SIYU_HOME (temporary), migrated — or, with ``--database-url``, that PostgreSQL
database (use a scratch one: the bench adds a workspace of its own and leaves it there).
Generation bulk-inserts contacts, ~2 tags each out of 12, and ``--events`` timeline
events over the last year (15% orders, 60% messages, the rest scans and updates).

The segment is "tag any of [t0, t1, t2] AND ordered ≥ 2 times in 90 days AND NOT tag
blocked". Measured in the same run:

- ``segment_build_s``: the first build (evaluate + bulk enter with timeline events);
- ``incremental_update_ms``: median over ``--samples`` contacts one order short of the
  segment: one new order event → ``siyu.segments.incremental.on_contact_events`` (the
  consumer the worker calls) → the contact is a member (checked);
- ``full_rebuild_s``: median of full rebuilds of the same segment after those events
  (evaluate everything + diff), i.e. what a system without incremental updates pays for
  the same event; ``incremental_speedup`` = full_rebuild / incremental;
- ``plan_s``, ``planned``, ``deferred``, ``skipped``, ``quota_violations``, ``duplicates``:
  a broadcast to the segment for tomorrow 10:00, planned by
  ``siyu.outreach.planning.plan_broadcast`` through the quota ledger after a quarter of
  the segment got two marketing messages in the two days before (see
  :func:`plan_through_outreach`); ``quota_violations`` comes from the ledger's
  independent audit, ``duplicates`` counts contacts planned twice.

Huey is not running: after-commit fan-out only enqueues (the consumer is timed directly).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TAGS = 12
BATCH = 20_000
DEFINITION_TAGS = ["t0", "t1", "t2"]


def _setup(home: str, database_url: str) -> None:
    os.environ["SIYU_HOME"] = home
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.pop("SIYU_HUEY_IMMEDIATE", None)
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _stamp(value: dt.datetime, vendor: str) -> Any:
    # SQLite keeps naive UTC text; PostgreSQL takes aware datetimes.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f") if vendor == "sqlite" else value


def generate(contacts: int, events: int, seed: int) -> dict[str, Any]:
    """The synthetic workspace (bulk inserts through the connection, in big batches)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from siyu.accounts.actions import do_create_workspace
    from siyu.contacts.models import Contact, ContactEvent, ContactTag, Tag, TagGroup

    rng = random.Random(seed)
    vendor = connection.vendor
    now = timezone.now()
    slug = f"bench-outreach-{int(time.time())}"
    workspace = do_create_workspace(slug=slug, name="Outreach bench")
    group = TagGroup.objects.create(workspace=workspace, name="兴趣")
    risk = TagGroup.objects.create(workspace=workspace, name="风控")
    tags = [Tag.objects.create(workspace=workspace, group=group, name=f"t{i}") for i in range(TAGS)]
    blocked = Tag.objects.create(workspace=workspace, group=risk, name="blocked")
    started = time.perf_counter()
    table, quote = Contact._meta.db_table, connection.ops.quote_name
    with transaction.atomic(), connection.cursor() as cursor:
        created = _stamp(now - dt.timedelta(days=400), vendor)
        rows = [(workspace.pk, f"c{i}", "unknown", "", "", "", "", "", "", "", "new", "", "{}", created, created)
                for i in range(contacts)]
        columns = ("workspace_id", "name", "gender", "region", "city", "phone_encrypted", "phone_hash", "phone_masked",
                   "source_channel", "source_campaign", "lifecycle_stage", "external_ref", "profile", "created_at", "updated_at")
        sql = f"INSERT INTO {quote(table)} ({', '.join(map(quote, columns))}) VALUES ({', '.join(['%s'] * len(columns))})"
        for start in range(0, len(rows), BATCH):
            cursor.executemany(sql, rows[start:start + BATCH])
    ids = list(Contact.objects.in_workspace(workspace).order_by("pk").values_list("pk", flat=True))
    link_rows = []
    for cid in ids:
        for tag in rng.sample(tags, 2):
            link_rows.append((workspace.pk, cid, tag.pk))
        if rng.random() < 0.1:
            link_rows.append((workspace.pk, cid, blocked.pk))
    with transaction.atomic(), connection.cursor() as cursor:
        stamp = _stamp(now, vendor)
        sql = (f"INSERT INTO {quote(ContactTag._meta.db_table)} (workspace_id, contact_id, tag_id, source, reason, created_at) "
               "VALUES (%s, %s, %s, 'import', '', %s)")
        for start in range(0, len(link_rows), BATCH):
            cursor.executemany(sql, [(*row, stamp) for row in link_rows[start:start + BATCH]])
    # Reachable through a sandbox account; 90% gave marketing consent (the ledger checks it).
    from siyu.channels.models import ChannelAccount
    from siyu.contacts.models import ChannelIdentity, Consent

    account = ChannelAccount.objects.create(workspace=workspace, kind="sandbox", name="bench")
    with transaction.atomic(), connection.cursor() as cursor:
        sql = (f"INSERT INTO {quote(ChannelIdentity._meta.db_table)} (workspace_id, contact_id, account_id, external_id, unionid, created_at) "
               "VALUES (%s, %s, %s, %s, '', %s)")
        identities: list[tuple[Any, ...]] = [(workspace.pk, cid, account.pk, f"u{cid}", stamp) for cid in ids]
        for start in range(0, len(identities), BATCH):
            cursor.executemany(sql, identities[start:start + BATCH])
        sql = (f"INSERT INTO {quote(Consent._meta.db_table)} (workspace_id, contact_id, purpose, granted, do_not_disturb, source, updated_at) "
               "VALUES (%s, %s, 'marketing', %s, %s, 'bench', %s)")
        consents: list[tuple[Any, ...]] = [(workspace.pk, cid, rng.random() < 0.9, False, stamp) for cid in ids]
        for start in range(0, len(consents), BATCH):
            cursor.executemany(sql, consents[start:start + BATCH])
    kinds = ["order"] * 15 + ["message"] * 60 + ["scan"] * 15 + ["updated"] * 10
    sql = (f"INSERT INTO {quote(ContactEvent._meta.db_table)} (workspace_id, contact_id, kind, occurred_at, data, idempotency_key, created_at) "
           "VALUES (%s, %s, %s, %s, '{}', %s, %s)")
    stamp = _stamp(now, vendor)
    done = 0
    while done < events:
        size = min(BATCH * 5, events - done)
        batch = [
            (workspace.pk, rng.choice(ids), rng.choice(kinds), _stamp(now - dt.timedelta(seconds=rng.randrange(365 * 86400)), vendor),
             f"bench:{done + i}", stamp)
            for i in range(size)
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            for start in range(0, len(batch), BATCH):
                cursor.executemany(sql, batch[start:start + BATCH])
        done += size
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"workspace": workspace, "contact_ids": ids, "generate_s": round(time.perf_counter() - started, 2)}


def _one_order_short(workspace: Any, limit: int) -> list[int]:
    from siyu.segments.conditions import evaluate, validate_definition

    definition = validate_definition(workspace, {"all": [
        {"tags": {"any": DEFINITION_TAGS}},
        {"event": {"kind": "order", "min": 1, "max": 1, "within_days": 90}},
        {"not": {"tags": {"any": ["blocked"]}}},
    ]})
    return sorted(evaluate(workspace, definition))[:limit]


def _seed_recent_sends(workspace: Any, segment: Any, share: float, seed: int) -> int:
    """Give ``share`` of the segment two marketing messages in the last three days (sent
    through the same sandbox account), so the brand cap (2 per 7 days by default) has
    something to defer. Returns how many contacts got them."""
    from siyu.channels.models import ChannelAccount
    from siyu.outreach.models import Delivery, DeliveryStatus
    from siyu.segments.queries import segment_member_ids

    rng = random.Random(seed + 7)
    account = ChannelAccount.objects.in_workspace(workspace).get(name="bench")
    members = sorted(segment_member_ids(workspace, segment))
    chosen = [cid for cid in members if rng.random() < share]
    from django.utils import timezone

    today = timezone.now().astimezone(workspace.tz).replace(hour=10, minute=0, second=0, microsecond=0)
    rows = []
    for cid in chosen:
        for k in (1, 2):
            # daytime sends (10:00–19:59 local): the prior sends themselves respect quiet hours
            at = today - dt.timedelta(days=k) + dt.timedelta(minutes=rng.randrange(600))
            rows.append(Delivery(
                workspace=workspace, idempotency_key=f"bench:prior:{cid}:{k}", contact_id=cid, channel_account=account,
                platform="wecom", message_class="marketing", source="bench:prior", content={"kind": "text", "text": "上周活动"},
                status=DeliveryStatus.SENT, requested_at=at, planned_for=at, slot_at=at, sent_at=at,
            ))
    Delivery.objects.bulk_create(rows, batch_size=2000)
    return len(chosen)


def plan_through_outreach(workspace: Any, segment: Any, seed: int) -> dict[str, Any]:
    """A broadcast to ``segment`` for tomorrow 10:00 (workspace time), planned by
    ``siyu.outreach.planning.plan_broadcast`` through the quota ledger. The sandbox
    account imitates WeCom (monthly mass-message limit) and a quarter of the segment got
    two marketing messages in the two days before, so the brand cap defers them (the
    broadcast may wait up to 7 days for a slot); 10% of
    contacts never gave marketing consent, so they are skipped. Then, independently:
    ``quota_violations`` = breaches found by ``siyu.outreach.quota.audit`` over every
    counted slot of the workspace (prior sends included), ``duplicates`` = contacts with
    more than one delivery of the broadcast."""
    from django.db.models import Count
    from django.utils import timezone

    from siyu.channels.models import ChannelAccount
    from siyu.outreach.actions import do_create_broadcast
    from siyu.outreach.models import Delivery
    from siyu.outreach.planning import plan_broadcast
    from siyu.outreach.quota import audit

    ChannelAccount.objects.in_workspace(workspace).filter(name="bench").update(config={"imitate": "wecom"})
    primed = _seed_recent_sends(workspace, segment, 0.25, seed)
    local = timezone.now().astimezone(workspace.tz)
    at = (local + dt.timedelta(days=1)).replace(hour=10, minute=0, second=0, microsecond=0)
    broadcast = do_create_broadcast(
        workspace, actor=None, name="bench broadcast", audience={"segment": segment.pk},
        variants=[{"content": {"kind": "text", "text": "新品上市，{name} 专享"}}], schedule={"mode": "at", "at": at.isoformat()},
        expires_after_hours=7 * 24,
    )
    started = time.perf_counter()
    result = plan_broadcast(broadcast)
    plan_s = time.perf_counter() - started
    rows = Delivery.objects.filter(workspace_id=workspace.pk, broadcast=broadcast)
    return {
        "plan_s": round(plan_s, 3), "planned": result.planned, "deferred": result.deferred, "skipped": result.skipped,
        "by_reason": result.by_reason, "primed_contacts": primed,
        "duplicates": rows.values("contact_id").annotate(n=Count("id")).filter(n__gt=1).count(),
        "quota_violations": len(audit(workspace)),
    }


def run(contacts: int, events: int, samples: int, rebuilds: int, seed: int, database_url: str) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="siyu-bench-outreach-")
    _setup(home, database_url)
    from django.db import connection
    from django.utils import timezone

    from siyu.contacts.models import ContactEvent
    from siyu.segments.actions import do_build_segment, do_create_segment
    from siyu.segments.incremental import on_contact_events
    from siyu.segments.models import SegmentMembership

    generated = generate(contacts, events, seed)
    workspace = generated["workspace"]
    definition = {"all": [
        {"tags": {"any": DEFINITION_TAGS}},
        {"event": {"kind": "order", "min": 2, "within_days": 90}},
        {"not": {"tags": {"any": ["blocked"]}}},
    ]}
    segment = do_create_segment(workspace, None, name="复购 VIP", definition=definition)
    started = time.perf_counter()
    first = do_build_segment(segment)
    segment_build_s = time.perf_counter() - started

    candidates = _one_order_short(workspace, samples)
    incremental_ms: list[float] = []
    for i, contact_id in enumerate(candidates):
        event = ContactEvent.objects.create(
            workspace=workspace, contact_id=contact_id, kind="order", occurred_at=timezone.now(), idempotency_key=f"bench:new:{i}"
        )
        started = time.perf_counter()
        on_contact_events([event])
        incremental_ms.append((time.perf_counter() - started) * 1000)
        assert SegmentMembership.objects.filter(segment=segment, contact_id=contact_id, left_at__isnull=True).exists(), contact_id

    full_s: list[float] = []
    for _ in range(rebuilds):
        started = time.perf_counter()
        build = do_build_segment(segment)
        full_s.append(time.perf_counter() - started)
        assert build.entered == 0 and build.left == 0, (build.entered, build.left)

    incremental = statistics.median(incremental_ms) if incremental_ms else float("nan")
    full = statistics.median(full_s)
    result: dict[str, Any] = {
        "benchmark": "outreach",
        "database": connection.vendor,
        "contacts": contacts,
        "events": ContactEvent.objects.filter(workspace=workspace).count(),
        "generate_s": generated["generate_s"],
        "segment_size": first.size,
        "segment_build_s": round(segment_build_s, 3),
        "incremental_update_ms": round(incremental, 2),
        "incremental_samples": len(incremental_ms),
        "full_rebuild_s": round(full, 3),
        "incremental_speedup": round(full * 1000 / incremental, 1) if incremental_ms else None,
    }
    segment.refresh_from_db()
    print(json.dumps(result, ensure_ascii=False), file=sys.stderr)  # the segment numbers survive a planner failure
    try:
        result.update(plan_through_outreach(workspace, segment, seed))
    except Exception as exc:  # noqa: BLE001 — the planner is another app's; report it, keep the segment numbers
        result["plan_status"] = f"failed: {type(exc).__name__}: {exc}"
    result.update({"python": platform.python_version(), "cpus": os.cpu_count()})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--samples", type=int, default=7, help="incremental updates to time (median)")
    parser.add_argument("--rebuilds", type=int, default=3, help="full rebuilds to time (median)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.contacts, args.events, args.samples, args.rebuilds, args.seed, args.database_url)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
