"""Words of the public pages and the bulletin, from ``locales/`` (``public.*``, ``bulletin.*``,
the report flow's ``report.category.*``), falling back to French where a language lacks one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from citoyen.services.publication.figures import ALL


def texts(
    catalog: Any, lang: str
) -> tuple[Callable[..., str], Callable[[str], str], Callable[[str], str]]:
    """``t(key, **params)``, ``category(code)`` and ``kind(code)`` in ``lang``."""

    def t(key: str, **params: Any) -> str:
        use = lang if catalog.has(key, lang) else "fr"
        return catalog.render(key, use, params) if catalog.has(key, use) else key.rsplit(".")[-1]

    def category(code: str) -> str:
        if code == ALL:
            return t("public.total")
        if code == "none":  # reports filed without a category
            return t("alert.category_unknown")
        key = f"report.category.{code}"
        return t(key) if catalog.has(key, "fr") else code

    def kind(code: str) -> str:
        return t("public.total") if code == ALL else t(f"public.kind.{code}")

    return t, category, kind
