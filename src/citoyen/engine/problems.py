"""One finding of a validator: the file, line and node it is about, and what is wrong.

Every loader of hand-edited files (flows, settings, locales, stakeholders, routing, surveys)
reports in this one shape, so ``citoyen flows check`` and the admin's flows page print them alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One finding of the validator; ``str()`` gives ``file:line: node 'x': message``."""

    level: Level
    file: str
    line: int | None
    node: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        node = f" node '{self.node}':" if self.node else ""
        return f"{where}:{node} {self.message}"
