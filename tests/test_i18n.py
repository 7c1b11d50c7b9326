"""Translations: every Korean string is translated, and the committed .mo matches its .po."""

import ast
import gettext
import shutil
from pathlib import Path

import pytest
from django.core.management import call_command

LOCALE = Path(__file__).resolve().parent.parent / "locale"


def read_po(path: Path) -> dict[tuple[str | None, str, str | None], tuple[list[str], bool]]:
    """A small .po reader: {(msgctxt, msgid, msgid_plural): ([msgstr...], fuzzy)} without the header."""
    entries: dict = {}
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        fuzzy = False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"') and key:
                fields[key] += ast.literal_eval(line)
            else:
                key, _, value = line.partition(" ")
                fields[key] = ast.literal_eval(value)
        if fields.get("msgid"):
            strs = [v for k, v in sorted(fields.items()) if k.startswith("msgstr")]
            entries[(fields.get("msgctxt"), fields["msgid"], fields.get("msgid_plural"))] = (strs, fuzzy)
    return entries


def test_every_korean_string_is_translated():
    entries = read_po(LOCALE / "ko" / "LC_MESSAGES" / "django.po")
    assert len(entries) > 100  # the reader found the catalog
    missing = [msgid for (_, msgid, _), (strs, fuzzy) in entries.items() if fuzzy or not all(strs)]
    assert missing == []


@pytest.mark.parametrize("language", ["ko"])
def test_committed_mo_matches_po(language):
    directory = LOCALE / language / "LC_MESSAGES"
    with (directory / "django.mo").open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    for (context, msgid, plural), (strs, fuzzy) in read_po(directory / "django.po").items():
        if fuzzy or not all(strs):
            continue
        if context is not None:
            assert catalog.pgettext(context, msgid) == strs[0], f"stale .mo for {msgid!r}: run compilemessages"
        elif plural is None:
            assert catalog.gettext(msgid) == strs[0], f"stale .mo for {msgid!r}: run compilemessages"
        else:
            assert catalog.ngettext(msgid, plural, 2) == strs[0], f"stale .mo for {msgid!r}: run compilemessages"


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="GNU gettext is not installed")
def test_every_string_in_the_code_is_in_the_korean_catalog(tmp_path, monkeypatch, settings):
    """makemessages over a copy of today's code and catalog: no string missing, none fuzzy.

    Why: a message added or reworded in the code falls back to English in the Korean UI, silently.
    The copy keeps makemessages from writing to the real catalog.
    """
    root = LOCALE.parent
    for name in (
        "locale",
        "templates",
        "tasks",
        "notifications",
        "preferences",
        "reservemail",
        "subscriptions",
        "series",
    ):
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    monkeypatch.chdir(tmp_path)
    call_command("makemessages", locale=["ko"], verbosity=0)
    entries = read_po(tmp_path / "locale" / "ko" / "LC_MESSAGES" / "django.po")
    missing = [msgid for (_, msgid, _), (strs, fuzzy) in entries.items() if fuzzy or not all(strs)]
    assert missing == [], "new or changed strings: run makemessages -l ko, translate them, compilemessages"
