"""Channel addresses: the canonical form of a phone number, a Telegram id or a withheld caller.

Every layer compares addresses (webhooks check the sender, the conversation service finds the
contact, routing checks on-call numbers), so they are normalised in one place, below all of them.
Pure: phonenumbers only.
"""

from __future__ import annotations

import functools
import re

import phonenumbers

DEFAULT_REGION = "ML"
WITHHELD = "withheld"
# A call whose caller id is withheld: one pseudo address per call, from its CallSid.
WITHHELD_ADDRESS = re.compile(r"withheld:CA[0-9a-fA-F]{32}")
# Staff trying a flow in the admin's simulator (citoyen.services.trial): one pseudo address per
# test conversation, of a kind no provider ever sends, so no citizen can land on a test contact.
TEST = "test"
TEST_ADDRESS = re.compile(r"test:[0-9a-f]{32}")


class AddressError(ValueError):
    """An address that is not a usable phone number or Telegram id."""


@functools.lru_cache(maxsize=4096)
def normalise_address(raw: str, default_region: str = DEFAULT_REGION) -> str:
    """Canonical channel address: ``tel:+22376000000``, ``telegram:123456`` or
    ``withheld:CA…`` (a call without caller id, see :func:`withheld_address`).

    Phone numbers are parsed with libphonenumber (Malian numbers may come without +223). A
    webhook needs the answer twice (the form's check, then the contact lookup), and a
    conversation's senders come back a message after another: the answers of the last few
    thousand addresses are kept (an invalid one raises each time, never cached).
    These stay in the process's memory only, like the request that brought them.
    """
    raw = raw.strip()
    if raw.startswith(f"{WITHHELD}:"):
        if not WITHHELD_ADDRESS.fullmatch(raw):
            raise AddressError("invalid withheld-number address")
        return raw
    if raw.startswith(f"{TEST}:"):
        if not TEST_ADDRESS.fullmatch(raw):
            raise AddressError("invalid test address")
        return raw
    if raw.startswith("telegram:"):
        ident = raw.removeprefix("telegram:")
        if not re.fullmatch(r"-?\d{1,20}", ident):
            raise AddressError("invalid Telegram id")
        return f"telegram:{int(ident)}"
    number = raw.removeprefix("tel:")
    try:
        parsed = phonenumbers.parse(number, default_region)
    except phonenumbers.NumberParseException as exc:
        raise AddressError(f"not a phone number ({exc.error_type})") from None
    if not phonenumbers.is_possible_number(parsed):
        raise AddressError("not a possible phone number")
    return "tel:" + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_valid_phone(address: str) -> bool:
    """Whether a canonical ``tel:`` address is a number that exists in its country's numbering
    plan (libphonenumber's ``is_valid_number``), not merely one of a possible length."""
    try:
        parsed = phonenumbers.parse(address.removeprefix("tel:"), DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed)


def staff_address(raw: str) -> str:
    """Canonical address of a number typed by staff (on-call entries): held to a stricter rule
    than a citizen's sender id, which the provider vouches for. A typo that leaves a possible
    but non-existent number would otherwise be accepted and alerts would go nowhere."""
    canonical = normalise_address(raw)
    if canonical.startswith("tel:") and not is_valid_phone(canonical):
        raise AddressError("not a valid phone number (no such number in its country's plan)")
    return canonical


def withheld_address(call_sid: str) -> str:
    """The pseudo address of one call whose caller id is withheld: the call is its own contact.

    Nobody can be written back to at it (no notification, no callback).
    """
    address = f"{WITHHELD}:{call_sid}"
    if not WITHHELD_ADDRESS.fullmatch(address):
        raise AddressError("not a Twilio CallSid")
    return address
