from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from citoyen.messages.addresses import AddressError, normalise_address
from citoyen.services.privacy import Vault, mask
from citoyen.services.refcodes import damm_digit, new_reference, parse_reference


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+22376000000", "tel:+22376000000"),
        ("76 00 00 00", "tel:+22376000000"),
        ("tel:+223 76 00 00 00", "tel:+22376000000"),
        ("+33612345678", "tel:+33612345678"),
        ("telegram:00123", "telegram:123"),
    ],
)
def test_normalise_address(raw: str, expected: str) -> None:
    assert normalise_address(raw) == expected


@pytest.mark.parametrize("raw", ["", "hello", "+1", "telegram:abc", "telegram:"])
def test_bad_addresses_refused(raw: str) -> None:
    with pytest.raises(AddressError):
        normalise_address(raw)


def test_vault_round_trip_and_keyed_hash() -> None:
    key = Fernet.generate_key().decode()
    vault = Vault(key)
    token = vault.encrypt("tel:+22376000000")
    assert "76000000" not in token
    assert vault.decrypt(token) == "tel:+22376000000"
    assert vault.hash("tel:+22376000000") == Vault(key).hash("tel:+22376000000")
    other = Vault(Fernet.generate_key().decode())
    assert other.hash("tel:+22376000000") != vault.hash("tel:+22376000000")
    with pytest.raises(ValueError):
        other.decrypt(token)


def test_mask_keeps_only_two_digits() -> None:
    assert mask("tel:+22376001234") == "tel:…34"


def test_reference_codes_validate() -> None:
    seen = set()
    for _ in range(200):
        ref = new_reference()
        assert len(ref) == 8 and ref[3] == "-"
        assert parse_reference(ref) == ref
        assert parse_reference(ref.replace("-", " ")) == ref
        seen.add(ref)
    assert len(seen) > 190


def test_reference_check_digit_catches_typos() -> None:
    ref = new_reference()
    digits = ref.replace("-", "")
    for i in range(len(digits)):
        for d in "0123456789":
            if d != digits[i]:
                typo = digits[:i] + d + digits[i + 1 :]
                assert parse_reference(typo) is None
    for i in range(len(digits) - 1):
        if digits[i] != digits[i + 1]:
            swapped = digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :]
            assert parse_reference(swapped) is None
    assert damm_digit(digits) == 0
    assert parse_reference("12") is None
