"""Protection of contact identifiers: encryption at rest, keyed hashes, display aliases.

Phone numbers and Telegram ids are what could expose a reporter, so they exist in clear only in
memory while a message is handled or sent. At rest they are Fernet tokens (AES-128-CBC +
HMAC-SHA256, authenticated); to find a contact again without decrypting every row, the address is
hashed with a key derived from the data key (HMAC-SHA256). Logs and pages show the alias instead.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re

import phonenumbers
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

DEFAULT_REGION = "ML"
WITHHELD = "withheld"
# A call whose caller id is withheld: one pseudo address per call, from its CallSid.
WITHHELD_ADDRESS = re.compile(r"withheld:CA[0-9a-fA-F]{32}")
# What a purged contact keeps in place of its encrypted address (citoyen.services.retention):
# nothing that decrypts, so the number is gone for good, not merely hidden.
ERASED = "erased"


def is_erased(token: str | None) -> bool:
    return not token or token == ERASED


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


class Vault:
    """Encrypts, decrypts and hashes addresses with the deployment's data key(s).

    ``data_key`` is one Fernet key, or several separated by commas during a key rotation: the
    first encrypts and hashes, every one decrypts (:class:`~cryptography.fernet.MultiFernet`),
    and lookups try the hash under each key, so contacts not yet re-encrypted are still found.
    ``citoyen keys rotate`` then re-encrypts and re-hashes every stored address under the first
    key, after which the old one can be removed (docs/security.md).
    """

    def __init__(self, data_key: str) -> None:
        keys = [k.strip().encode() for k in re.split(r"[,\s]+", data_key) if k.strip()]
        if not keys:
            raise ValueError("no data key given")
        self._fernets = [Fernet(key) for key in keys]
        self._multi = MultiFernet(self._fernets)
        self._hash_keys = [
            HKDF(
                algorithm=hashes.SHA256(), length=32, salt=None, info=b"citoyen address hash"
            ).derive(key)
            for key in keys
        ]

    @property
    def key_count(self) -> int:
        return len(self._fernets)

    def encrypt(self, address: str) -> str:
        return self._multi.encrypt(address.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._multi.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ValueError("address cannot be decrypted with this data key") from None

    def hash(self, address: str) -> str:
        """The lookup hash under the current (first) key."""
        return self._digest(self._hash_keys[0], address)

    def hashes(self, address: str) -> list[str]:
        """The lookup hash under every configured key, the current one first."""
        return [self._digest(key, address) for key in self._hash_keys]

    def is_current(self, token: str) -> bool:
        """Whether ``token`` is encrypted with the current key (nothing left to rotate)."""
        try:
            self._fernets[0].decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the current key (readable by any configured key)."""
        try:
            return self._multi.rotate(token.encode()).decode()
        except InvalidToken:
            raise ValueError("address cannot be decrypted with this data key") from None

    @staticmethod
    def _digest(key: bytes, address: str) -> str:
        return hmac.new(key, address.encode(), hashlib.sha256).hexdigest()


def alias_label(alias: int) -> str:
    """How staff and logs name a contact: never the number."""
    return f"Citoyen {alias}"


def mask(address: str) -> str:
    """A log-safe hint of an address: channel and last two digits at most."""
    kind, _, ident = address.partition(":")
    return f"{kind}:…{ident[-2:]}" if ident else "…"
