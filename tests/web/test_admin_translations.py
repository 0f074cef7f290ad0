"""The admin speaks French by default: every staff-facing string has a French translation, and
the compiled catalogue the app loads matches its source (``make translations`` rebuilds both)."""

from __future__ import annotations

import gettext
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "citoyen" / "web"
PO = WEB / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
MO = PO.with_suffix(".mo")
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "_l": None}


def _msgids() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB), method_map=method_map, keywords=KEYWORDS
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _po():
    with PO.open("rb") as handle:
        return read_po(handle, locale="fr")


def test_every_admin_string_has_a_french_translation() -> None:
    catalog = _po()
    missing = sorted(
        m
        for m in _msgids()
        if not (catalog.get(m) and catalog.get(m).string and not catalog.get(m).fuzzy)
    )
    assert not missing, f"untranslated (run `make translations`, then translate): {missing}"


def test_compiled_catalogue_matches_its_source() -> None:
    catalog = _po()
    with MO.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    for message in catalog:
        if message.id and isinstance(message.id, str) and message.string and not message.fuzzy:
            assert compiled.gettext(message.id) == message.string, (
                f"{MO.name} is stale for {message.id!r}: run `make translations`"
            )
