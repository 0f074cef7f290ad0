"""A refused action, with a code the faces word in the staff's language.

The English message is for logs and the command line; ``code`` and ``params`` let the admin
show the reason in its own language ("Pour clore, choisissez un motif") instead of an English
sentence with internal codes. Every code a service raises has a wording in the admin
(citoyen.web.admin.labels.REFUSALS; a test holds the two together).
"""

from __future__ import annotations

from typing import Any


class Refusal(ValueError):
    """An action refused: ``str()`` is the English reason, ``code`` and ``params`` its parts."""

    def __init__(self, message: str, code: str = "", **params: Any) -> None:
        super().__init__(message)
        self.code = code
        self.params = params
