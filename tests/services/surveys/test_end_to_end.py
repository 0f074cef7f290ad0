"""A survey end to end over SMS and Telegram: definition file -> run -> messages through the real
Twilio client and python-telegram-bot (against local fakes) -> answers by the real webhooks ->
`citoyen survey results`.
"""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import time_machine
from click.testing import CliRunner
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from citoyen.channels.sms import SmsSender, TwilioSmsProvider
from citoyen.channels.telegram_sender import TelegramSender
from citoyen.cli import main
from citoyen.runtime import Runtime
from citoyen.services.dispatch import Dispatcher
from citoyen.services.setup import ensure_ready
from citoyen.services.surveys import surveys_for
from citoyen.services.surveys.runs import start_run, update_invitations
from citoyen.web import create_app
from tests.channels.sms.conftest import Phone
from tests.channels.sms.test_sender import LocalTwilio
from tests.channels.telegram.conftest import Updates, post
from tests.channels.telegram.fake_bot_api import FakeBotApi
from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN
from tests.services.surveys.conftest import FROM_NUMBER, MORNING, add_contact, invitations

ROOT = Path(__file__).resolve().parents[3]
SURVEY = """\
id: e2e_survey
flow: perceived_safety
schedule:
  cron: "0 9 1 * *"
channels: [telegram, sms]
expiry: 3d
indicator:
  min_n: 1
"""
PHONE = "+22376123456"
TG_USER = 1111111
MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


@pytest.fixture
def e2e_runtime(survey_settings, tmp_path: Path) -> Runtime:
    flows = tmp_path / "flows"
    shutil.copytree(ROOT / "flows", flows)
    shutil.copytree(ROOT / "config", tmp_path / "config")
    (flows / "surveys" / "e2e_survey.yaml").write_text(SURVEY, encoding="utf-8")
    # Two answers: the publication floor is lowered with the survey's min_n so they show.
    runtime = Runtime(
        survey_settings.model_copy(update={"flows_dir": flows, "publication_min_count": 1})
    )
    ensure_ready(runtime)
    return runtime


@pytest.fixture
def twilio_inbox(httpserver: HTTPServer) -> list[dict[str, str]]:
    """What the local Twilio receives on its Messages API."""
    received: list[dict[str, str]] = []

    def handler(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        received.append(form)
        sid = f"SM{len(received):032d}"
        body = {"sid": sid, "account_sid": ACCOUNT_SID, "status": "queued", "to": form["To"]}
        return Response(json.dumps(body), status=201, content_type="application/json")

    httpserver.expect_request(MESSAGES, method="POST").respond_with_handler(handler)
    return received


def test_survey_over_sms_and_telegram_reaches_the_results(
    e2e_runtime: Runtime, httpserver: HTTPServer, twilio_inbox: list
) -> None:
    runtime = e2e_runtime
    fake_api = FakeBotApi(httpserver)
    add_contact(runtime, PHONE, language="fr", area="ML-BKO.commune-i")
    add_contact(runtime, f"telegram:{TG_USER}", language="en", area="ML-BKO.commune-i")
    survey = surveys_for(runtime)["e2e_survey"]

    result = start_run(runtime, survey, MORNING, key="2026-12-01T09:00:00Z", trigger="schedule")
    assert result.per_channel == {"sms": 1, "telegram": 1}

    sms = SmsSender(
        TwilioSmsProvider(
            ACCOUNT_SID,
            AUTH_TOKEN,
            FROM_NUMBER,
            None,
            http_client=LocalTwilio(httpserver.url_for("/")),
        )
    )
    telegram = TelegramSender(fake_api.bot())
    try:
        dispatcher = Dispatcher(
            runtime, {"sms": sms, "telegram": telegram}, channel_limits={}, recipient_limits={}
        )
        stats = dispatcher.run_once(MORNING)
    finally:
        telegram.close()
    assert stats.sent == len(twilio_inbox) + len(fake_api.calls_to("sendMessage"))

    catalog = runtime.bundle.catalog
    # The SMS invitation: the first question with numbered answers, and how to stop.
    sms_text = "\n\n".join(form["Body"] for form in twilio_inbox)
    assert all(form["To"] == PHONE for form in twilio_inbox)
    assert catalog.render("perceived_safety.safe_after_dark", "fr", {}) in sms_text
    assert (
        "1. " + catalog.render("perceived_safety.safe_after_dark.very_safe", "fr", {}) in sms_text
    )
    assert catalog.render("survey.stop_notice", "fr", {}) in sms_text
    # The Telegram invitation: the question under its buttons, and how to stop.
    [sent] = fake_api.calls_to("sendMessage")
    assert sent.params["chat_id"] == TG_USER
    assert catalog.render("survey.stop_notice", "en", {}) in sent.params["text"]
    keys = [row[0]["callback_data"] for row in sent.params["reply_markup"]["inline_keyboard"]]
    assert keys[0] == "very_safe" and "never_alone" in keys

    # The citizens answer through the real webhooks, an hour after the invitations: the
    # webhooks read the clock, so the clock is the survey's too, whatever today's date is.
    app = create_app({"TESTING": True}, runtime=runtime)
    client = app.test_client()
    with time_machine.travel(MORNING + timedelta(hours=1), tick=True):
        phone = Phone(client, PHONE)
        phone.say("2")  # fairly safe
        phone.say("1")  # never
        last = phone.say("1")
        assert catalog.render("perceived_safety.thanks", "fr", {}) in " ".join(last)
        updates = Updates(TG_USER)
        for key in ("never_alone", "dont_know", "never"):
            response = post(client, updates.button(key))
            assert response.status_code == 200

    assert update_invitations(runtime, MORNING) == {"completed": 2}
    assert {i.status for i in invitations(runtime)} == {"completed"}

    runner = CliRunner()
    out = runner.invoke(
        main,
        ["survey", "results", "e2e_survey", "--by", "commune", "--format", "json"],
        obj={"runtime": runtime},
    )
    assert out.exit_code == 0, out.output
    # Every commune is listed (a missing row would tell a zero); the others have no answers.
    [cell] = [c for c in json.loads(out.stdout) if not c["suppressed"]]
    # One "fairly safe" and one "never walks alone after dark": 1 of 2 feel safe.
    # The answers were stored at the time of their requests: November 2026 in Bamako.
    assert cell["area_code"] == "ML-BKO.commune-i" and cell["period"] == "2026-11"
    assert (cell["n"], cell["safe"], cell["excluded"]) == (2, 1, 0)
    assert cell["share"] == pytest.approx(0.5) and not cell["suppressed"]
    # What the admin dashboard charts: the same cells, by survey name.
    from citoyen.services.surveys.indicators import series_for

    assert [c.to_dict() for c in series_for(runtime, "e2e_survey", "commune")] == [cell]
    table = runner.invoke(
        main, ["survey", "results", "e2e_survey", "--by", "region"], obj={"runtime": runtime}
    )
    assert table.exit_code == 0 and "50.0%" in table.stdout
    csv_out = runner.invoke(
        main, ["survey", "results", "e2e_survey", "--format", "csv"], obj={"runtime": runtime}
    )
    assert csv_out.stdout.splitlines()[0].startswith("area_code,area_name,level,period,n,safe")
    assert PHONE[4:] not in out.stdout + table.stdout + csv_out.stdout
