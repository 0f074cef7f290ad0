"""Report reference codes: the check digit and parsing (pure; drawing new codes is a service's).

Seven digits shown as ``482-1937``: six digits and a Damm check digit, which catches every single
wrong digit and every swap of two neighbouring digits, the usual mistakes when a code is copied
by hand or heard over a bad line. Digits only, because keypads and non-readers.
"""

from __future__ import annotations

import re

_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)

BODY_DIGITS = 6
_NOT_DIGIT = re.compile(r"\D")


def damm_digit(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][int(ch)]
    return interim


def format_reference(digits: str) -> str:
    return f"{digits[:3]}-{digits[3:]}"


def parse_reference(text: str | None) -> str | None:
    """The canonical reference for what a citizen typed or keyed, or None if not valid."""
    if text is None or len(text) > 40:
        return None
    digits = _NOT_DIGIT.sub("", text)
    if len(digits) != BODY_DIGITS + 1 or damm_digit(digits) != 0:
        return None
    return format_reference(digits)
