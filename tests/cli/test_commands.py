"""The `citoyen` command, driven through click's runner (and a real process for `run`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from citoyen.cli import main
from citoyen.config import Settings

ROOT = Path(__file__).resolve().parents[2]
BROKEN = ROOT / "tests" / "engine" / "fixtures" / "broken"
AREAS = ROOT / "tests" / "fixtures" / "areas"


@pytest.fixture
def invoke(settings: Settings):
    runner = CliRunner()

    def run(*args: str, input: str | None = None, s: Settings | None = None):
        return runner.invoke(main, list(args), input=input, obj={"settings": s or settings})

    return run


def test_flows_check_passes_on_shipped_flows(invoke) -> None:
    result = invoke("flows", "check")
    assert result.exit_code == 0, result.output
    assert re.search(r"^0 error\(s\), \d+ warning\(s\)$", result.output, re.M)


def test_flows_check_says_which_languages_are_live_where(invoke) -> None:
    result = invoke("flows", "check")
    said = " ".join(result.output.split())  # the console wraps long lines
    assert (
        "Languages live per channel: fr: SMS, Telegram, calls (text-to-speech, Polly.Lea)" in said
    )
    assert " bm: SMS, Telegram; not offered on calls (" in said


def test_flows_check_fails_on_a_voice_twilio_does_not_list(
    invoke, settings: Settings, tmp_path: Path
) -> None:
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    path = tmp_path / "config" / "settings.yaml"
    text = path.read_text(encoding="utf-8")
    assert "  fr: Polly.Lea\n" in text
    path.write_text(text.replace("  fr: Polly.Lea\n", "  fr: Polly.Joanna\n"), encoding="utf-8")
    result = invoke("flows", "check", s=settings.model_copy(update={"flows_dir": flows}))
    assert result.exit_code == 1, result.output
    said = " ".join(result.output.split())  # the console wraps long lines
    assert "tts_voices: fr: Polly.Joanna is not a fr-FR voice in Twilio's table" in said


@pytest.mark.parametrize("kind", ["bad_yaml", "unknown_node", "cycle", "too_many_options"])
def test_flows_check_fails_on_broken_flows(invoke, settings: Settings, kind: str) -> None:
    broken = settings.model_copy(
        update={"flows_dir": BROKEN / kind / "flows", "locales_dir": BROKEN / kind / "locales"}
    )
    result = invoke("flows", "check", s=broken)
    assert result.exit_code == 1
    assert re.search(r"^error: \S+\.yaml(:\d+)?: ", result.output, re.M), result.output


def test_chat_sms_makes_a_report_that_export_lists(invoke) -> None:
    script = "\n".join(["Bonjour", "1", "2", "1", "1", "2", "Vol de moto au marché", "1", "2"])
    result = invoke("chat", "--channel", "sms", "--from", "+22376000000", input=script + "\n")
    assert result.exit_code == 0, result.output
    assert "1. " in result.output and "SMS segment" in result.output
    reference = re.search(r"\b(\d{3}-\d{4})\b", result.output.split("\n")[-3:][0] + result.output)
    assert reference
    exported = invoke("reports", "export", "--format", "json")
    assert exported.exit_code == 0, exported.output
    rows = json.loads(exported.stdout)
    assert len(rows) == 1
    row = rows[0]
    assert row["reference"] in result.output
    assert row["channel"] == "sms" and row["category"] == "theft"
    assert row["area_code"] == "ML-BKO.commune-i"
    assert row["reporter"].startswith("Citoyen ")
    assert "76000000" not in exported.stdout

    # Each stakeholder the report went to, with its queue entry's status (new: still open).
    assert row["stakeholders"], row
    assert {s["status"] for s in row["stakeholders"]} == {"open"}
    assert all(s["code"] and s["name"] for s in row["stakeholders"])

    csv_out = invoke("reports", "export", "--format", "csv")
    assert csv_out.stdout.splitlines()[0].startswith("reference,created_at,channel")
    assert csv_out.stdout.splitlines()[0].endswith(",reporter,stakeholders")
    assert row["reference"] in csv_out.stdout
    cell = "; ".join(f"{s['code']} (open)" for s in row["stakeholders"])
    assert cell in csv_out.stdout


def test_chat_voice_shows_keypad_prompts(invoke) -> None:
    script = "\n".join(["1", "1", "1", "1", "1", "2", "Des coups de feu la nuit", "2", "1"])
    result = invoke("chat", "--channel", "voice", "--from", "+22376000001", input=script + "\n")
    assert result.exit_code == 0, result.output
    from citoyen.i18n import Catalog

    said = Catalog.load(ROOT / "locales").render("system.language_option", "fr", {"n": 1}, "voice")
    # What a caller hears, plainly: the voice and language of each <Say>.
    assert f"< [French text-to-speech] {said}\n" in result.output
    assert "< [English text-to-speech] For English, press 2.\n" in result.output
    assert "(one key)" in result.output and "(recording" in result.output
    rows = json.loads(invoke("reports", "export", "--format", "json").stdout)
    assert rows[0]["channel"] == "voice"
    assert rows[0]["recording_url"] == "simulator:Des coups de feu la nuit"


def test_chat_telegram_shows_buttons(invoke) -> None:
    result = invoke("chat", "--channel", "telegram", "--from", "123456", input="Salut\n3\n")
    assert result.exit_code == 0, result.output
    assert "[1: Français]" in result.output and "[3: English]" in result.output
    from citoyen.i18n import Catalog

    category_question = Catalog.load(ROOT / "locales").render("report.category", "en", {})
    assert category_question in result.output


def test_chat_telegram_reads_commands_as_the_bot_does(invoke) -> None:
    # /help and /language mean what they mean in the real bot (one reading of typed text).
    result = invoke(
        "chat", "--channel", "telegram", "--from", "123457", input="Salut\n3\n/help\n/language\n"
    )
    assert result.exit_code == 0, result.output
    from citoyen.i18n import Catalog

    catalog = Catalog.load(ROOT / "locales")
    assert catalog.render("system.help", "en", {}, "telegram") in result.output
    assert result.output.count(catalog.render("system.language_prompt", "en", {})) == 1


def test_chat_whatsapp_shows_the_24_hour_window(invoke) -> None:
    script = ["Bonjour", "1", "2", "1", "1", "2", "/voice Vol de moto", "1", "2", "/wait 25", "1"]
    result = invoke(
        "chat", "--channel", "whatsapp", "--from", "+22376000002", input="\n".join(script) + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "[window open 24 h more: notices go free-form]" in result.output
    closed = "[window closed: status held (no template), staff_reply held (no template), survey"
    assert closed in result.output
    # Writing again opens the window again.
    after_wait = result.output.split(closed, 1)[1]
    assert "[window open 24 h more" in after_wait
    rows = json.loads(invoke("reports", "export", "--format", "json").stdout)
    assert rows[0]["channel"] == "whatsapp"
    assert rows[0]["recording_url"] == "simulator:Vol de moto"


def test_users_create(invoke, settings: Settings) -> None:
    result = invoke("users", "create", "--email", "Awa@example.org", "--role", "analyst")
    assert result.exit_code == 0, result.output
    assert "created analyst awa@example.org" in result.output
    assert re.search(r"password: \S{12,}", result.output)
    again = invoke("users", "create", "--email", "awa@example.org", "--role", "analyst")
    assert again.exit_code != 0 and "already exists" in again.output
    agent = invoke("users", "create", "--email", "b@example.org", "--role", "agent")
    assert agent.exit_code != 0 and "--stakeholder" in agent.output
    # Audited like an account made in the admin; refusals leave no trace.
    from sqlmodel import Session, select

    from citoyen.db import get_engine
    from citoyen.models import AuditEvent, User

    with Session(get_engine(settings.resolved_database_url)) as session:
        [event] = session.exec(select(AuditEvent).where(AuditEvent.action == "user_created")).all()
        awa = session.exec(select(User).where(User.email == "awa@example.org")).one()
    assert (event.user_id, event.target_type, event.target_id) == (None, "user", awa.id)
    assert event.data["email"] == "awa@example.org" and event.data["role"] == "analyst"
    assert event.data["via"] == "citoyen users create"


def test_locales_status(invoke) -> None:
    result = invoke("locales", "status")
    assert result.exit_code == 0, result.output
    for name in ("Français", "Bamanankan", "English"):
        assert name in result.output


def test_areas_import_good_and_bad(invoke) -> None:
    assert invoke("areas", "seed").exit_code == 0
    good = invoke("areas", "import", str(AREAS / "cod_ab_small.csv"))
    assert good.exit_code == 0, good.output
    bad = invoke("areas", "import", str(AREAS / "cod_ab_bad.csv"))
    assert bad.exit_code != 0
    assert re.search(r"row \d+", bad.output) and "nothing was imported" in bad.output


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        env = field.validation_alias.choices[0]  # type: ignore[union-attr]
        assert f"`{env}`" in readme, f"{env} ({name}) is not in the README's configuration table"


def test_every_command_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, command in main.commands.items():
        sub = getattr(command, "commands", None)
        for full in [f"citoyen {name} {s}" for s in sub] if sub else [f"citoyen {name}"]:
            assert f"`{full}" in readme, f"`{full}` is not documented in the README"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_env(tmp_path: Path, port: int) -> dict[str, str]:
    """`citoyen run` in a fresh instance folder (its own SQLite database) on ``port``."""
    env = {
        **os.environ,
        "CITOYEN_INSTANCE_DIR": str(tmp_path / "instance"),
        "CITOYEN_PORT": str(port),
    }
    env.pop("CITOYEN_DATABASE_URL", None)
    return env


def test_run_first_start_migrates_and_prints_admin_login(tmp_path: Path) -> None:
    port = _free_port()
    env = _run_env(tmp_path, port)
    proc = subprocess.Popen(
        [sys.executable, "-m", "citoyen.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    output = ""
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:
                time.sleep(0.3)
        assert health is not None
        assert (health["status"], health["database"], health["spool_depth"]) == ("ok", "ok", 0)
        assert health["scheduler_lease_held"] in (True, False)  # the worker may not hold it yet
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert (tmp_path / "instance" / "citoyen.db").exists()
    assert "admin@citoyen.local" in output
    assert re.search(r"password: \S{12,}", output)
    assert "citoyen chat --channel sms" in output
    assert "worker started" in output
    assert "Languages live per channel:" in output
    assert "bm: SMS, Telegram; not offered on calls" in output


def test_run_on_a_busy_port_fails_before_creating_anything(tmp_path: Path) -> None:
    """No database, no one-time password, no worker for a service that cannot listen."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "citoyen.cli", "run"],
            env=_run_env(tmp_path, port),
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=120,
        )
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert f"cannot listen on 127.0.0.1:{port}" in output
    assert not (tmp_path / "instance" / "citoyen.db").exists()
    assert "password" not in output
    assert "worker started" not in output


