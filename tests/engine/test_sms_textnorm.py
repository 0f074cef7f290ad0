"""SMS segment counting and the text normalisation used for keywords and menu answers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from citoyen.engine import sms, textnorm


@pytest.mark.parametrize(
    ("text", "encoding", "count"),
    [
        ("", "GSM-7", 0),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("€" * 80, "GSM-7", 1),  # extension characters count double
        ("€" * 81, "GSM-7", 2),
        ("é è ù ì ò Ç à", "GSM-7", 1),
        ("ç" * 70, "UCS-2", 1),  # lowercase ç is not in GSM-7
        ("ê" + "a" * 69, "UCS-2", 1),
        ("ô" + "a" * 70, "UCS-2", 2),
        ("ɛ" * 134, "UCS-2", 2),
        ("ɛ" * 135, "UCS-2", 3),
        ("🙂" * 35, "UCS-2", 1),  # outside the BMP: two UTF-16 code units each
        ("🙂" * 36, "UCS-2", 2),
    ],
)
def test_segments(text: str, encoding: str, count: int) -> None:
    assert sms.encoding(text) == encoding
    assert sms.segments(text) == count


def test_escape_pairs_are_not_split_across_parts() -> None:
    # 152 septets then a 2-septet character: it moves to the second part.
    assert sms.segments("a" * 152 + "€" + "a" * 152) == 3
    assert sms.length("a€") == 3


def test_render_menu() -> None:
    assert (
        sms.render_menu("Quel problème ?", ["Vol", "Autre"]) == "Quel problème ?\n1. Vol\n2. Autre"
    )
    assert sms.render_menu(None, ["Oui"]) == "1. Oui"


@given(st.text(max_size=500))
def test_segments_never_fail(text: str) -> None:
    count = sms.segments(text)
    assert count >= (1 if text else 0)
    assert count <= max(1, len(text))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("DEME", "DƐMƐ"),
        ("DÈMÈ", "DƐMƐ"),
        ("dèmè", "Dɛmɛ"),
        ("ARRÊT", "arret"),
        ("  a   dabila ", "A DABILA"),
        ("DÉMARRER", "demarrer"),
        ("nyininkali", "ƝININKALI"),
        ("ɲɔgɔn", "nyogon"),
        ("ŋana", "NGANA"),
        ("e\u0301cole", "école"),  # decomposed accent
        ("Straße", "STRASSE"),
    ],
)
def test_same(a: str, b: str) -> None:
    assert textnorm.same(a, b)


@pytest.mark.parametrize(("a", "b"), [("STOP", "STOPS"), ("A DABILA", "ADABILA"), ("1", "l")])
def test_not_same(a: str, b: str) -> None:
    assert not textnorm.same(a, b)


def test_standardise_maps_old_bambara_spelling() -> None:
    assert textnorm.standardise("  Nyè  Dò ") == "ɲɛ dɔ"
    assert textnorm.standardise("ÉTÉ") == "ete"


def test_accents_of_other_scripts_are_kept() -> None:
    nko = "ߒߞߏ߫"  # N'Ko with a tone mark
    assert textnorm.normalise(nko) == nko
    arabic = "مَرحبا"
    assert textnorm.normalise(arabic) == arabic


def test_find_keyword() -> None:
    keywords = {"stop": ("STOP", "A DABILA"), "help": ("AIDE", "DƐMƐ")}
    assert textnorm.find_keyword(" a dabila", keywords) == "stop"
    assert textnorm.find_keyword("deme", keywords) == "help"
    assert textnorm.find_keyword("stop please", keywords) is None
    assert textnorm.find_keyword("   ", keywords) is None


@given(st.text(max_size=200))
def test_normalise_is_idempotent(text: str) -> None:
    once = textnorm.normalise(text)
    assert textnorm.normalise(once) == once
