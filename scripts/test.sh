#!/usr/bin/env bash
# The whole suite as CI runs it (`make test`, after scripts/bootstrap.sh all):
#   1. every test on SQLite, browser tests included;
#   2. every test except the browser ones again on PostgreSQL, so each database test
#      module is proven on both engines (tests/postgres/test_engine.py asserts which
#      engine answered).
# Redis is up and REDIS_URL set for both runs, so the real-queue tests never skip here.
#
#   scripts/test.sh [all|sqlite|postgres] [extra pytest arguments...]
#
# Environment: SIYU_TEST_WORKERS (pytest-xdist workers, default 2).
set -euo pipefail

cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in
  all | sqlite | postgres) shift || true ;;
  -*) what=all ;;
  *) echo "usage: $0 [all|sqlite|postgres] [pytest args...]" >&2; exit 2 ;;
esac

STATE=.ci-state
mkdir -p "$STATE"
# Two `make test` in one checkout would share the servers and the test database names.
exec 9>"$STATE/test.lock"
flock -w 1800 9 || { echo "test: another make test in this checkout holds $STATE/test.lock" >&2; exit 1; }

# 9>&-: the servers must not inherit the lock, or a killed run would leave it held.
if scripts/services.sh status 9>&-; then
  echo "test: using the PostgreSQL and Redis already running for this checkout"
else
  scripts/services.sh start 9>&-
  trap 'scripts/services.sh stop' EXIT
fi
eval "$(scripts/services.sh env)"
PG_URL=$DATABASE_URL
unset DATABASE_URL
export REDIS_URL

# Ctrl-C ends the whole run (through the EXIT trap), not just the pytest phase in progress.
trap 'echo "test: interrupted" >&2; exit 130' INT TERM

PYTEST=(.venv/bin/pytest -q -n "${SIYU_TEST_WORKERS:-2}" -p no:cacheprovider --durations=10)
failed=0
timings=()
rm -f "$STATE"/junit-*.xml

run_phase() {
  local name=$1 start=$SECONDS status=0
  shift
  echo
  echo "== $name: $*"
  "$@" || status=$?
  timings+=("$name $((SECONDS - start))s (exit $status)")
  # pytest exits 5 when it collected nothing: that is a failure here, never a pass.
  [ "$status" -eq 0 ] || failed=1
}

if [ "$what" != postgres ]; then
  run_phase sqlite "${PYTEST[@]}" --junitxml="$STATE/junit-sqlite.xml" "$@"
fi
if [ "$what" != sqlite ]; then
  run_phase postgres env DATABASE_URL="$PG_URL" "${PYTEST[@]}" -m "not browser" --junitxml="$STATE/junit-postgres.xml" "$@"
fi

# Stop the servers before the summary so the totals are the last line CI reads.
if trap -p EXIT | grep -q services; then
  scripts/services.sh stop
  trap - EXIT
fi

echo
for t in "${timings[@]}"; do echo "test: phase $t"; done
.venv/bin/python - "$STATE" <<'PY'
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

passed = failed = skipped = 0
for name in ("sqlite", "postgres"):
    path = Path(sys.argv[1]) / f"junit-{name}.xml"
    if not path.exists():
        continue
    for suite in ET.parse(path).getroot().iter("testsuite"):
        total, skip = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
        bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        passed, failed, skipped = passed + total - skip - bad, failed + bad, skipped + skip
print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
PY
exit "$failed"
