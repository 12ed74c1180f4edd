"""The Chinese catalogue is complete and compiled: every string of the .po has a
translation, none is fuzzy, and the .mo that Django loads says the same as the .po."""

from __future__ import annotations

import gettext
import json
from pathlib import Path

from django.conf import settings

LOCALE = Path(settings.BASE_DIR) / "siyu" / "locale" / "zh_Hans" / "LC_MESSAGES"


def read_po(path: Path) -> tuple[dict[tuple[str | None, str], list[str]], list[str]]:
    """``{(context, msgid): [msgstr, ...]}`` and the msgids marked fuzzy."""
    entries: dict[tuple[str | None, str], list[str]] = {}
    fuzzy: list[str] = []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        fields: dict[str, str] = {}
        current = ""
        is_fuzzy = False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                is_fuzzy = True
            elif line.startswith("#"):
                continue
            elif line.startswith('"'):
                fields[current] += json.loads(line)
            else:
                current, _, value = line.partition(" ")
                fields[current] = json.loads(value)
        msgid = fields.get("msgid", "")
        if not msgid:
            continue  # the header
        if is_fuzzy:
            fuzzy.append(msgid)
        translations = [v for k, v in sorted(fields.items()) if k.startswith("msgstr")]
        entries[(fields.get("msgctxt"), msgid)] = translations
    return entries, fuzzy


def test_every_string_is_translated_and_none_is_fuzzy():
    entries, fuzzy = read_po(LOCALE / "django.po")

    untranslated = [msgid for msgid, translations in entries.items() if not all(translations)]
    assert len(entries) > 200
    assert untranslated == []
    assert fuzzy == []


def test_compiled_catalogue_matches_the_po_file():
    entries, _ = read_po(LOCALE / "django.po")
    with (LOCALE / "django.mo").open("rb") as fh:
        catalogue = gettext.GNUTranslations(fh)

    stale = []
    for (context, msgid), translations in entries.items():
        compiled = catalogue.pgettext(context, msgid) if context else catalogue.gettext(msgid)
        if compiled != translations[0]:
            stale.append(msgid)
    assert stale == []
