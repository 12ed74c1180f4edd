"""pytest plugin (loaded with ``-p`` before pytest-django configures Django): tests keep
SIYU_HOME in a temporary directory (removed when the test process exits) and run Huey
in immediate mode unless a test starts a real consumer."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "SIYU_HOME" not in os.environ:
    _home = tempfile.mkdtemp(prefix="siyu-test-")
    os.environ["SIYU_HOME"] = _home
    atexit.register(shutil.rmtree, _home, ignore_errors=True)
os.environ.setdefault("SIYU_HUEY_IMMEDIATE", "1")
os.environ.setdefault("SIYU_TESTING", "1")
