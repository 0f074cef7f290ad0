"""Scheduled perceived-safety surveys: definitions, audience and runs, calls, indicators.

Modules: ``definitions`` (``flows/surveys/*.yaml``, validated with file and line), ``quiet``
(quiet hours), ``runs`` (audience, sample, one invitation per contact and run, reminders,
following invitations to their end), ``voice`` (outbound survey calls: retries, concurrency),
``indicators`` (the SDG 16.1.4 series per area and period), ``jobs`` (what the worker schedules).
docs/surveys.md explains the format and the indicator maths.
"""

from __future__ import annotations

from typing import Any

from citoyen.services.surveys.definitions import (
    SurveyConfigError,
    SurveyDef,
    Surveys,
    load_or_raise,
    load_surveys,
)


def surveys_for(runtime: Any) -> dict[str, SurveyDef]:
    """The deployment's valid survey definitions (checked against its flows and areas).

    Raises :class:`SurveyConfigError` naming every problem: like broken flows, a broken survey
    stops the worker at start rather than misfiring later.
    """
    cached = getattr(runtime, "_surveys", None)
    if cached is not None:
        return cached
    from sqlmodel import Session

    from citoyen.services.areas.trees import database_area_tree

    with Session(runtime.engine) as session:
        areas = database_area_tree(session)
    surveys = load_or_raise(runtime.settings.flows_dir, runtime.bundle, areas)
    runtime._surveys = surveys  # read once per process, like the flows
    return surveys


__all__ = [
    "SurveyConfigError",
    "SurveyDef",
    "Surveys",
    "load_or_raise",
    "load_surveys",
    "surveys_for",
]
