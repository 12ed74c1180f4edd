"""Test set-up shared by every test module.

Tests run Huey in immediate mode (tasks execute in-process at enqueue time) unless a
test starts a real consumer, and keep SIYU_HOME in a temporary directory.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SIYU_HOME", tempfile.mkdtemp(prefix="siyu-test-"))
os.environ.setdefault("SIYU_HUEY_IMMEDIATE", "1")
