"""Which Malian mobile operator a number belongs to, so an SMS can go out on-net.

An SMS from an Orange Mali SIM to an Orange Mali number costs less (and arrives more surely) than
one across operators, so the SMS gateway sends on the phone whose SIM is of the recipient's
operator. The operator comes from ``phonenumbers``' carrier data, which covers Mali (it names
Orange, Sotelma — Moov Africa Malitel's former name — and Atel — Telecel's); a number it does
not know (a range opened after the data was published) falls back to the first digit of the
national number, which is how the ranges were allocated (5: Telecel, 6: Malitel, 7: Orange).
A number moved to another operator keeps its prefix: its messages then go off-net, which costs
more but still arrives.
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import carrier

ORANGE, MOOV, TELECEL = "orange", "moov", "telecel"
OPERATORS = (ORANGE, MOOV, TELECEL)

# phonenumbers' English carrier names for Mali, and the names they may take in later data.
CARRIER_NAMES = {
    "orange": ORANGE,
    "sotelma": MOOV,
    "malitel": MOOV,
    "moov": MOOV,
    "moov africa": MOOV,
    "atel": TELECEL,
    "telecel": TELECEL,
}
# The first digit of an 8-digit Malian mobile number, when the carrier data has no name for it.
PREFIX_OPERATORS = {"5": TELECEL, "6": MOOV, "7": ORANGE}


def operator_of(number: str) -> str | None:
    """``orange``, ``moov`` or ``telecel`` for a Malian mobile number (E.164), else None."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code != 223:
        return None
    name = carrier.name_for_number(parsed, "en").strip().lower()
    if name in CARRIER_NAMES:
        return CARRIER_NAMES[name]
    for known, operator in CARRIER_NAMES.items():
        if name.startswith(known):
            return operator
    national = phonenumbers.national_significant_number(parsed)
    if len(national) == 8:
        return PREFIX_OPERATORS.get(national[0])
    return None
