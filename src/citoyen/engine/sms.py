"""SMS cost: GSM-7 detection and segment counting.

Texts are written by people who do not think in septets, and one stray ``ê`` or ``ɛ`` turns a
160-character SMS into a 70-character one. The validator uses these functions to warn when a
reply costs more than its budget (config/settings.yaml, ``sms_budget``), and the SMS channel uses
:func:`render_menu` and :func:`join_messages` so that what is counted is exactly what is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Encoding = Literal["GSM-7", "UCS-2"]

# GSM 03.38 basic character set (the escape character itself is not a usable character).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension table: each character is sent as ESC + character, so it costs two septets.
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
# Every character GSM-7 can send: a text fits when its characters are a subset (one C-level
# set operation; a per-character generator cost more than the rest of rendering a reply).
GSM7_ALL = GSM7_BASIC | GSM7_EXTENSION

SINGLE = {"GSM-7": 160, "UCS-2": 70}
PART = {"GSM-7": 153, "UCS-2": 67}


def encoding(text: str) -> Encoding:
    """The encoding a phone network must use for ``text``: GSM-7 when every character fits."""
    if GSM7_ALL.issuperset(text):
        return "GSM-7"
    return "UCS-2"


def _units(text: str, enc: Encoding) -> list[int]:
    """Cost of each character in the encoding's units (septets or UTF-16 code units)."""
    if enc == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def length(text: str) -> int:
    """Length in units of the text's encoding (septets for GSM-7, UTF-16 code units for UCS-2)."""
    return sum(_units(text, encoding(text)))


def segments(text: str) -> int:
    """Number of SMS parts needed to send ``text`` (0 for an empty text: nothing is sent).

    A concatenated message loses room to its header (153 septets or 67 code units per part), and
    an escape pair or a surrogate pair is never split across two parts, as phones do it.
    """
    if not text:
        return 0
    enc = encoding(text)
    units = _units(text, enc)
    if sum(units) <= SINGLE[enc]:
        return 1
    parts, used = 1, 0
    for cost in units:
        if used + cost > PART[enc]:
            parts, used = parts + 1, 0
        used += cost
    return parts


def render_menu(header: str | None, labels: Sequence[str]) -> str:
    """The text of a menu as the SMS channel sends it: the header, then one ``n. label`` line each.

    Shared by the SMS channel and the validator so that segment warnings count what is sent.
    """
    lines = [header] if header else []
    lines.extend(f"{n}. {label}" for n, label in enumerate(labels, start=1))
    return "\n".join(lines)


def join_messages(texts: Sequence[str], max_segments: int) -> list[str]:
    """The texts of one reply as the SMS messages that carry them.

    Consecutive texts share one message, a blank line apart, when that costs no more segments
    than sending them apart and stays within ``max_segments``: a welcome and its first question
    then travel as one 2-segment SMS instead of a 1-segment and a 2-segment one. Shared by the
    SMS channel and the validator's SMS budget, so that what is counted is what is billed.
    """
    messages: list[str] = []
    for text in texts:
        if not text:
            continue
        if messages:
            joined = f"{messages[-1]}\n\n{text}"
            cost = segments(joined)
            if cost <= max_segments and cost <= segments(messages[-1]) + segments(text):
                messages[-1] = joined
                continue
        messages.append(text)
    return messages


def cost(texts: Sequence[str], max_segments: int) -> int:
    """Segments billed for the texts of one reply (see :func:`join_messages`)."""
    return sum(segments(m) for m in join_messages(texts, max_segments))
