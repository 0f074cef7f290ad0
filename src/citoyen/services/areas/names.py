"""Names of areas: how two spellings of one place compare, sort and become a code segment.

Regions and the district take their code from ISO 3166-2 (:func:`iso_regions`), the one public,
stable code for them; every other code is built from :func:`slugify` (see the package docstring).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import pycountry

COUNTRY = "ML"

_MAX_SLUG = 40

# Spellings of the same place seen in other sources (English names in COD-AB ``_EN`` columns,
# older transcriptions). Keys and values are match keys.
_ALIASES = {
    "timbuktu": "tombouctou",
    "tombouctu": "tombouctou",
    "taoudeni": "taoudenit",
    "taoudenni": "taoudenit",
    "segu": "segou",
}
_PREFIX = re.compile(r"^(?:region|district|cercle)\s+(?:de\s+|du\s+|d\s*'\s*|d\s*’\s*)")
_ROMAN = re.compile(r"M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})")
_ROMAN_VALUES = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}


def fold(text: str) -> str:
    """Lowercase without accents: the form used to compare and sort names."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def slugify(name: str) -> str:
    """The code segment for ``name``: ascii, lowercase, words joined by hyphens."""
    # Apostrophes join (N'Gara, N’Gara -> ngara); any other run of non-letters is one hyphen.
    ascii_name = re.sub(r"['’`ʼ]", "", fold(name)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name).strip("-")
    return slug[:_MAX_SLUG].rstrip("-") or "area"


def match_key(name: str) -> str:
    """What two spellings of one place have in common (``Ségou``, ``Segou``, ``Région de Ségou``).

    Spaces and punctuation are dropped too (``Kalaban Coro`` / ``Kalabancoro``), since sources
    disagree on them as much as on accents.
    """
    folded = _PREFIX.sub("", fold(" ".join(name.split())))
    key = re.sub(r"[\W_]+", "", folded)
    return _ALIASES.get(key, key)


def clean_name(name: str | None) -> str:
    """``name`` with whitespace normalised; an all-lowercase name gets a capital (``gao``)."""
    text = " ".join((name or "").split())
    if text and text == text.lower() and text[0].isalpha():
        text = text[0].upper() + text[1:]
    return text


def _roman(token: str) -> int | None:
    if not token or not _ROMAN.fullmatch(token):
        return None
    total = 0
    for i, char in enumerate(token):
        value = _ROMAN_VALUES[char]
        following = _ROMAN_VALUES[token[i + 1]] if i + 1 < len(token) else 0
        total += -value if value < following else value
    return total


def menu_sort_key(name: str) -> tuple[tuple[int, int, str], ...]:
    """Alphabetical by folded name, with numbers in numeric order.

    Digits and, after the first word, upper-case Roman numerals count as numbers, so that Bamako's
    communes come as I, II, III, IV, V, VI (and a future Commune X after IX, not after I).
    """
    key: list[tuple[int, int, str]] = []
    for i, token in enumerate(re.findall(r"[^\W_]+", name)):
        number = int(token) if token.isdigit() else None
        if number is None and i > 0 and token.isupper():
            number = _roman(token)
        key.append((0, number, "") if number is not None else (1, 0, fold(token)))
    return tuple(key)


@dataclass(frozen=True)
class IsoRegion:
    """A first-level subdivision of Mali in ISO 3166-2."""

    code: str
    name: str
    level: str  # region | district


@lru_cache(maxsize=1)
def iso_regions() -> tuple[IsoRegion, ...]:
    """Mali's regions and district from pycountry (ML-1 ... ML-10, ML-BKO)."""
    subdivisions = pycountry.subdivisions.get(country_code=COUNTRY) or []
    return tuple(
        IsoRegion(
            code=sub.code,
            name=sub.name,
            level="district" if sub.type.lower() == "district" else "region",
        )
        for sub in sorted(subdivisions, key=lambda s: (len(s.code), s.code))
    )


def iso_by_key() -> dict[str, IsoRegion]:
    return {match_key(region.name): region for region in iso_regions()}
