"""Transcript tests of the shipped flows (see README.md here and tests/dialog.py)."""
