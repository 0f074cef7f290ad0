"""Surveys: run one now, read its indicator."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.table import Table

from citoyen.cli.common import load_bundle_or_exit, progress_bar, runtime_of, surveys_or_exit
from citoyen.runtime import Runtime


def _survey_or_exit(runtime: Runtime, name: str) -> object:
    surveys = surveys_or_exit(runtime)
    if name not in surveys:
        known = ", ".join(sorted(surveys)) or "none"
        raise SystemExit(f"unknown survey {name!r} (surveys in flows/surveys/: {known})")
    return surveys[name]


@click.group()
def survey() -> None:
    """Perceived-safety surveys (flows/surveys/*.yaml)."""


@survey.command("run")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Only say whom it would invite, per channel.")
@click.pass_context
def survey_run(ctx: click.Context, name: str, dry_run: bool) -> None:
    """Start a run of survey NAME now (quiet hours still defer the messages)."""
    from datetime import UTC, datetime

    from citoyen.services.surveys.runs import dry_run as plan_dry_run
    from citoyen.services.surveys.runs import start_run

    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    if runtime.needs_migration():
        raise SystemExit("database not migrated: run `citoyen db upgrade` first")
    definition = _survey_or_exit(runtime, name)
    now = datetime.now(UTC)
    if dry_run:
        planned = plan_dry_run(runtime, definition, now)  # type: ignore[arg-type]
        the_plan, segments, queues = planned.plan, planned.segments, planned.queues
        table = Table("channel", "would be invited")
        for channel in ("sms", "telegram", "voice"):
            table.add_row(channel, str(the_plan.per_channel.get(channel, 0)))
        table.add_row("total", str(len(the_plan.drawn)))
        Console().print(table)
        drawn = f"{len(the_plan.drawn)} drawn"
        if definition.audience.sample is not None:
            # The real run draws its own sample, seeded by its run key (docs/surveys.md): the
            # same size, but not the same people, so the figures per channel are an estimate.
            drawn += (
                " (a sample drawn for this dry run: the real run draws its own, of the same "
                "size, so the figures per channel are an estimate)"
            )
        click.echo(
            f"{the_plan.eligible} eligible contact(s); {drawn}; "
            f"about {segments} SMS segment(s) for the SMS invitations (first message only). "
            "Nothing was sent."
        )
        _print_send_time(queues, now, definition.timezone)  # type: ignore[attr-defined]
        voice = the_plan.per_channel.get("voice", 0)
        if voice:
            click.echo(
                f"voice: {voice} call(s), at most {definition.voice.max_concurrent} at once "  # type: ignore[attr-defined]
                "within the quiet hours"
            )
        return
    with progress_bar() as progress:
        task = progress.add_task(f"inviting ({name})", total=None)

        def tick(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        result = start_run(runtime, definition, now, progress=tick)
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(result.skipped.items())) or "none"
    channels = ", ".join(f"{k}: {v}" for k, v in sorted(result.per_channel.items())) or "none"
    click.echo(
        f"run {result.key}: {result.eligible} eligible, {result.sampled} drawn, "
        f"{result.invited} invited ({channels}), skipped: {skipped}"
    )
    if result.send_at is not None and result.send_at > now:
        local = result.send_at.astimezone(definition.timezone)  # type: ignore[attr-defined]
        click.echo(f"quiet hours: the messages and calls go out from {local:%Y-%m-%d %H:%M} local")


CHANNEL_NAMES = {"sms": "SMS", "telegram": "Telegram", "whatsapp": "WhatsApp"}


def _print_send_time(queues: list, now: object, zone: object) -> None:
    """How long the outbox will take per channel with this run's messages added (the same
    estimate as the admin's outbox page: citoyen.services.sendtime)."""
    from citoyen.services.sendtime import duration_words

    if not queues:
        return
    table = Table("channel", "waiting", "this run", "rate", "starts", "all sent", "takes")
    for q in queues:
        rate = "no limit set" if q.rate.per_second is None else f"{q.rate.per_second * 60:g}/min"
        if q.rate.phones:
            rate += f" ({q.rate.phones} phone(s))"
        starts = q.starts_at.astimezone(zone).strftime("%d/%m %H:%M") if q.starts_at else "—"
        ends = q.finishes_at.astimezone(zone).strftime("%d/%m %H:%M") if q.finishes_at else "—"
        table.add_row(
            CHANNEL_NAMES.get(q.channel, q.channel),
            str(q.queued),
            str(q.added),
            rate,
            starts,
            ends,
            duration_words(q.seconds(now)),
        )
    Console().print(table)
    click.echo(
        "Send time at the configured rates (CITOYEN_OUTBOX_RATE_*, the gateway phones' "
        "per_minute), within the quiet hours: a wave longer than one window goes on at the "
        "next opening; local times (day/month)."
    )


@survey.command("results")
@click.argument("name")
@click.option(
    "--by",
    type=click.Choice(["region", "cercle", "commune", "national"]),
    default="commune",
    show_default=True,
)
@click.option("--period", type=click.Choice(["week", "month"]), default="month", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--min-n",
    type=click.IntRange(min=1),
    default=None,
    help="Suppress cells below this n (default: the survey's, 10).",
)
@click.pass_context
def survey_results(
    ctx: click.Context, name: str, by: str, period: str, fmt: str, min_n: int | None
) -> None:
    """The perceived-safety indicator of survey NAME per area and period (docs/surveys.md).

    Through the publication module: a cell under the threshold (the survey's min_n, never below
    CITOYEN_PUBLICATION_MIN_COUNT) and the cells that would give it away show no figure at all.
    """
    import csv
    import json

    from citoyen.services.publication.safety import FIELDS, survey_results

    runtime = runtime_of(ctx)
    load_bundle_or_exit(runtime)
    definition = _survey_or_exit(runtime, name)
    results = survey_results(runtime, definition, by, period, min_n=min_n)  # type: ignore[arg-type]
    cells, answers = results.cells, results.answers
    rows = [cell.to_dict() for cell in cells]
    if fmt == "json":
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=list(FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:.1f}%"

    def change(value: float | None) -> str:
        return "—" if value is None else f"{100 * value:+.1f} pts"

    table = Table("area", "period", "n", "feel safe", "95% CI", "change", "don't know")
    shown = [c for c in cells if not c.suppressed]
    for c in shown:
        table.add_row(
            f"{c.area_name} ({c.area_code})",
            c.period,
            str(c.n),
            pct(c.share),
            f"{pct(c.low)} – {pct(c.high)}",
            change(c.change),
            str(c.excluded),
        )
    if not cells:
        if answers:
            click.echo(
                f"{answers} answer(s), none placed at the level '{by}': "
                "try a coarser --by (cercle, region, national)"
            )
        else:
            click.echo("no answers yet")
        return
    Console().print(table)
    click.echo(
        f"{len(cells) - len(shown)} of {len(cells)} cell(s) suppressed (too few answers, or "
        "would give a small cell away)"
    )
    if not shown:
        threshold = definition.indicator.min_n if min_n is None else min_n
        click.echo(
            f"{answers} answer(s); every cell is suppressed (fewer than {threshold} answers, "
            "min-n, or it would give a small cell away): try a coarser --by (cercle, region, "
            "national) or a longer --period"
        )
