"""The locale catalogue: loading with line numbers, lenient rendering, review state, coverage."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from citoyen.i18n import Catalog, LocaleError, parse_placeholders, render_template
from tests.engine.support import BROKEN, VALID


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load(VALID / "locales")


def test_languages_and_meta(catalog: Catalog) -> None:
    assert catalog.languages == ("bm", "fr")
    assert catalog.meta("bm").name == "Bamanankan"
    assert catalog.meta("bm").tts is None
    assert catalog.meta("fr").tts == "fr-FR"
    assert catalog.file("bm") == "locales/bm.yaml"


def test_lookup_and_lines(catalog: Catalog) -> None:
    assert catalog.has("demo.age", "fr")
    assert not catalog.has("demo.nope", "fr")
    assert catalog.keys("fr")[0] == "system.invalid_choice"
    assert catalog.line("system.invalid_choice", "fr") == 7
    assert catalog.line("demo.age", "bm") == 34
    with pytest.raises(KeyError):
        catalog.render("demo.nope", "fr", {})


def test_render_is_lenient(catalog: Catalog) -> None:
    assert catalog.render("system.invalid_number", "fr", {"min": 15, "max": 120}) == (
        "Un nombre entre 15 et 120, SVP."
    )
    assert catalog.render("system.invalid_number", "fr", {"min": 15}) == (
        "Un nombre entre 15 et {max}, SVP."
    )
    assert catalog.render("demo.done", "fr") == "Merci. Référence : {reference}."
    assert render_template("{a!r:>5} {{x}} {b:d}", {"a": "z", "b": "text"}) == "  'z' {x} text"
    assert render_template("broken {", {}) == "broken {"


def test_placeholders(catalog: Catalog) -> None:
    assert catalog.placeholders("demo.welcome", "bm") == {"police", "fire"}
    assert parse_placeholders("{0} and {a.b}")[1] == "placeholder {0} is not a simple name"
    assert parse_placeholders("oops }")[1] is not None


def test_review_state(catalog: Catalog) -> None:
    assert catalog.review_state("demo.age", "fr") == "reviewed"  # fr review_default
    assert catalog.review_state("demo.category.fire", "fr") == "needs-review"
    assert catalog.entry("demo.category.fire", "fr").note == "à vérifier"
    assert catalog.review_state("demo.age", "bm") == "needs-review"  # bm review_default


def test_audio_paths(catalog: Catalog) -> None:
    assert catalog.audio_path("system.goodbye", "bm") is not None
    assert catalog.audio_path("system.goodbye", "bm").suffix in (".wav", ".mp3")
    assert catalog.audio_path("demo.category", "bm").name.startswith("demo.category.")
    assert catalog.audio_path("demo.age", "bm") is None
    assert catalog.audio_path("demo.age", "fr") is None


def test_coverage(catalog: Catalog) -> None:
    rows = catalog.coverage()
    assert set(rows) == {"bm", "fr"}
    assert rows["fr"]["keys"] == rows["bm"]["keys"] == 32
    assert rows["fr"]["missing"] == 0
    assert rows["fr"]["needs_review"] == 1
    assert rows["bm"]["needs_review"] == 32
    assert rows["bm"]["audio"] == 27
    assert rows["fr"]["name"] == "Français"


def test_coverage_counts_missing_keys() -> None:
    catalog = Catalog.from_mapping({"fr": {"a": "A", "b": "B"}, "en": {"a": "A"}})
    rows = catalog.coverage()
    assert (rows["en"]["missing"], rows["en"]["missing_keys"]) == (1, ["b"])


def test_strict_load_raises_with_line(tmp_path: Path) -> None:
    with pytest.raises(LocaleError) as info:
        Catalog.load(BROKEN / "bad_locale" / "locales")
    assert "locales/fr.yaml:2: meta.language is 'en'" in str(info.value)
    lenient = Catalog.load(BROKEN / "bad_locale" / "locales", strict=False)
    assert lenient.has("demo.welcome", "fr")  # texts stay usable under the file's name


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        ("meta:\n  language: fr\n  name: F\ntexts:\n  a: 'x'\n  a: 'y'\n", 6, "duplicate key"),
        ("meta:\n  language: fr\n  name: F\ntexts:\n  a: [x\n", 6, "bad YAML"),
        ("meta:\n  language: fr\n  name: F\ntexts:\n  a: 17\n", 5, "must be a non-empty string"),
        (
            "meta:\n  language: fr\n  name: F\ntexts:\n  a: {text: x, reviw: ok}\n",
            5,
            "unknown field 'reviw'",
        ),
        (
            "meta:\n  language: fr\n  name: F\ntexts:\n  a: {text: x, review: maybe}\n",
            5,
            "review must be one of",
        ),
        ("meta:\n  language: fr\n  name: F\ntexts:\n  a: 'x {0}'\n", 5, "not a simple name"),
        (
            "meta:\n  language: fr\n  name: F\ntexts:\n  a: {text: 'x {n}', voice: 'y {m}'}\n",
            5,
            "the voice variant uses placeholders {m}, the text {n}",
        ),
        (
            "meta:\n  language: fr\n  name: F\ntexts:\n  a: {text: x, telegram: ''}\n",
            5,
            "telegram must be a non-empty string",
        ),
        (
            "meta:\n  language: fr\n  name: F\ntexts:\n  a: {text: x, written: 'y {'}\n",
            5,
            "text 'a', written: malformed placeholder",
        ),
        ("meta:\n  language: fr\n  nom: F\ntexts: {}\n", 3, "unknown field 'nom'"),
        ("meta:\n  language: fr\n  name: F\ntexts: {}\nextra: 1\n", 5, "unknown field 'extra'"),
    ],
)
def test_locale_file_issues(tmp_path: Path, content: str, line: int, words: str) -> None:
    (tmp_path / "fr.yaml").write_text(content, encoding="utf-8")
    catalog = Catalog.load(tmp_path, strict=False)
    assert any(i.line == line and words in i.message for i in catalog.issues), catalog.issues


def test_from_mapping(variant: Callable[..., Path]) -> None:
    catalog = Catalog.from_mapping({"fr": {"k": "Bonjour {name}"}})
    assert catalog.render("k", "fr", {"name": "Awa"}) == "Bonjour Awa"
    assert catalog.languages == ("fr",)


def test_channel_variants(tmp_path: Path) -> None:
    """``voice`` is said on calls, ``written`` read on SMS/WhatsApp/Telegram, a channel's own
    variant wins over ``written``, and ``text`` is the rest."""
    (tmp_path / "fr.yaml").write_text(
        "meta:\n  language: fr\n  name: F\ntexts:\n"
        "  ask:\n    text: 'Dites {n}'\n    voice: 'Tapez {n}'\n    written: 'Envoyez {n}'\n"
        "    telegram: 'Touchez {n}'\n"
        "  plain: 'Bonjour'\n",
        encoding="utf-8",
    )
    catalog = Catalog.load(tmp_path)
    rendered = {
        channel: catalog.render("ask", "fr", {"n": 3}, channel)
        for channel in (None, "voice", "sms", "whatsapp", "telegram")
    }
    assert rendered == {
        None: "Dites 3",
        "voice": "Tapez 3",
        "sms": "Envoyez 3",
        "whatsapp": "Envoyez 3",
        "telegram": "Touchez 3",
    }
    assert catalog.render("plain", "fr", {}, "voice") == "Bonjour"
    assert catalog.placeholders("ask", "fr") == {"n"}
