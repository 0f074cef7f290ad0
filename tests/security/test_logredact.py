"""The log redaction: what it masks, what it keeps, and that every record passes through it."""

from __future__ import annotations

import logging

import pytest

from citoyen import logredact
from tests.security.logscan import collect_test_identifiers, find_leaks

NUMBER = "+22376123456"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("from tel:+22376123456 node ask", "from tel:…56 node ask"),
        ("telegram:987654321 said hi", "telegram:…21 said hi"),
        ("telegram:-1001234567890", "telegram:…90"),
        ("From=%2B22376123456&Body=x", "From=+…56&Body=x"),
        ("call +223 76 12 34 56 ended", "call +…56 ended"),
        ("00223 76 12 34 56", "+…56"),
        ("local number 76123456.", "local number …56."),
        ("{'chat_id': 1234567, 'message_id': 501}", "{'chat_id': …67, 'message_id': 501}"),
        ('{"id": 612000001}', '{"id": …01}'),
        (
            "GET /bot7000000001:AAFakeTokenForTests_0123456789abcdef/getMe",
            "GET /bot<bot-token>/getMe",
        ),
    ],
)
def test_identifiers_are_masked(text: str, shown: str) -> None:
    assert logredact.redact(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "report 482-1937 routed to police-bamako",
        "Citoyen 4821: flow report node category -> waiting",
        "SM0123456789abcdef0123456789abcdef delivered",
        "2026-11-28 01:02:03,123 outbox row 1234 sent after 3 attempts",
        "withheld:CA0123456789abcdef0123456789abcdef",
    ],
)
def test_ordinary_text_is_kept(text: str) -> None:
    assert logredact.redact(text) == text


def test_every_logger_is_redacted_including_arguments_and_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A library's logger, %-arguments and an exception message are all redacted before any
    handler (here pytest's) sees the record."""
    logredact.install()
    assert logredact.installed()
    log = logging.getLogger("some.library")
    with caplog.at_level(logging.DEBUG):
        log.debug("request from %s", NUMBER)
        try:
            raise ValueError(f"bad sender {NUMBER}")
        except ValueError:
            log.exception("failed")
    text = "\n".join(
        [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    )
    assert "request from +…56" in text
    assert "bad sender +…56" in text  # the traceback, formatted and redacted
    assert "76123456" not in caplog.text


def test_filter_redacts_records_built_by_a_foreign_factory() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "to %s", (NUMBER,), None)
    assert logredact.RedactingFilter().filter(record)
    assert record.getMessage() == "to +…56"


def test_entry_points_install_the_redaction(settings: object) -> None:
    """The web app (gunicorn) and the CLI (worker, bot) install it on start."""
    from click.testing import CliRunner

    from citoyen.cli import main
    from citoyen.web import create_app

    previous = logging.getLogRecordFactory()
    try:
        logredact._installed.clear()
        logging.setLogRecordFactory(logging.LogRecord)
        create_app({"SETTINGS": settings, "TESTING": True})
        assert logredact.installed()

        logredact._installed.clear()
        logging.setLogRecordFactory(logging.LogRecord)
        CliRunner().invoke(main, ["locales", "status"])
        assert logredact.installed()
    finally:
        logredact._installed.clear()
        logging.setLogRecordFactory(previous)
        logredact.install()


def test_the_session_scan_knows_the_test_numbers_and_finds_them() -> None:
    """The numbers tests use are collected from their sources, and a line showing one (even
    written with spaces) is a leak; its redacted form is not."""
    identifiers = collect_test_identifiers()
    assert "76000000" in identifiers  # +22376000000, the simulator's default sender
    assert "1111111" in identifiers  # the Telegram user of the recorded updates
    line = "INFO citoyen: sms from +223 76 00 00 00"
    assert find_leaks(line, identifiers) == ["22376000000"]
    assert find_leaks(logredact.redact(line), identifiers) == []
