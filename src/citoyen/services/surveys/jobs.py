"""What the worker schedules for surveys: one cron job per definition, plus housekeeping.

Survey jobs live in the persistent job store (the project database), so a firing missed while
the worker was down still runs at restart within ``SURVEY_MISFIRE_GRACE`` (coalesced into one).
The job names the firing by its scheduled time (:func:`~.runs.run_key`), which makes the run and
its invitations unique even if the job fires twice.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from citoyen.services.surveys.definitions import SurveyDef
from citoyen.services.surveys.runs import run_key, send_reminders, start_run, update_invitations

log = logging.getLogger(__name__)

# A monthly survey due at 09:00 still goes out if the worker is back by 15:00.
SURVEY_MISFIRE_GRACE = timedelta(hours=6)


def fire_survey(runtime: Any, survey: SurveyDef, now: datetime | None = None) -> Any:
    """The scheduled firing of ``survey`` that ``now`` belongs to (None when there is none)."""
    now = now or datetime.now(UTC)
    key = run_key(survey, now, SURVEY_MISFIRE_GRACE + timedelta(minutes=1))
    if key is None:
        log.warning("survey %s fired at %s, outside any scheduled time: ignored", survey.id, now)
        return None
    return start_run(runtime, survey, now, key=key, trigger="schedule")


def housekeeping(runtime: Any, surveys: dict[str, SurveyDef], now: datetime | None = None) -> None:
    """Follow invitations to their end, then remind those who have not answered."""
    now = now or datetime.now(UTC)
    changed = update_invitations(runtime, now)
    reminded = send_reminders(runtime, surveys, now)
    if changed or reminded:
        log.info("survey invitations: %s; %d reminder(s) queued", dict(changed), reminded)


def job_specs(runtime: Any, surveys: dict[str, SurveyDef]) -> list[dict[str, Any]]:
    """``(name, callable, add_job kwargs)`` for the worker; survey schedules go to the DB store."""
    from citoyen.services.surveys import voice

    specs: list[dict[str, Any]] = []
    for survey in surveys.values():
        if survey.schedule is None:
            continue
        specs.append(
            {
                "id": f"survey:{survey.id}",
                "call": (lambda s=survey: fire_survey(runtime, s)),
                "store": "database",
                "trigger": survey.schedule.trigger(),
                "misfire_grace_time": int(SURVEY_MISFIRE_GRACE.total_seconds()),
            }
        )
    specs.append(
        {
            "id": "survey_housekeeping",
            "call": lambda: housekeeping(runtime, surveys),
            "store": "memory",
            "trigger": "interval",
            "trigger_args": {"minutes": 1},
            "misfire_grace_time": 60,
        }
    )
    if any("voice" in s.channels for s in surveys.values()):
        specs.append(
            {
                "id": "survey_calls",
                "call": lambda: voice.place_due_calls(runtime, surveys),
                "store": "memory",
                "trigger": "interval",
                "trigger_args": {"seconds": 15},
                "misfire_grace_time": 15,
            }
        )
    return specs
