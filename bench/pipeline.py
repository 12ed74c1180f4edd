"""Group message pipeline benchmark: realistic group messages through the whole inbound
path on the default SQLite database.

    python -m bench.pipeline --messages 100000 --words 1000 --json [--serial [--profile FILE]]

A fresh SIYU_HOME (temporary), migrated; one workspace, a sandbox account, 20 groups of
200 members (contacts, identities and memberships bulk-inserted: the join path is not
what is measured), a 1,000-word competitor list, two keyword auto-replies. Messages are
ordinary chat from the moderation test corpus with ~3% adverts and evasions from the ads
corpus (``--ad-share``), each posted by an advertiser account that joined for it (one
advert per account: a removed advertiser does not chat on).

What each number means:

- ``msgs_per_s`` / ``seconds``: the measured loop, end to end — per delivery of
  ``batch`` messages: ``do_receive`` (inbox rows, dedupe by key, one worker task
  scheduled after commit), a redelivery of ``DUPLICATES`` of them (stored once), then
  ``process_batch`` (the rows read and their texts examined, then one transaction:
  policy verdicts — warn/delete/remove applied in bulk with cases, strikes, outbox
  commands, closed memberships —, auto-reply decisions, group messages, timeline events,
  activity counters, rows marked processed, commit).
- ``mode``: ``pipelined`` (the default) is the deployment's shape on the two cores: this
  process receives (the web process's part) and hands each delivery's new inbox ids to a
  worker process — what the on-commit hook hands Huey; a queue between the two processes
  stands in for Huey's, whose own cost, one dequeue per batch, is not measured — whose
  ``worker_threads`` threads (``--threads``; by default the Huey consumer's) run the
  worker task's body, ``process_batch(ids, fill=BATCH_SIZE)``. Receiving and processing
  overlap; on SQLite their transactions take turns (``siyu/core/sqlite/base.py``).
  ``serial`` (``--serial``): this one process receives a delivery, then processes it,
  then the next — the measurement of earlier versions.
- ``receive_seconds``: time spent in ``do_receive`` (pipelined: including its waits for
  the write turn); ``process_seconds``: serial — time spent processing; pipelined — from
  the worker's first batch's start to its last batch's end.
- ``receiver_cpu_seconds`` / ``worker_cpu_seconds`` (pipelined): the processor time each
  process used in the measured loop (the worker's: all its threads, from their start to
  their end). A worker near ``seconds`` is using one core to the full — its threads share
  one interpreter, so the worker, not the machine, sets the pace.
- ``p50_ms``/``p99_ms``: per message, from the batch's start (its read of its inbox rows)
  to its verdict and auto-reply decision (the commit follows at the batch end).
- ``per_event_fallbacks``: messages the batch handed to the per-event handler (should be
  0 here); ``per_event_path_msgs_per_s``: the old one-transaction-per-message path on a
  ``PER_EVENT_SAMPLE`` sample, for comparison.
- ``naive_msgs_per_s``: the same 1,000 words checked the way several open-source SCRMs
  do — a Python substring test per word per message on the raw text.
- ``words_msgs_per_s``: siyu's word matching on the same messages, like for like:
  normalisation against evasion (NFKC, case, traditional → simplified, separators
  removed) + one Aho-Corasick scan (``WordMatcher.find_text``), no caching.
- ``ratio_vs_naive`` = naive seconds / words seconds (the target is ≥ 20×).
- ``detectors_msgs_per_s`` / ``detectors_ratio_vs_naive``: the full detector stage
  (``detect``: word lists plus the phone, WeChat/QQ id, URL/short link, spelled URL,
  red-packet and flood detectors) on the same messages, no caching — more work than the
  naive matcher does, shown for honesty. Inside the pipeline, detector results are also
  cached per text within a batch (repeated texts are examined once).
- the three matchers run ``ROUNDS`` alternating rounds; each reports its best round
  (the machine is shared; a burst of load must not land on one side only).
- ``batch``: messages per delivery and per ``process_batch`` (``--batch``; by default the
  worker's own :data:`siyu.channels.inbox.BATCH_SIZE`).
- with ``--probe-writes``: a second process saves a group's settings (a console edit,
  ``do_set_group_settings``) every 100 ms while the loop runs; ``probe_write_p50_ms`` /
  ``probe_write_p99_ms`` / ``probe_write_max_ms`` are how long those saves took — on
  SQLite, mostly the wait for its turn at the one write lock.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "siyu" / "moderation" / "tests" / "data"
PROBE_EVERY = 0.1  # seconds between the probe's console writes
MEMBERS = 200
PER_EVENT_SAMPLE = 2000
ROUNDS = 3
AD_SHARE = 0.03  # adverts and evasions among the messages (realistic for an open customer group)
DUPLICATES = 25  # redelivered events per batch (dedupe is part of the path)
WORKER_THREADS = 2  # the Huey consumer's default (SIYU_WORKERS)


def _setup(home: str) -> None:
    os.environ["SIYU_HOME"] = home
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # processing is driven below, not by Huey: the on-commit scheduling is a no-op queue
    os.environ.pop("SIYU_HUEY_IMMEDIATE", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _bulk_members(ws: Any, account: Any, groups: list[Any], joined_at: Any, advertisers: int) -> None:
    """The groups' members, as a live workspace has them before the measured traffic:
    ``MEMBERS`` chatting members and ``advertisers`` advertiser accounts per group (an
    advert comes from an account that joined to post it, once), as contacts, sandbox
    identities and open memberships, bulk-inserted (the join path itself is not what
    this benchmark measures)."""
    from siyu.communities.models import Membership
    from siyu.contacts.models import ChannelIdentity, Contact

    contacts = [
        Contact(workspace=ws, name=name, source_channel="bench", created_at=joined_at, updated_at=joined_at)
        for g in range(len(groups)) for name in [*(f"m{m}-{g}" for m in range(MEMBERS)), *(f"ad{k}-{g}" for k in range(advertisers))]
    ]
    Contact.objects.bulk_create(contacts, batch_size=500)
    ChannelIdentity.objects.bulk_create(
        [ChannelIdentity(workspace=ws, contact=c, account=account, external_id=c.name) for c in contacts], batch_size=500,
    )
    Membership.objects.bulk_create(
        [Membership(workspace=ws, group=groups[i // (MEMBERS + advertisers)], contact=c, join_source="bench", joined_at=joined_at)
         for i, c in enumerate(contacts)],
        batch_size=500,
    )


def _words(n: int, rng: random.Random) -> list[str]:
    syllables = "品牌优选严选商城特卖折扣直供批发工厂旗舰代购海淘返利团购秒杀爆款精品小铺"
    out = {"竞品宝", "刷单", "兼职日结"}
    while len(out) < n:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(out)[:n]


def _messages(n: int, rng: random.Random, ad_share: float) -> list[tuple[str, bool]]:
    chat = [line for line in (DATA / "normal_chat.txt").read_text("utf-8").splitlines() if line.strip()]
    ads = [line.split("\t", 1)[1] for line in (DATA / "ads.txt").read_text("utf-8").splitlines() if "\t" in line]
    return [(rng.choice(ads), True) if rng.random() < ad_share else (rng.choice(chat), False) for _ in range(n)]


def _probe(home: str, group_id: int, stop: str) -> None:
    """The ``--probe-writes`` process: once Django is up it touches ``<stop>.ready``, then
    makes a console edit every ``PROBE_EVERY`` seconds until the ``stop`` file appears (at
    least one); prints the milliseconds each took, as JSON."""
    os.environ["SIYU_HOME"] = home
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from siyu.communities.actions import do_set_group_settings
    from siyu.communities.models import Group

    group = Group.objects.get(pk=group_id)
    Path(stop + ".ready").touch()
    took: list[float] = []
    while not took or not os.path.exists(stop):
        started = time.perf_counter()
        do_set_group_settings(group, None, {"rules_link": f"https://example.com/rules/{len(took)}"})
        took.append((time.perf_counter() - started) * 1000)
        time.sleep(PROBE_EVERY)
    print(json.dumps(took))


def _worker(tasks: Any, results: Any, threads: int) -> None:
    """The worker process (forked): ``threads`` threads take task after task — the new
    inbox ids of one delivery, as the on-commit hook hands them to Huey — and run the
    worker task's body (:func:`siyu.channels.inbox.process_batch` with ``fill``) until
    each has taken a ``None``. Sends back the latencies, the per-event fallbacks and the
    time from the first batch's start to the last one's end."""
    import threading

    from django.db import connections

    import siyu.channels.inbox as inbox

    latencies: list[float] = []
    totals: dict[str, Any] = {"fallback": 0, "first": None, "last": None}
    lock = threading.Lock()

    def loop() -> None:
        mine: list[float] = []
        fallback, first, last = 0, None, None
        try:
            while (ids := tasks.get()) is not None:
                started = time.perf_counter()
                fallback += inbox.process_batch(ids, fill=inbox.BATCH_SIZE, latencies=mine)["fallback"]
                first, last = first or started, time.perf_counter()
        finally:
            connections.close_all()
            with lock:
                latencies.extend(mine)
                totals["fallback"] += fallback
                if first is not None:
                    totals["first"] = min(totals["first"] or first, first)
                    totals["last"] = max(totals["last"] or last, last)

    running = [threading.Thread(target=loop, name=f"worker-{n}") for n in range(threads)]
    cpu = time.process_time()
    for thread in running:
        thread.start()
    results.put("ready")
    for thread in running:
        thread.join()
    results.put({"latencies": latencies, "fallback": totals["fallback"], "cpu": time.process_time() - cpu,
                 "busy": (totals["last"] - totals["first"]) if totals["first"] is not None else 0.0})


def run(messages: int, words: int, ad_share: float = AD_SHARE, profile: str = "", batch_size: int = 0,
        probe_writes: bool = False, serial: bool = False, threads: int = 0) -> dict[str, Any]:
    import datetime as dt

    from django.conf import settings
    from django.db import connection, connections
    from django.db.models import Sum
    from django.utils import timezone

    import siyu.channels.inbox as inbox
    from siyu.accounts.actions import do_create_workspace
    from siyu.channels.actions import do_create_channel_account
    from siyu.channels.base import InboundEvent, InboundKind
    from siyu.channels.models import InboxEvent, OutboxMessage
    from siyu.communities.actions import do_create_auto_reply, do_create_group
    from siyu.communities.models import GroupMessage, MemberDayActivity
    from siyu.moderation.actions import do_save_word_list
    from siyu.moderation.detectors import detect
    from siyu.moderation.engine import load
    from siyu.moderation.models import ModerationCase

    size = batch_size or inbox.BATCH_SIZE
    inbox.BATCH_SIZE = size  # the worker's tasks fill up to it
    threads = threads or int(settings.HUEY.get("consumer", {}).get("workers", WORKER_THREADS))
    rng = random.Random(42)
    ws = do_create_workspace(slug="bench", name="Bench")
    account = do_create_channel_account(ws, None, kind="sandbox", name="bench")
    groups = [do_create_group(ws, None, name=f"福利{i}群", channel_account=account, external_id=f"room{i}") for i in range(20)]
    word_list = _words(words, rng)
    do_save_word_list(ws, None, name="竞品", words=word_list, kind="competitor")
    corpus = _messages(messages, rng, ad_share)
    texts = [text for text, _ad in corpus]

    # side by side, same messages, same 1,000 words: the naive matcher (a substring test
    # per word per message on the raw text) against siyu's word matching (normalisation
    # against evasion + one Aho-Corasick pass); no result caching on either side
    config = load(ws.pk, None).detectors
    matcher = config.words
    matcher.find_text("预热")  # one-time per process: the plain-character classes
    naive_seconds = words_seconds = detectors_seconds = float("inf")
    # alternating rounds, best of each: the machine is shared, so a burst of someone
    # else's load must not land on one side only
    for _round in range(ROUNDS):
        started = time.perf_counter()
        naive_hits = sum(1 for text in texts if any(w in text for w in word_list))
        naive_seconds = min(naive_seconds, time.perf_counter() - started)
        started = time.perf_counter()
        words_hits = sum(1 for text in texts if matcher.find_text(text))
        words_seconds = min(words_seconds, time.perf_counter() - started)
        started = time.perf_counter()
        detector_hits = sum(1 for text in texts if detect(text, config))
        detectors_seconds = min(detectors_seconds, time.perf_counter() - started)

    base = timezone.now() - dt.timedelta(days=1)
    setup_started = time.perf_counter()
    sample = min(messages, PER_EVENT_SAMPLE)
    ads_per_group = [0] * len(groups)
    for i in [*range(sample), *range(messages)]:
        ads_per_group[i % len(groups)] += corpus[i][1]
    _bulk_members(ws, account, groups, base - dt.timedelta(hours=1), max(ads_per_group))
    setup_seconds = time.perf_counter() - setup_started
    do_create_auto_reply(ws, None, name="价格", match="contains", pattern="多少钱", reply="价格请看群公告～", cooldown_seconds=300)
    do_create_auto_reply(ws, None, name="发货", match="regex", pattern=r"(什么时候|几号)发货", reply="下单后48小时内发货", cooldown_seconds=300)

    advertised = [0] * len(groups)

    def events(first: int, last: int, prefix: str) -> list[Any]:
        out = []
        for i in range(first, last):
            g = i % len(groups)
            if corpus[i][1]:  # each advert from its own advertiser account, removed (or warned) after it
                member = f"ad{advertised[g]}-{g}"
                advertised[g] += 1
            else:
                member = f"m{rng.randrange(MEMBERS)}-{g}"
            out.append(InboundEvent(InboundKind.MESSAGE, f"{prefix}-{i}", base + dt.timedelta(milliseconds=i * 50), {
                "group_id": groups[g].external_id, "sender_id": member, "sender_name": member, "message_id": f"{prefix}-{i}",
                "text": texts[i], "msgtype": "text",
            }))
        return out

    # the per-event path (one transaction per message, as before batching), on a sample
    naive_sample = sample
    started = time.perf_counter()
    for offset in range(0, naive_sample, size):
        for row, created in inbox.do_receive(account, events(offset, min(offset + size, naive_sample), "one")):
            if created:
                inbox.process(row.pk)
    per_event_seconds = time.perf_counter() - started

    latencies: list[float] = []
    fallback = 0
    cpu_seconds: dict[str, float] = {}
    probe = None
    if probe_writes:
        import subprocess

        stop = os.path.join(os.environ["SIYU_HOME"], "probe.stop")
        connection.close()  # the probe opens its own connection to the same file
        probe = subprocess.Popen(
            [sys.executable, "-c", f"import bench.pipeline as p; p._probe({os.environ['SIYU_HOME']!r}, {groups[0].pk}, {stop!r})"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        deadline = time.monotonic() + 120
        while not os.path.exists(stop + ".ready") and probe.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # its Django start-up is not measured
    receive_seconds = 0.0

    def deliver(offset: int) -> list[int]:
        """One delivery as the platform makes it, stored (with a redelivery of its first
        ``DUPLICATES``: the inbox stores each once); the new inbox ids."""
        nonlocal receive_seconds
        batch = events(offset, min(offset + size, messages), "msg")
        received = time.perf_counter()
        stored = inbox.do_receive(account, batch)
        inbox.do_receive(account, batch[: DUPLICATES])
        receive_seconds += time.perf_counter() - received
        return [row.pk for row, created in stored if created]

    if serial:
        profiler = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.perf_counter()
        for offset in range(0, messages, size):
            fallback += inbox.process_batch(deliver(offset), latencies=latencies)["fallback"]
        seconds = time.perf_counter() - started
        process_seconds = seconds - receive_seconds
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
    else:
        # the deployment's shape: this process is the web process storing callbacks, and a
        # worker process (the Huey consumer's, with its threads) processes the batches
        import multiprocessing

        context = multiprocessing.get_context("fork")
        tasks: Any = context.Queue()
        results: Any = context.Queue()
        connections.close_all()  # the child opens its own connections
        worker = context.Process(target=_worker, args=(tasks, results, threads))
        worker.start()
        if results.get(timeout=120) != "ready":
            raise RuntimeError("the bench's worker process did not start")
        started, cpu = time.perf_counter(), time.process_time()
        for offset in range(0, messages, size):
            tasks.put(deliver(offset))  # what the on-commit hook hands Huey
        receiver_cpu = time.process_time() - cpu
        for _thread in range(threads):
            tasks.put(None)
        done = results.get(timeout=3600)
        seconds = time.perf_counter() - started
        worker.join(timeout=60)
        latencies, fallback, process_seconds = done["latencies"], done["fallback"], done["busy"]
        cpu_seconds = {"receiver_cpu_seconds": round(receiver_cpu, 3), "worker_cpu_seconds": round(done["cpu"], 3)}
    probe_took: list[float] = []
    if probe is not None:
        Path(stop).touch()
        probe_took = sorted(json.loads(probe.communicate(timeout=60)[0]))
    latencies.sort()
    cases = ModerationCase.objects.filter(workspace=ws, message__external_id__startswith="msg-").count()
    stored_messages = GroupMessage.objects.filter(workspace=ws, external_id__startswith="msg-").count()
    pending = InboxEvent.objects.filter(workspace=ws, status="pending").count()
    replies = OutboxMessage.objects.filter(workspace=ws, idempotency_key__startswith="autoreply:").count()
    counted = MemberDayActivity.objects.filter(workspace=ws).aggregate(n=Sum("messages"))["n"] or 0
    return {
        "messages": messages,
        "words": len(word_list),
        "ad_share": ad_share,
        "seconds": round(seconds, 3),
        "msgs_per_s": round(messages / seconds, 1),
        "receive_seconds": round(receive_seconds, 3),
        "process_seconds": round(process_seconds, 3),
        "mode": "serial" if serial else "pipelined",
        "worker_threads": 0 if serial else threads,
        "p50_ms": round(latencies[len(latencies) // 2], 3),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)], 3),
        "p99_definition": "per message: from the batch's start (its read of its inbox rows) to the message's verdict + auto-reply decision "
                          "(messages handed to the per-event path are not in the sample); the commit follows at the batch end",
        "batch": size,
        "per_event_fallbacks": fallback,
        "stored_messages": stored_messages,
        "cases": cases,
        "auto_replies": replies,
        "activity_messages_counted": counted,
        "inbox_left_pending": pending,
        "per_event_path_msgs_per_s": round(naive_sample / per_event_seconds, 1),
        "per_event_path_sample": naive_sample,
        "naive_msgs_per_s": round(messages / naive_seconds, 1),
        "naive_hits": naive_hits,
        "words_msgs_per_s": round(messages / words_seconds, 1),
        "words_hits": words_hits,
        "ratio_vs_naive": round(naive_seconds / words_seconds, 2),
        "detectors_msgs_per_s": round(messages / detectors_seconds, 1),
        "detectors_flagged": detector_hits,
        "detectors_ratio_vs_naive": round(naive_seconds / detectors_seconds, 2),
        "setup_members": len(groups) * (MEMBERS + max(ads_per_group)),
        "setup_seconds": round(setup_seconds, 1),
        "database": connection.vendor,
        **cpu_seconds,
        **({
            "probe_writes": len(probe_took),
            "probe_write_p50_ms": round(probe_took[len(probe_took) // 2], 1),
            "probe_write_p99_ms": round(probe_took[max(0, int(len(probe_took) * 0.99) - 1)], 1),
            "probe_write_max_ms": round(probe_took[-1], 1),
        } if probe_took else {}),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--ad-share", type=float, default=AD_SHARE, help="share of adverts and evasions among the messages")
    parser.add_argument("--profile", default="", help="write a cProfile of the measured loop (receive + process) to this file")
    parser.add_argument("--batch", type=int, default=0, help="messages per delivery and per batch (default: the worker's batch size)")
    parser.add_argument("--probe-writes", action="store_true", help="measure a console edit every 100 ms from a second process")
    parser.add_argument("--serial", action="store_true",
                        help="receive and process in turns in this one process (the pre-pipelining measurement) instead of a worker process")
    parser.add_argument("--threads", type=int, default=0, help="worker threads (default: the Huey consumer's, SIYU_WORKERS or 2)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as home:
        _setup(home)
        if args.profile and not args.serial:
            parser.error("--profile needs --serial (the profile is of this process)")
        result = run(args.messages, args.words, args.ad_share, args.profile, args.batch, args.probe_writes, args.serial, args.threads)
    print(json.dumps(result, ensure_ascii=False) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
