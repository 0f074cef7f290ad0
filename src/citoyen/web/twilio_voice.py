"""Placeholder: registered by create_app, filled in by the channel's own work."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register this channel's routes (none yet)."""
