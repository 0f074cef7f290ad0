"""Everything ``citoyen flows check`` finds, for the command and for the admin's flows page.

Flows, locales, the prompt library, stakeholders, routing rules and survey definitions are
checked from the files on disk (not the flows the running service loaded), so staff see the
problems of a file they just edited before anyone restarts anything.
"""

from __future__ import annotations

from typing import Any

from citoyen.engine import FlowError, Problem, check, load_bundle


def problems(runtime: Any, areas: Any = None) -> list[Problem]:
    """Every problem, errors and warnings; ``areas`` is an area tree (None: the shipped one)."""
    from citoyen import routing
    from citoyen.services.areas.trees import shipped_area_tree

    if areas is None:
        areas = shipped_area_tree()

    settings = runtime.settings
    # Recordings are counted from the prompt library below, not per text from shipped files.
    config_dir = settings.resolved_config_dir
    found = check(settings.flows_dir, settings.locales_dir, audio=False, config_dir=config_dir)
    if not any(p.level == "error" for p in found):
        found += _prompt_problems(runtime)
    found += routing.check(
        settings.flows_dir, settings.locales_dir, areas=areas, config_dir=config_dir
    )
    found += _survey_problems(settings, areas)
    return found


def _prompt_problems(runtime: Any) -> list[Problem]:
    """Warnings per language from the prompt library (shipped files only when the database is
    not migrated: the check must work before the first start)."""
    from citoyen.services.prompts import check_warnings

    try:
        database = not runtime.needs_migration()
    except Exception:  # an unreachable database: check what is shipped
        database = False
    return [
        Problem("warning", runtime.bundle.catalog.file(lang), None, None, message)
        for lang, message in check_warnings(runtime, database=database)
    ]


def _survey_problems(settings: Any, areas: Any) -> list[Problem]:
    """Problems of flows/surveys/*.yaml, checked against the flows when these load."""
    from citoyen.services.surveys import load_surveys

    try:
        bundle = load_bundle(
            settings.flows_dir, settings.locales_dir, config_dir=settings.resolved_config_dir
        )
    except FlowError:
        bundle = None  # the flows' own errors are reported already
    return list(load_surveys(settings.flows_dir, bundle, areas).problems)
