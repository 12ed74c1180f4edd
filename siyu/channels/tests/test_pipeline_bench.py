"""The pipeline benchmark (``siyu bench pipeline``) runs end to end on a small load and
its counts add up. Not a speed test: speed is only ever read from the bench's own JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _bench(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIYU_", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"))}
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "bench.pipeline", "--messages", "600", "--words", "50", "--batch", "200", *args, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["pipelined", "serial"])
def test_the_pipeline_bench_processes_every_message_once_and_probes_console_writes(tmp_path, mode):
    result = _bench(tmp_path, "--probe-writes", *(["--serial"] if mode == "serial" else ["--threads", "2"]))

    assert result["mode"] == mode
    assert result["worker_threads"] == (2 if mode == "pipelined" else 0)
    if mode == "pipelined":  # each process's processor time in the loop: some, and no more than two cores' worth
        assert 0 < result["worker_cpu_seconds"] <= 2 * result["seconds"] + 0.5
        assert 0 < result["receiver_cpu_seconds"] <= result["seconds"] + 0.5
    else:
        assert "worker_cpu_seconds" not in result
    assert result["database"] == "sqlite"
    assert result["batch"] == 200
    assert result["stored_messages"] == 600  # each once, although 25 per batch were delivered twice
    assert result["inbox_left_pending"] == 0
    assert result["per_event_fallbacks"] == 0
    assert result["naive_hits"] == result["words_hits"]  # same words, same messages, same answer
    assert result["cases"] == result["detectors_flagged"] > 0
    assert result["probe_writes"] >= 1 and result["probe_write_max_ms"] >= result["probe_write_p50_ms"] > 0
