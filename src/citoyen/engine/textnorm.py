"""Text normalisation for matching keywords, option keys and menu labels.

Citizens type on feature phones with whatever keyboard they have: capitals or not, accents or not,
and Bambara written in the older orthography (``è``, ``ò``, ``ny``) or the standard one (``ɛ``,
``ɔ``, ``ɲ``), or folded to plain ASCII. :func:`standardise` maps the older spellings onto the
standard orthography and drops Latin accents; :func:`normalise` goes one step further to ASCII and
is the matching key: two texts match when their ``normalise()`` are equal, so ``DEME``, ``DÈMÈ``
and ``DƐMƐ`` all match.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from functools import lru_cache

# Older Bambara spellings -> standard orthography (applied after casefolding, before accents go).
_OLD_TO_STANDARD = (("è", "ɛ"), ("ò", "ɔ"), ("ny", "ɲ"))
# Standard orthography -> ASCII, for people who type without the special letters.
_TO_ASCII = str.maketrans({"ɛ": "e", "ɔ": "o", "ɲ": "ny", "ŋ": "ng"})


def _is_latin(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN")


def _strip_latin_accents(text: str) -> str:
    """Drop combining marks that sit on Latin letters (é -> e, ɛ́ -> ɛ), and only those.

    Marks on other scripts (N'Ko, Arabic) carry meaning and are kept.
    """
    out: list[str] = []
    base_is_latin = False
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.combining(ch):
            if not base_is_latin:
                out.append(ch)
            continue
        base_is_latin = _is_latin(ch)
        out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def standardise(text: str) -> str:
    """Casefold, trim, collapse spaces, map older Bambara spellings, strip Latin accents."""
    text = unicodedata.normalize("NFC", text).casefold()
    for old, new in _OLD_TO_STANDARD:
        text = text.replace(old, new)
    text = _strip_latin_accents(text)
    return " ".join(text.split())


@lru_cache(maxsize=8192)
def normalise(text: str) -> str:
    """The matching key: :func:`standardise`, then Bambara letters to ASCII (ɛ->e, ɲ->ny...).

    Cached: keywords and menu labels are normalised on every message, and they are few.
    """
    return standardise(text).translate(_TO_ASCII)


def same(a: str, b: str) -> bool:
    """Whether two texts match once normalised and folded (the comparison used everywhere)."""
    return normalise(a) == normalise(b)


def find_keyword(text: str, keywords: Mapping[str, Iterable[str]]) -> str | None:
    """The name of the keyword list whose words match the whole ``text``, or None.

    Lists are tried in mapping order; the validator makes sure a word is in one list only.
    """
    folded = normalise(text)
    if not folded:
        return None
    lists = tuple((name, tuple(words)) for name, words in keywords.items())
    return _keyword_index(lists).get(folded)


@lru_cache(maxsize=64)
def _keyword_index(lists: tuple[tuple[str, tuple[str, ...]], ...]) -> dict[str, str]:
    """Normalised word -> name of the first list holding it, for :func:`find_keyword`.

    Keyed by the lists' content, because callers build a fresh keyword mapping per message while
    a deployment has one set of lists. Callers must not change the returned dict.
    """
    index: dict[str, str] = {}
    for name, words in lists:
        for word in words:
            index.setdefault(normalise(word), name)
    return index


def whole_number(text: str | None, max_digits: int = 9) -> int | None:
    """``text`` as a whole number when it is 1 to ``max_digits`` ASCII digits, else None.

    ``str.isdigit`` alone is not enough for what providers and people send: it accepts ``²`` and
    other scripts' digits, which ``int()`` refuses or reads as another number, and ``int()``
    refuses more than 4,300 digits; both would be a 500 where a 400 is due.
    """
    if text is None or not (0 < len(text) <= max_digits and text.isascii() and text.isdigit()):
        return None
    return int(text)
