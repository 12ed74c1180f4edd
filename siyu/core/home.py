"""Where siyu keeps its data (``SIYU_HOME``) and the keys it generates on first start."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def siyu_home() -> Path:
    home = Path(os.environ.get("SIYU_HOME", "./var")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def load_or_create_key(name: str, nbytes: int) -> str:
    """Return the key stored in ``SIYU_HOME/keys/<name>``, creating it (mode 0600) once."""
    keys = siyu_home() / "keys"
    keys.mkdir(mode=0o700, exist_ok=True)
    path = keys / name
    if not path.exists():
        value = secrets.token_urlsafe(nbytes)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value)
        return value
    return path.read_text().strip()
