"""Drawing new report reference codes (the format and check digit live in the engine)."""

from __future__ import annotations

import secrets

from citoyen.engine.refcodes import BODY_DIGITS, damm_digit, format_reference, parse_reference

__all__ = ["damm_digit", "new_reference", "parse_reference"]


def new_reference() -> str:
    """A fresh random reference (uniqueness is enforced by the database and retried)."""
    body = "".join(str(secrets.randbelow(10)) for _ in range(BODY_DIGITS))
    return format_reference(body + str(damm_digit(body)))
