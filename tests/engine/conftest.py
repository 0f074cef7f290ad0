"""Fixtures of the engine tests: the valid fixture deployment, contexts, modified copies."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from citoyen.engine import Bundle, Context, load_bundle
from tests.engine.support import AREAS, ROOTS, VALID


@pytest.fixture(scope="session")
def bundle() -> Bundle:
    return load_bundle(VALID / "flows", VALID / "locales")


@pytest.fixture
def ctx(bundle: Bundle) -> Context:
    """A context for an SMS conversation with a contact whose language is unknown."""
    return Context(
        languages=tuple(bundle.settings.languages.enabled),
        default_language=bundle.settings.languages.default,
        keywords=bundle.settings.keyword_map(),
        areas=AREAS,
        area_roots=ROOTS,
        menu_size=9,
    )


@pytest.fixture
def known(ctx: Context) -> Context:
    """The same context for a contact whose language (fr) is remembered."""
    return replace(ctx, contact_language="fr")


@pytest.fixture
def variant(tmp_path: Path) -> Callable[..., Path]:
    """A copy of the valid fixture with some files replaced: ``variant({"flows/x.yaml": text})``."""

    count = iter(range(1000))

    def make(files: dict[str, str | None]) -> Path:
        root = tmp_path / f"deploy{next(count)}"
        shutil.copytree(VALID, root)
        for rel, text in files.items():
            path = root / rel
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
        return root

    return make
