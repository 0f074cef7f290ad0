"""A deployment's routing configuration and texts, found from a session.

Routing runs deep inside report creation, which knows the database session but not the runtime;
:func:`install` registers a runtime's configuration under its database URL, and
:func:`router_for` finds it again (else the process settings' folders, which is the same thing in
every deployment that does not build runtimes by hand).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlmodel import Session

from citoyen.i18n import Catalog
from citoyen.routing import RoutingConfig, load_routing


@dataclass
class Router:
    """A deployment's routing configuration and the texts its messages are written with."""

    config: RoutingConfig
    catalog: Catalog
    default_language: str
    emergency: dict[str, str]
    # The deployment's discreet mode (CITOYEN_DISCREET); a contact's own choice wins.
    discreet: bool = False

    def discreet_for(self, contact: Any) -> bool:
        """Whether messages to ``contact`` use the neutral (discreet) wording."""
        own = getattr(contact, "discreet", None)
        return self.discreet if own is None else bool(own)

    @classmethod
    def load(cls, flows_dir: Path, locales_dir: Path, config_dir: Path | None = None) -> Router:
        """Validated routing and texts; raises RoutingError or FlowError when broken.

        ``config_dir``: the configuration folder (None: ``config/`` beside the flows folder)."""
        from citoyen.services.flows import get_bundle

        bundle = get_bundle(flows_dir, locales_dir, config_dir=config_dir)
        config = load_routing(Path(flows_dir), Path(locales_dir), config_dir=config_dir)
        return cls(
            config=config,
            catalog=bundle.catalog,
            default_language=bundle.settings.languages.default,
            emergency=dict(bundle.settings.emergency_numbers),
        )

    def language(self, *candidates: str | None) -> str:
        """The first candidate language that has texts, else the deployment's default."""
        for lang in candidates:
            if lang and lang in self.catalog.languages:
                return lang
        return self.default_language

    def text(self, keys: Sequence[str], lang: str, params: dict[str, Any]) -> str:
        """The first of ``keys`` that exists in ``lang`` (else in the default language)."""
        for language in dict.fromkeys((lang, self.default_language)):
            for key in keys:
                if self.catalog.has(key, language):
                    return self.catalog.render(key, language, params)
        raise KeyError(f"no text {keys[-1]!r} in {lang} or {self.default_language}")


_routers_by_dirs: dict[tuple[str, str, str], Router] = {}
_routers_by_database: dict[str, Router] = {}
_routers_lock = threading.Lock()


def router_for_settings(settings: Any, *, reload: bool = False) -> Router:
    """The router for a deployment's flows, locales and configuration folders (cached per
    process)."""
    dirs = (settings.flows_dir, settings.locales_dir, settings.resolved_config_dir)
    key = tuple(str(Path(d).resolve()) for d in dirs)
    with _routers_lock:
        router = None if reload else _routers_by_dirs.get(key)
    if router is None:
        router = Router.load(*dirs)
        with _routers_lock:
            _routers_by_dirs[key] = router
    return router


def install(runtime: Any) -> Router:
    """Use ``runtime``'s flows and locales for reports routed in its database.

    Routing is called from deep inside report creation, which knows the session but not the
    runtime; this registers the runtime's configuration under its database URL. Without it, the
    folders of the process's settings (``CITOYEN_FLOWS_DIR``...) are used, which is the same
    thing in every deployment that does not build runtimes by hand.
    """
    router = replace(router_for_settings(runtime.settings), discreet=runtime.settings.discreet)
    with _routers_lock:
        _routers_by_database[str(runtime.engine.url)] = router
    return router


def router_for(session: Session) -> Router:
    """The router of the database this session works on."""
    url = str(session.get_bind().engine.url)
    with _routers_lock:
        router = _routers_by_database.get(url)
    if router is not None:
        return router
    from citoyen.config import get_settings

    settings = get_settings()
    return replace(router_for_settings(settings), discreet=settings.discreet)


def clear_routers() -> None:
    """Forget loaded configurations (tests; after editing the files in a long-lived process)."""
    with _routers_lock:
        _routers_by_dirs.clear()
        _routers_by_database.clear()
