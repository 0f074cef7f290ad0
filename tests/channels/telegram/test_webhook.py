"""``POST /telegram/webhook`` end to end: checks, dedupe, whole reports, outbox, delivery.

Updates are the Bot API's own shapes (fixtures/), posted with the Flask test client; replies are
queued in the outbox and then delivered by the real dispatcher through the real
python-telegram-bot ``Bot``, talking HTTP to the local fake Bot API (fake_bot_api.py).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from citoyen.models import Area, Attachment, Conversation, Message, Outbox, Report
from citoyen.runtime import Runtime
from citoyen.services.areas.menus import invalidate_area_cache
from citoyen.services.media import fetch_pending_attachments
from citoyen.services.places import load_area_points
from tests.channels.telegram.conftest import (
    BM_USER,
    FR_USER,
    SECRET,
    Updates,
    contact,
    counts,
    dispatch,
    outbox,
    post,
)
from tests.channels.telegram.fake_bot_api import FakeBotApi

CATEGORY_KEYS = (
    "armed_attack",
    "theft",
    "violence",
    "conflict",
    "suspicious",
    "banditry",
    "disaster",
    "other",
)
COMMUNE_IV = "ML-BKO.commune-iv"
DESCRIPTIONS = {
    "fr": "Deux motos volées devant la mosquée de Lafiabougou cette nuit.",
    "bm": "Sonw ye moto fila ta Lafiabugu misiri da la su fɛ.",
}


def t(runtime: Runtime, key: str, lang: str, **params: Any) -> str:
    """A text as the citizen reads it (emergency numbers filled in)."""
    catalog = runtime.bundle.catalog
    return catalog.render(key, lang, {**runtime.conversations.emergency_params(), **params})


def last_body(runtime: Runtime) -> str:
    return outbox(runtime)[-1].body or ""


def last_buttons(runtime: Runtime) -> list[list[str]]:
    return outbox(runtime)[-1].payload["buttons"]


def press(client: FlaskClient, update: dict[str, Any]) -> None:
    """A button press: 200, and the callback query answered in the webhook response."""
    response = post(client, update)
    assert response.status_code == 200
    assert response.get_json() == {
        "method": "answerCallbackQuery",
        "callback_query_id": update["callback_query"]["id"],
    }


def say(client: FlaskClient, update: dict[str, Any]) -> None:
    response = post(client, update)
    assert response.status_code == 200, response.get_data(as_text=True)


def conversation(runtime: Runtime) -> Conversation:
    with Session(runtime.engine) as session:
        return session.exec(select(Conversation).order_by(Conversation.id.desc())).first()


def reports(runtime: Runtime) -> list[Report]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Report)).all())


def area_code(runtime: Runtime, area_id: int | None) -> str | None:
    with Session(runtime.engine) as session:
        area = session.get(Area, area_id) if area_id is not None else None
        return area.code if area is not None else None


def attachments(runtime: Runtime) -> list[Attachment]:
    with Session(runtime.engine) as session:
        return list(session.exec(select(Attachment).order_by(Attachment.id)).all())


def start_report(client: FlaskClient, u: Updates, lang: str = "fr") -> None:
    """/start, language, category "theft": the place menu is showing."""
    say(client, u.command("/start"))
    press(client, u.button(lang))
    press(client, u.button("theft"))


# --- checking the sender ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [None, "", "wrong", SECRET + "x", SECRET[:-1], SECRET.upper()],
    ids=["missing", "empty", "wrong", "longer", "shorter", "case"],
)
def test_bad_secret_is_refused_and_nothing_stored(
    client: FlaskClient, runtime: Runtime, caplog: pytest.LogCaptureFixture, header: str | None
) -> None:
    caplog.set_level(logging.INFO)
    response = post(client, Updates().text("Bonjour"), secret=header)
    assert response.status_code == 403
    assert counts(runtime) == {"Contact": 0, "Message": 0, "Outbox": 0}
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1
    assert str(FR_USER) not in refusals[0]  # the log names no user


@pytest.mark.parametrize("missing", ["telegram_webhook_secret", "telegram_bot_token"])
def test_unconfigured_webhook_refuses_and_says_why(
    client: FlaskClient,
    runtime: Runtime,
    caplog: pytest.LogCaptureFixture,
    missing: str,
) -> None:
    runtime.settings = runtime.settings.model_copy(update={missing: None})
    caplog.set_level(logging.INFO)
    response = post(client, Updates().text("Bonjour"))
    assert response.status_code == 403
    assert counts(runtime) == {"Contact": 0, "Message": 0, "Outbox": 0}
    assert any(missing.upper() in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '"update"',
        "{}",
        '{"update_id": "5"}',
        '{"update_id": true}',
        '{"update_id": 1.5}',
        '{"update_id": -3}',
        '{"update_id": null}',
        '{"update_id": 5, "message": "hello"}',
        '{"update_id": 5, "message": {"message_id": 1}}',
        '{"update_id": 5, "message": {"message_id": 1, "date": "hier", '
        '"chat": {"id": 1, "type": "private"}}}',
        '{"update_id": 5, "callback_query": {"id": "q"}}',
        '{"update_id": 5, "callback_query": ["q"]}',
        '{"update_id": 5, "my_chat_member": {"chat": 3}}',
    ],
)
def test_malformed_updates_get_400(client: FlaskClient, runtime: Runtime, body: str) -> None:
    response = post(client, body)
    assert response.status_code == 400
    assert counts(runtime) == {"Contact": 0, "Message": 0, "Outbox": 0}


def test_oversized_body_is_refused(client: FlaskClient, runtime: Runtime) -> None:
    update = Updates().text("x" * (1024 * 1024 + 10))
    response = post(client, update)
    assert response.status_code == 413
    assert counts(runtime) == {"Contact": 0, "Message": 0, "Outbox": 0}


@pytest.mark.parametrize("name", ["edited", "group"])
def test_ignored_updates_get_200_and_store_nothing(
    client: FlaskClient, runtime: Runtime, name: str
) -> None:
    u = Updates()
    say(client, u.command("/start"))
    before = counts(runtime)
    if name == "edited":
        update = u.edited()
    else:
        from tests.channels.telegram.conftest import fixture

        update = fixture("group_message")
    say(client, update)
    assert counts(runtime) == before


def test_update_of_unused_kind_gets_200(client: FlaskClient, runtime: Runtime) -> None:
    inline_query = {
        "id": "9123",
        "from": {"id": FR_USER, "is_bot": False, "first_name": "Aminata"},
        "query": "vol",
        "offset": "",
    }
    say(client, {"update_id": 42, "inline_query": inline_query})
    say(client, {"update_id": 43})
    assert counts(runtime) == {"Contact": 0, "Message": 0, "Outbox": 0}


# --- dedupe ---------------------------------------------------------------------------------------


def test_repeated_update_changes_nothing(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    say(client, u.command("/start"))
    update = u.button("fr")
    press(client, update)
    before = counts(runtime)
    state = conversation(runtime).state
    press(client, update)  # Telegram sends it again: answered the same, nothing recorded
    assert counts(runtime) == before
    assert conversation(runtime).state == state


def test_concurrent_copies_of_one_update_are_handled_once(app: Any, runtime: Runtime) -> None:
    u = Updates()
    say(app.test_client(), u.command("/start"))
    update = u.button("fr")
    barrier = threading.Barrier(2)
    statuses: list[int] = []

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(post(client, update).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert statuses == [200, 200]
    with Session(runtime.engine) as session:
        copies = session.exec(
            select(Message).where(Message.provider_id == str(update["update_id"]))
        ).all()
    assert len(copies) == 1
    keys = [row.idempotency_key for row in outbox(runtime)]
    assert keys.count(f"tg:{update['update_id']}:0") == 1
    assert len(keys) == 2  # the language menu, then welcome + categories once


# --- whole reports --------------------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "user"), [("fr", FR_USER), ("bm", BM_USER)])
def test_full_report_by_buttons_then_delivered(
    client: FlaskClient,
    runtime: Runtime,
    fake_api: FakeBotApi,
    sender: Any,
    lang: str,
    user: int,
) -> None:
    u = Updates(user)
    say(client, u.command("/start"))
    assert last_body(runtime) == t(runtime, "system.language_prompt", "fr")
    assert [b[1] for b in last_buttons(runtime)] == ["fr", "bm", "en"]
    press(client, u.button(lang))
    assert last_body(runtime) == (
        t(runtime, "report.welcome", lang) + "\n\n" + t(runtime, "report.category", lang)
    )
    assert last_buttons(runtime) == [
        [t(runtime, f"report.category.{key}", lang), key] for key in CATEGORY_KEYS
    ]
    press(client, u.button("theft"))
    assert last_buttons(runtime)[0] == ["Bamako", "ML-BKO"]
    press(client, u.button("ML-BKO"))
    assert [b[1] for b in last_buttons(runtime)][3] == COMMUNE_IV
    press(client, u.button(COMMUNE_IV))
    assert last_body(runtime) == t(runtime, "report.danger", lang)
    press(client, u.button("no"))
    assert last_body(runtime) == t(runtime, "report.describe", lang)
    assert last_buttons(runtime) == []
    say(client, u.text(DESCRIPTIONS[lang]))
    press(client, u.button("yes"))  # anonymous
    press(client, u.button("no"))  # no surveys

    [report] = reports(runtime)
    assert report.channel == "telegram"
    assert report.language == lang
    assert report.category == "theft"
    assert area_code(runtime, report.area_id) == COMMUNE_IV
    assert report.description == DESCRIPTIONS[lang]
    assert report.anonymous is True
    assert report.urgency == "normal"
    assert last_body(runtime) == t(runtime, "report.confirm", lang, reference=report.reference)

    rows = outbox(runtime)
    assert len(rows) == 9  # one message per update: texts ride with the question after them
    assert {(r.channel, r.kind, r.status) for r in rows} == {("telegram", "reply", "pending")}
    assert len({r.idempotency_key for r in rows}) == 9

    stats = dispatch(runtime, sender)
    assert stats.sent == 9
    sent = fake_api.calls_to("sendMessage")
    assert [c.params["chat_id"] for c in sent] == [user] * 9
    assert [c.params["text"] for c in sent] == [r.body for r in rows]
    category_call = sent[1]
    assert category_call.params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": t(runtime, f"report.category.{key}", lang), "callback_data": key}]
            for key in CATEGORY_KEYS
        ]
    }
    assert "reply_markup" not in sent[5].params  # the free-text question has no buttons
    assert report.reference in sent[-1].params["text"]
    delivered = outbox(runtime)
    assert {r.status for r in delivered} == {"sent"}
    assert all(r.provider_id and r.provider_id.isdigit() for r in delivered)
    assert all(str(user) not in (r.provider_id or "") for r in delivered)
    assert len(fake_api.calls_to("getMe")) == 1  # one bot for the whole pass


def test_typed_label_and_number_work_like_buttons(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    say(client, u.command("/start"))
    press(client, u.button("fr"))
    say(client, u.text("Vol ou cambriolage"))  # the button's label, typed
    assert last_buttons(runtime)[0] == ["Bamako", "ML-BKO"]
    say(client, u.text("1"))  # its number
    assert COMMUNE_IV in [b[1] for b in last_buttons(runtime)]


def test_long_option_key_travels_hashed_and_comes_back(
    client: FlaskClient, runtime: Runtime
) -> None:
    long_code = "ML-BKO." + "quartier-au-nom-tres-long-" * 3
    with Session(runtime.engine) as session:
        bamako = session.exec(select(Area).where(Area.code == "ML-BKO")).one()
        session.add(Area(code=long_code, name="Commune VII", level="commune", parent_id=bamako.id))
        session.commit()
    invalidate_area_cache()
    u = Updates()
    start_report(client, u)
    press(client, u.button("ML-BKO"))
    data = dict((label, key) for label, key in last_buttons(runtime))["Commune VII"]
    assert data != long_code and len(data.encode()) <= 64
    press(client, u.button(data))
    assert conversation(runtime).state["answers"]["place"] == long_code


# --- commands -------------------------------------------------------------------------------------


def test_stop_then_start_opts_out_and_back_in(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    say(client, u.command("/start"))
    press(client, u.button("fr"))
    say(client, u.command("/stop"))
    assert contact(runtime).opted_out is True
    assert last_body(runtime) == t(runtime, "system.stopped", "fr")
    say(client, u.command("/start"))
    assert contact(runtime).opted_out is False
    assert last_body(runtime).startswith(t(runtime, "system.started", "fr"))
    assert [b[1] for b in last_buttons(runtime)] == list(CATEGORY_KEYS)  # language remembered


def test_start_mid_flow_starts_over(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    start_report(client, u)
    first = conversation(runtime)
    say(client, u.command("/start"))
    assert contact(runtime).opted_out is False
    assert last_body(runtime) == (  # the language is remembered
        t(runtime, "report.welcome", "fr") + "\n\n" + t(runtime, "report.category", "fr")
    )
    again = conversation(runtime)
    assert again.id != first.id and again.state["answers"].get("category") is None
    with Session(runtime.engine) as session:
        assert session.get(Conversation, first.id).status == "interrupted"


def test_help_and_language_commands(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    say(client, u.command("/start"))
    press(client, u.button("fr"))
    say(client, u.command("/help"))
    assert last_body(runtime) == (
        t(runtime, "system.help", "fr") + "\n\n" + t(runtime, "report.category", "fr")
    )
    say(client, u.command("/language"))
    assert last_body(runtime) == t(runtime, "system.language_prompt", "fr")
    press(client, u.button("bm"))
    assert last_body(runtime) == t(runtime, "report.category", "bm")
    assert contact(runtime).language == "bm"


# --- places from a shared location --------------------------------------------------------------


def _clear_points(runtime: Runtime) -> None:
    with Session(runtime.engine) as session:
        for area in session.exec(select(Area).where(Area.latitude.is_not(None))).all():
            area.latitude = area.longitude = None
        session.commit()


def _load_points(runtime: Runtime) -> None:
    with Session(runtime.engine) as session:
        load_area_points(session)
        session.commit()


def test_location_near_commune_iv_is_that_commune(client: FlaskClient, runtime: Runtime) -> None:
    _load_points(runtime)
    u = Updates()
    start_report(client, u)
    update = u.location(12.6374, -8.0402)  # Lafiabougou, Commune IV
    say(client, update)
    assert conversation(runtime).state["answers"]["place"] == COMMUNE_IV
    assert last_body(runtime) == t(runtime, "report.danger", "fr")
    with Session(runtime.engine) as session:
        message = session.exec(
            select(Message).where(Message.provider_id == str(update["update_id"]))
        ).one()
    assert (message.kind, message.body) == ("location", COMMUNE_IV)  # no coordinates kept
    press(client, u.button("yes"))  # danger: the emergency numbers, then the description
    say(client, u.text("Coups de feu"))
    press(client, u.button("no"))
    press(client, u.button("yes"))
    [report] = reports(runtime)
    assert area_code(runtime, report.area_id) == COMMUNE_IV
    assert report.urgency == "emergency"


@pytest.mark.parametrize(
    ("points", "where"),
    [(False, (12.6374, -8.0402)), (True, (48.8566, 2.3522))],
    ids=["no-points-known", "far-from-mali"],
)
def test_location_without_known_area_shows_the_menu_again(
    client: FlaskClient, runtime: Runtime, points: bool, where: tuple[float, float]
) -> None:
    _clear_points(runtime)
    if points:
        _load_points(runtime)
    u = Updates()
    start_report(client, u)
    menu = last_buttons(runtime)
    say(client, u.location(*where))
    assert last_body(runtime) == (  # no "invalid": the help text, then the menu again
        t(runtime, "system.help", "fr") + "\n\n" + t(runtime, "system.place_region", "fr")
    )
    assert last_buttons(runtime) == menu
    state = conversation(runtime).state
    assert state["node"] == "place" and state["retries"] == 0


def test_location_at_another_question_is_not_an_answer(
    client: FlaskClient, runtime: Runtime
) -> None:
    _load_points(runtime)
    u = Updates()
    say(client, u.command("/start"))
    press(client, u.button("fr"))
    say(client, u.location(12.6374, -8.0402))  # at the category question
    assert last_body(runtime).startswith(t(runtime, "system.invalid_choice", "fr"))
    assert conversation(runtime).state["node"] == "category"


# --- voice notes and photos -------------------------------------------------------------------------


def _to_description(client: FlaskClient, runtime: Runtime, u: Updates) -> None:
    start_report(client, u)
    press(client, u.button("ML-BKO"))
    press(client, u.button(COMMUNE_IV))
    press(client, u.button("no"))
    assert last_body(runtime) == t(runtime, "report.describe", "fr")


def test_voice_note_is_the_description_and_is_downloaded(
    client: FlaskClient, runtime: Runtime, fake_api: FakeBotApi, fetcher: Any
) -> None:
    u = Updates()
    _to_description(client, runtime, u)
    update = u.voice()
    file_id = update["message"]["voice"]["file_id"]
    say(client, update)
    assert last_body(runtime) == t(runtime, "report.anonymous", "fr")
    [attachment] = attachments(runtime)
    assert (attachment.channel, attachment.kind, attachment.status) == (
        "telegram",
        "voice",
        "pending",
    )
    assert attachment.provider_ref == file_id
    assert attachment.conversation_id == conversation(runtime).id
    assert attachment.duration_seconds == 14
    assert attachment.report_id is None  # no report yet
    press(client, u.button("yes"))
    press(client, u.button("no"))
    [report] = reports(runtime)
    assert report.recording_url == file_id
    assert report.description is None
    [attachment] = attachments(runtime)
    assert attachment.report_id == report.id

    audio = b"OggS\x00\x02" + bytes(range(256)) * 8
    fake_api.add_file(file_id, "voice/file_12.oga", audio)
    summary = fetch_pending_attachments(runtime, {"telegram": fetcher})
    assert summary.fetched == 1
    [attachment] = attachments(runtime)
    assert attachment.status == "fetched"
    assert attachment.size_bytes == len(audio)
    stored = runtime.settings.instance_dir / attachment.local_path
    assert stored.read_bytes() == audio
    assert stored.suffix == ".ogg"
    [get_file] = fake_api.calls_to("getFile")
    assert get_file.params["file_id"] == file_id
    assert fake_api.downloads == ["voice/file_12.oga"]


def test_photo_with_caption_is_description_and_attached(
    client: FlaskClient, runtime: Runtime
) -> None:
    u = Updates()
    _to_description(client, runtime, u)
    say(client, u.photo(caption="La boutique forcée cette nuit"))
    press(client, u.button("yes"))
    press(client, u.button("no"))
    [report] = reports(runtime)
    assert report.description == "La boutique forcée cette nuit"
    [attachment] = attachments(runtime)
    assert (attachment.kind, attachment.content_type) == ("photo", "image/jpeg")
    assert attachment.provider_ref == "AgACAgQAAxkBAAIBXmZbPhotoLarge"
    assert attachment.report_id == report.id


def test_photo_without_caption_is_kept_and_question_repeated(
    client: FlaskClient, runtime: Runtime
) -> None:
    u = Updates()
    _to_description(client, runtime, u)
    say(client, u.photo(caption=None))
    assert last_body(runtime) == (
        t(runtime, "system.help", "fr") + "\n\n" + t(runtime, "report.describe", "fr")
    )
    assert conversation(runtime).state["retries"] == 0
    say(client, u.text("Vitrine cassée"))
    press(client, u.button("yes"))
    press(client, u.button("no"))
    [report] = reports(runtime)
    [attachment] = attachments(runtime)
    assert attachment.report_id == report.id


def test_voice_note_at_a_menu_is_refused_but_kept(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    say(client, u.command("/start"))
    press(client, u.button("fr"))
    say(client, u.voice())
    assert last_body(runtime).startswith(t(runtime, "system.invalid_choice", "fr"))
    [attachment] = attachments(runtime)
    assert attachment.conversation_id == conversation(runtime).id


def test_same_voice_note_twice_is_one_attachment(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    _to_description(client, runtime, u)
    say(client, u.voice())
    say(client, u.voice())  # forwarded again: same file_id, new update
    assert len(attachments(runtime)) == 1


# --- the user blocks the bot --------------------------------------------------------------------------


def test_blocking_the_bot_opts_out_once(client: FlaskClient, runtime: Runtime) -> None:
    u = Updates()
    say(client, u.command("/start"))
    press(client, u.button("fr"))
    with Session(runtime.engine) as session:
        row = contact(runtime)
        row.survey_consent = True
        session.add(row)
        session.commit()
    update = u.kicked()
    before = counts(runtime)
    say(client, update)
    after = counts(runtime)
    blocked = contact(runtime)
    assert blocked.opted_out is True and blocked.survey_consent is False
    assert after == {**before, "Message": before["Message"] + 1}  # recorded, no reply queued
    say(client, update)
    assert counts(runtime) == after


def test_unknown_user_blocking_stores_nothing(client: FlaskClient, runtime: Runtime) -> None:
    say(client, Updates().kicked())
    assert counts(runtime) == {"Contact": 0, "Message": 0, "Outbox": 0}


# --- delivery errors --------------------------------------------------------------------------------------


def test_blocked_bot_on_send_opts_the_contact_out(
    client: FlaskClient, runtime: Runtime, fake_api: FakeBotApi, sender: Any
) -> None:
    say(client, Updates().command("/start"))
    fake_api.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    stats = dispatch(runtime, sender)
    assert stats.failed == 1
    [row] = outbox(runtime)
    assert row.status == "failed" and "403" in (row.error or "")
    assert contact(runtime).opted_out is True


def test_flood_control_retries_after_telegram_delay(
    client: FlaskClient, runtime: Runtime, fake_api: FakeBotApi, sender: Any
) -> None:
    say(client, Updates().command("/start"))
    fake_api.fail_next(
        "sendMessage", 429, "Too Many Requests: retry after 600", {"retry_after": 600}
    )
    stats = dispatch(runtime, sender)
    assert stats.retried == 1
    [row] = outbox(runtime)
    assert row.status == "pending"
    assert (row.next_attempt_at - row.created_at).total_seconds() >= 600
    assert contact(runtime).opted_out is False


def test_outbox_rows_name_the_contact_not_the_chat(client: FlaskClient, runtime: Runtime) -> None:
    say(client, Updates().command("/start"))
    with Session(runtime.engine) as session:
        [row] = session.exec(select(Outbox)).all()
    assert row.contact_id == contact(runtime).id
    assert row.address_enc is None
    assert str(FR_USER) not in repr(row.payload) + (row.body or "")