def test_users_create_coordinator_needs_an_area(invoke) -> None:
    invoke("areas", "seed")
    missing = invoke("users", "create", "--email", "c@example.org", "--role", "coordinator")
    assert missing.exit_code != 0 and "--area" in missing.output
    unknown = invoke(
        "users", "create", "--email", "c@example.org", "--role", "coordinator", "--area", "ML-99"
    )
    assert unknown.exit_code != 0 and "unknown area" in unknown.output
    made = invoke(
        "users",
        "create",
        "--email",
        "c@example.org",
        "--role",
        "coordinator",
        "--area",
        "ML-BKO",
        "--language",
        "en",
    )
    assert made.exit_code == 0, made.output
    assert "created coordinator c@example.org" in made.output


@pytest.mark.parametrize("upkeep", [None, "autovacuum is off"])
def test_db_upgrade_warns_when_the_databases_upkeep_is_off(
    invoke, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, upkeep: str | None
) -> None:
    import citoyen.db

    monkeypatch.setattr(citoyen.db, "maintenance_warning", lambda _engine: upkeep)
    with caplog.at_level("WARNING", logger="citoyen.cli"):
        result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    warned = [r.getMessage() for r in caplog.records if r.name == "citoyen.cli"]
    assert warned == ([upkeep] if upkeep else [])


def test_areas_list_finds_codes_under_an_area_and_by_name(invoke) -> None:
    assert invoke("areas", "seed").exit_code == 0
    under = invoke("areas", "list", "--under", "ML-3.kadiolo")
    assert under.exit_code == 0, under.output
    said = " ".join(under.output.split())
    assert "ML-3.kadiolo.zegoua" in said and "ML-3.kadiolo.nimbougou" in said
    assert "9 area(s)" in said  # Kadiolo's nine communes, not Kadiolo itself
    assert "ML-3.kadiolo " not in said
    found = invoke("areas", "list", "--search", "zegoua")  # accents ignored: Zégoua
    said = " ".join(found.output.split())
    assert re.search(r"ML-3\.kadiolo\.zegoua\W+commune\W+Zégoua\W+Zégoua, Kadiolo, Sikasso", said)
    assert "1 area(s)" in said
    unknown = invoke("areas", "list", "--under", "ML-99")
    assert unknown.exit_code != 0 and "no area has the code 'ML-99'" in unknown.output
