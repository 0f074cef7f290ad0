"""Quiet hours of surveys: :mod:`citoyen.services.quiet_hours`, shared with call-backs."""

from citoyen.services.quiet_hours import is_allowed, next_allowed, spec

__all__ = ["is_allowed", "next_allowed", "spec"]
