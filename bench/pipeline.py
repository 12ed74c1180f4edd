"""Group message pipeline benchmark: realistic group messages through the whole inbound
path on the default SQLite database.

    python -m bench.pipeline --messages 100000 --words 1000 --json

A fresh SIYU_HOME (temporary), migrated; one workspace, a sandbox account, 20 groups of
200 members, a 1,000-word competitor/sensitive list. Messages (ordinary chat from the
moderation test corpus, ~3% adverts and evasions) go in through ``do_receive`` in
batches (one transaction stores a batch, deduplicated by key), and every stored event is
then processed by the real processor (``siyu.channels.inbox.process``: lock, handler →
group message + timeline → moderation → outbox/staff task, mark processed), one
transaction per event, as the worker does. ``p99_ms`` is the per-message processing
latency. ``naive_msgs_per_s`` checks the same word list against the same messages with a
substring test per word per message (how several open-source SCRMs match keywords);
``ac_msgs_per_s`` is siyu's detector stage (normalisation + Aho-Corasick + regex
detectors) on the same messages; ``ratio_vs_naive`` = ac / naive.
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
BATCH = 500


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


def _words(n: int, rng: random.Random) -> list[str]:
    syllables = "品牌优选严选商城特卖折扣直供批发工厂旗舰代购海淘返利团购秒杀爆款精品小铺"
    out = {"竞品宝", "刷单", "兼职日结"}
    while len(out) < n:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(out)[:n]


def _messages(n: int, rng: random.Random) -> list[str]:
    chat = [line for line in (DATA / "normal_chat.txt").read_text("utf-8").splitlines() if line.strip()]
    ads = [line.split("\t", 1)[1] for line in (DATA / "ads.txt").read_text("utf-8").splitlines() if "\t" in line]
    return [rng.choice(ads) if rng.random() < 0.03 else rng.choice(chat) for _ in range(n)]


def run(messages: int, words: int) -> dict[str, Any]:
    import datetime as dt

    from django.db import connection
    from django.utils import timezone

    import siyu.channels.inbox as inbox
    from siyu.accounts.actions import do_create_workspace
    from siyu.channels.actions import do_create_channel_account
    from siyu.channels.base import InboundEvent, InboundKind
    from siyu.communities.actions import do_create_group
    from siyu.moderation.actions import do_save_word_list
    from siyu.moderation.detectors import detect
    from siyu.moderation.engine import load
    from siyu.moderation.models import ModerationCase

    rng = random.Random(42)
    ws = do_create_workspace(slug="bench", name="Bench")
    account = do_create_channel_account(ws, None, kind="sandbox", name="bench")
    groups = [do_create_group(ws, None, name=f"福利{i}群", channel_account=account, external_id=f"room{i}") for i in range(20)]
    word_list = _words(words, rng)
    do_save_word_list(ws, None, name="竞品", words=word_list, kind="competitor")
    texts = _messages(messages, rng)

    # side by side: naive substring matching vs siyu's detector stage, same messages
    started = time.perf_counter()
    naive_hits = sum(1 for text in texts if any(w in text for w in word_list))
    naive_seconds = time.perf_counter() - started
    config = load(ws.pk, None).detectors
    started = time.perf_counter()
    ac_hits = sum(1 for text in texts if detect(text, config))
    ac_seconds = time.perf_counter() - started
    from siyu.moderation.normalise import normalise, squeeze

    started = time.perf_counter()
    for text in texts:
        config.words.find(squeeze(normalise(text)))
    words_seconds = time.perf_counter() - started

    base = timezone.now() - dt.timedelta(days=1)
    latencies: list[float] = []
    started = time.perf_counter()
    for offset in range(0, messages, BATCH):
        events = []
        for i in range(offset, min(offset + BATCH, messages)):
            group = groups[i % len(groups)]
            member = f"m{rng.randrange(200)}-{i % len(groups)}"
            events.append(InboundEvent(InboundKind.MESSAGE, f"msg-{i}", base + dt.timedelta(milliseconds=i * 50), {
                "group_id": group.external_id, "sender_id": member, "sender_name": member, "message_id": f"msg-{i}",
                "text": texts[i], "msgtype": "text",
            }))
        stored = inbox.do_receive(account, events)
        for row, created in stored:
            if not created:
                continue
            t0 = time.perf_counter()
            inbox.process(row.pk)
            latencies.append((time.perf_counter() - t0) * 1000)
    seconds = time.perf_counter() - started
    latencies.sort()
    cases = ModerationCase.objects.filter(workspace=ws).count()
    return {
        "messages": messages,
        "words": len(word_list),
        "seconds": round(seconds, 3),
        "msgs_per_s": round(messages / seconds, 1),
        "p50_ms": round(latencies[len(latencies) // 2], 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 3),
        "cases": cases,
        "naive_msgs_per_s": round(messages / naive_seconds, 1),
        "naive_hits": naive_hits,
        "ac_msgs_per_s": round(messages / ac_seconds, 1),
        "ac_flagged": ac_hits,
        "ratio_vs_naive": round(naive_seconds / ac_seconds, 2),
        "ac_words_only_msgs_per_s": round(messages / words_seconds, 1),
        "words_only_ratio_vs_naive": round(naive_seconds / words_seconds, 2),
        "database": connection.vendor,
        "batch": BATCH,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--words", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="siyu-bench-") as home:
        _setup(home)
        result = run(args.messages, args.words)
    print(json.dumps(result, ensure_ascii=False) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
