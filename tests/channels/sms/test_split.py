"""Long SMS texts are cut into messages of at most three segments, between words."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from citoyen.channels.sms import MAX_SEGMENTS, split_sms
from citoyen.engine.sms import segments


def test_short_text_is_one_message() -> None:
    assert split_sms("  Bonjour.\n1. Oui  ") == ["Bonjour.\n1. Oui"]
    assert split_sms("") == []
    assert split_sms(" \n ") == []


def test_three_gsm_segments_fit_in_one_message() -> None:
    text = ("a" * 9 + " ") * 45 + "b" * 8  # 458 GSM-7 characters: three segments
    assert segments(text) == 3
    assert split_sms(text) == [text]


def test_cuts_between_lines_before_cutting_inside_one() -> None:
    lines = [f"{n}. " + "choix " * 20 for n in range(1, 9)]  # ~130 characters each
    text = "\n".join(line.strip() for line in lines)
    parts = split_sms(text)
    assert len(parts) > 1
    for part in parts:
        assert segments(part) <= MAX_SEGMENTS
        assert part.split("\n")[0][0].isdigit()  # every message starts at a line
    assert "\n".join(parts) == text


def test_one_ucs2_character_makes_a_smaller_message() -> None:
    text = " ".join(["kɛrɛfɛ"] * 50)  # 349 characters; ɛ forces UCS-2: 67 per segment
    parts = split_sms(text)
    assert len(parts) == 2
    assert all(len(p) <= 201 for p in parts)
    assert " ".join(parts) == text


def test_a_word_longer_than_a_message_is_cut() -> None:
    url = "https://example.org/" + "x" * 1000
    parts = split_sms(url)
    assert all(segments(p) <= MAX_SEGMENTS for p in parts)
    assert "".join(parts) == url


@given(
    st.lists(st.sampled_from(["Oui", "sécurité", "kɛrɛfɛ", "€", "\n", "mot", "1."]), max_size=400)
)
def test_nothing_is_lost_or_reordered(tokens: list[str]) -> None:
    text = " ".join(tokens)
    parts = split_sms(text)
    assert all(0 < segments(p) <= MAX_SEGMENTS for p in parts)
    assert "".join("".join(parts).split()) == "".join(text.split())
