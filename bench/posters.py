"""Poster benchmark: render N distinct fission posters (cache misses) in-process.

    python bench/posters.py --count 500 --json

Uses a fresh SIYU_HOME (SQLite), migrates, seeds one campaign with N participants, then
times ``render_poster`` for each (drawing + PNG encoding + writing under MEDIA_ROOT/posters)
and a second pass that must hit the cache. Prints posters, seconds, posters_per_s,
cached_per_s and the mean PNG size.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run(count: int = 500) -> dict[str, Any]:
    """Run the benchmark in this process and return its numbers."""
    os.environ["SIYU_HOME"] = tempfile.mkdtemp(prefix="siyu-bench-posters-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from siyu.accounts.actions import do_create_workspace
    from siyu.acquisition.actions import do_create_channel, do_create_live_code
    from siyu.campaigns.actions import do_create_campaign, do_join_campaign
    from siyu.campaigns.posters import render_poster
    from siyu.contacts.actions import do_create_contact

    ws = do_create_workspace(slug="poster-bench", name="poster bench")
    channel = do_create_channel(ws, None, key="fission", name="裂变", kind="fission")
    code = do_create_live_code(ws, None, channel=channel, name="裂变入口", kind="group")
    now = timezone.now()
    campaign = do_create_campaign(
        ws, None, key="bench", name="海报压测", kind="group", status="running", live_code=code, starts_at=now,
        ends_at=now + dt.timedelta(days=7), title="邀请3位好友 免费领新茶", benefits="明前龙井试饮装\n会员专享 9 折",
        endorsement="老字号茶庄 · 30 年", urgency="仅限前 500 名，周日截止",
    )
    participants = [do_join_campaign(campaign, do_create_contact(ws, None, name=f"分享者{i}"))[0] for i in range(count)]
    for p in participants:
        p.contact  # noqa: B018 - load outside the timed loop
    started = time.perf_counter()
    sizes = [render_poster(campaign, p, "https://siyu.example.com")[0].stat().st_size for p in participants]
    seconds = time.perf_counter() - started
    started = time.perf_counter()
    cached = sum(1 for p in participants if not render_poster(campaign, p, "https://siyu.example.com")[1])
    cached_seconds = time.perf_counter() - started
    return {
        "posters": count,
        "seconds": round(seconds, 3),
        "posters_per_s": round(count / seconds, 2),
        "cached": cached,
        "cached_per_s": round(count / cached_seconds, 1),
        "mean_png_kb": round(sum(sizes) / len(sizes) / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render fission posters")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    result = run(args.count)
    print(json.dumps(result) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
