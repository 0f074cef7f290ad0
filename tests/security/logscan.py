"""A pytest plugin: every log line the test suite produces is scanned for test identifiers.

Tests use phone numbers such as ``+22376000000`` and Telegram ids such as ``1111111``; they are
collected from the test sources themselves (any ``223`` + 8 digits, ``telegram:ID``, the user and
chat ids of the recorded Telegram updates), so a new test number is covered without a list to
keep. For the whole session the root logger records everything (DEBUG, libraries included) into
a handler that formats each record as a log file would and looks for those numbers, plain or
written with separators. Any hit fails the run at the end, naming the test and the line.

The redaction is installed as the entry points install it (:func:`citoyen.logredact.install`),
so this checks what an operator's logs would hold.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from citoyen import logredact

TESTS = Path(__file__).resolve().parents[1]
PHONE = re.compile(r"(?:\+|%2B|00)?223[ .\-]?(\d{8})")
TELEGRAM = re.compile(r"telegram:(\d{6,})")
TELEGRAM_JSON_ID = re.compile(r'"(?:id|user_id|chat_id)"\s*:\s*(\d{7,})')
SEPARATORS = re.compile(r"[ .\-]")
# Logged loudly at DEBUG without ever naming a citizen; statement logs would drown the scan.
QUIET = ("sqlalchemy", "alembic", "faker", "PIL", "matplotlib", "urllib3.connectionpool")


def collect_test_identifiers(root: Path = TESTS) -> set[str]:
    """Every phone number (its 8 national digits) and Telegram id the tests use."""
    found: set[str] = set()
    for path in root.rglob("*"):
        if (
            path.suffix not in {".py", ".json", ".yaml", ".yml", ".txt", ".md"}
            or not path.is_file()
        ):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found.update(m.group(1) for m in PHONE.finditer(text))
        found.update(m.group(1) for m in TELEGRAM.finditer(text))
        found.update(m.group(1) for m in TELEGRAM_JSON_ID.finditer(text))
    return found


def find_leaks(line: str, identifiers: set[str] | re.Pattern[str]) -> list[str]:
    """The identifiers ``line`` shows, plainly or with spaces, dots or dashes between digits."""
    pattern = identifiers if isinstance(identifiers, re.Pattern) else _pattern(identifiers)
    squeezed = SEPARATORS.sub("", line)
    return sorted({m.group(0) for text in (line, squeezed) for m in pattern.finditer(text)})


def _pattern(identifiers: set[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(map(re.escape, identifiers), key=len, reverse=True))
    # National digits alone or after the country code (223, 00223), digits on neither side.
    return re.compile(
        rf"(?<!\d)(?:(?:00)?223)?(?:{alternatives})(?!\d)" if alternatives else r"(?!x)x"
    )


class LeakScanner(logging.Handler):
    """Formats each record as a log file would and keeps the lines that show an identifier."""

    def __init__(self, identifiers: set[str]) -> None:
        super().__init__(level=logging.DEBUG)
        self.pattern = _pattern(identifiers)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.current_test = "(outside tests)"
        self.leaks: list[tuple[str, str, list[str]]] = []
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        try:
            line = self.format(record)
        except Exception:  # a record that cannot be formatted cannot leak through a handler
            return
        hits = find_leaks(line, self.pattern)
        if hits:
            self.leaks.append((self.current_test, line[:500], hits))


_scanner: LeakScanner | None = None
_saved: dict[str, int] = {}


def pytest_configure(config: pytest.Config) -> None:
    global _scanner
    logredact.install()
    _scanner = LeakScanner(collect_test_identifiers())
    root = logging.getLogger()
    _saved["root"] = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(_scanner)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> object:
    if _scanner is not None:
        _scanner.current_test = item.nodeid
    yield
    if _scanner is not None:
        _scanner.current_test = "(between tests)"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _scanner is None:
        return
    logging.getLogger().removeHandler(_scanner)
    logging.getLogger().setLevel(_saved.get("root", logging.WARNING))
    if _scanner.leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        session.config.stash[_LEAKS] = _scanner.leaks


_LEAKS = pytest.StashKey[list]()


def pytest_terminal_summary(
    terminalreporter: object, exitstatus: int, config: pytest.Config
) -> None:
    leaks = config.stash.get(_LEAKS, None)
    write = terminalreporter.write_line  # type: ignore[attr-defined]
    if not leaks:
        if _scanner is not None:
            write(f"log scan: {_scanner.records} log records, no test phone number or Telegram id")
        return
    terminalreporter.section("test identifiers in logs", red=True)  # type: ignore[attr-defined]
    for test, line, hits in leaks[:50]:
        write(f"{test}: {', '.join(hits)} in: {line}")
    write(f"{len(leaks)} log line(s) show a test phone number or Telegram id")
