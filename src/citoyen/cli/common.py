"""What every command shares: the runtime, the console, progress bars, upkeep checks."""

from __future__ import annotations

import logging
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from citoyen.runtime import Runtime, build_runtime

console = Console(stderr=True)
log = logging.getLogger("citoyen.cli")


def runtime_of(ctx: click.Context) -> Runtime:
    obj = ctx.ensure_object(dict)
    if "runtime" not in obj:
        obj["runtime"] = build_runtime(obj.get("settings"))
    return obj["runtime"]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def warn_about_upkeep(runtime: Runtime) -> None:
    """Warn, in the log (where an operator's monitoring looks), when the database's own upkeep
    is off: the service runs, but slows down as its tables grow."""
    from citoyen.db import maintenance_warning

    warning = maintenance_warning(runtime.engine)
    if warning:
        log.warning("%s", warning)


def exit_naming_errors(problems: list, what: str) -> NoReturn:
    """Print every error (file, line, node, problem), then exit saying what to do."""
    for problem in problems:
        if problem.level == "error":
            console.print(f"error: {problem}", markup=False, highlight=False)
    raise SystemExit(f"{what}: fix them, then run `citoyen flows check`")


def load_bundle_or_exit(runtime: Runtime) -> object:
    """The validated flows and routing, or exit naming every problem."""
    from citoyen.engine import FlowError
    from citoyen.routing import RoutingError

    try:
        bundle = runtime.bundle
        _ = runtime.router
        return bundle
    except (FlowError, RoutingError) as exc:
        exit_naming_errors(exc.problems, "flows or routing are broken")


def surveys_or_exit(runtime: Runtime) -> dict:
    """The valid survey definitions, or exit naming every problem."""
    from citoyen.services.surveys import SurveyConfigError, surveys_for

    try:
        return surveys_for(runtime)
    except SurveyConfigError as exc:
        exit_naming_errors(exc.problems, "survey definitions are broken")
