"""Protection of contact identifiers: encryption at rest, keyed hashes, display aliases.

Phone numbers and Telegram ids are what could expose a reporter, so they exist in clear only in
memory while a message is handled or sent. At rest they are Fernet tokens (AES-128-CBC +
HMAC-SHA256, authenticated); to find a contact again without decrypting every row, the address is
hashed with a key derived from the data key (HMAC-SHA256). Logs and pages show the alias instead.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# What a purged contact keeps in place of its encrypted address (citoyen.services.retention):
# nothing that decrypts, so the number is gone for good, not merely hidden.
ERASED = "erased"


def is_erased(token: str | None) -> bool:
    return not token or token == ERASED


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
