"""pytest plugin (loaded with ``-p`` before pytest-django configures Django): tests keep
SIYU_HOME in a temporary directory and run Huey in immediate mode unless a test starts
a real consumer."""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("SIYU_HOME", tempfile.mkdtemp(prefix="siyu-test-"))
os.environ.setdefault("SIYU_HUEY_IMMEDIATE", "1")
os.environ.setdefault("SIYU_TESTING", "1")
