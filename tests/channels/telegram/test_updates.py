"""Reading Bot API updates (fixtures shaped like the Bot API documentation) into neutral inputs.

No database here: :func:`parse_update` is pure. What the inputs then do is tested through the
webhook (test_webhook.py).
"""

from __future__ import annotations

import pytest
from telegram import Bot, Update

from citoyen.channels.telegram_updates import (
    HASHED_PREFIX,
    MAX_CALLBACK_BYTES,
    callback_data,
    parse_update,
    split_text,
)
from citoyen.engine.types import Input
from tests.channels.telegram.conftest import BM_USER, FR_USER, Updates, fixture
from tests.channels.telegram.fake_bot_api import TOKEN


def read(data: dict) -> Update:
    return Update.de_json(data, Bot(TOKEN))


def test_text_message_is_text_input() -> None:
    parsed = parse_update(read(fixture("message_text")))
    assert parsed.action == "input"
    assert parsed.input == Input("text", "Bonjour")
    assert parsed.address == f"telegram:{FR_USER}"
    assert parsed.update_id == 612000001
    assert parsed.callback_query_id is None


def test_button_press_is_choice_with_callback_id() -> None:
    parsed = parse_update(read(fixture("callback_query")))
    assert parsed.action == "input"
    assert parsed.input == Input("choice", "fr")
    assert parsed.callback_query_id == "4382bfdwdsb323b2d9"
    assert parsed.address == f"telegram:{FR_USER}"


@pytest.mark.parametrize(
    ("text", "command"),
    [
        ("/start", "start"),
        ("/start campagne-2024", "start"),  # deep-link payload ignored
        ("/help", "help"),
        ("/HELP@citoyen_test_bot", "help"),
        ("/stop", "stop"),
        ("/language", "language"),
        ("/menu", "menu"),
    ],
)
def test_commands(text: str, command: str) -> None:
    parsed = parse_update(read(Updates().command(text)))
    assert parsed.action == "command"
    assert parsed.command == command


def test_unknown_command_is_plain_text() -> None:
    parsed = parse_update(read(Updates().command("/weather")))
    assert parsed.action == "input"
    assert parsed.input == Input("text", "/weather")


def test_location_keeps_coordinates_for_lookup() -> None:
    parsed = parse_update(read(fixture("location")))
    assert parsed.action == "location"
    assert parsed.location == (12.637412, -8.040218)


def test_voice_note_is_recording_with_media() -> None:
    parsed = parse_update(read(fixture("voice")))
    voice = fixture("voice")["message"]["voice"]
    assert parsed.input == Input("recording", voice["file_id"])
    assert parsed.media is not None
    assert parsed.media.kind == "voice"
    assert parsed.media.file_id == voice["file_id"]
    assert parsed.media.duration_seconds == 14
    assert parsed.media.content_type == "audio/ogg"
    assert parsed.media.size_bytes == 23456


def test_photo_takes_largest_size_and_caption() -> None:
    parsed = parse_update(read(fixture("photo")))
    assert parsed.input == Input("text", "La boutique forcée cette nuit")
    assert parsed.media is not None
    assert parsed.media.kind == "photo"
    assert parsed.media.file_id == "AgACAgQAAxkBAAIBXmZbPhotoLarge"


def test_photo_without_caption_is_a_photo_input() -> None:
    # The engine takes it where a question takes photos, else asks again (test_webhook.py).
    parsed = parse_update(read(Updates().photo(caption=None)))
    assert parsed.action == "input"
    assert parsed.input == Input("photo", "AgACAgQAAxkBAAIBXmZbPhotoLarge")
    assert parsed.media is not None


def test_photo_sizes_over_download_limit_are_skipped() -> None:
    data = fixture("photo")
    data["message"]["photo"][2]["file_size"] = 25 * 1024 * 1024
    parsed = parse_update(read(data))
    assert parsed.media is not None
    assert parsed.media.file_id == "AgACAgQAAxkBAAIBXmZbPhotoMedium"


@pytest.mark.parametrize("name", ["edited_message", "group_message"])
def test_ignored_updates(name: str) -> None:
    parsed = parse_update(read(fixture(name)))
    assert parsed.action == "ignore"
    assert parsed.input is None
    assert parsed.reason


def test_kicked_is_opt_out() -> None:
    parsed = parse_update(read(fixture("my_chat_member")))
    assert parsed.action == "opt_out"
    assert parsed.address == f"telegram:{FR_USER}"


def test_member_again_is_ignored() -> None:
    data = fixture("my_chat_member")
    member = data["my_chat_member"]
    member["old_chat_member"]["status"], member["new_chat_member"]["status"] = "kicked", "member"
    member["old_chat_member"]["until_date"] = member["new_chat_member"].pop("until_date")
    assert parse_update(read(data)).action == "ignore"


def test_message_from_a_bot_is_ignored() -> None:
    data = fixture("message_text")
    data["message"]["from"]["is_bot"] = True
    assert parse_update(read(data)).action == "ignore"


def test_button_in_a_group_is_ignored_but_answered() -> None:
    data = fixture("callback_query")
    data["callback_query"]["message"]["chat"] = {"id": -100123, "type": "group", "title": "CCS"}
    parsed = parse_update(read(data))
    assert parsed.action == "ignore"
    assert parsed.callback_query_id == "4382bfdwdsb323b2d9"


def test_sticker_asks_the_question_again() -> None:
    data = fixture("message_text")
    del data["message"]["text"]
    data["message"]["sticker"] = {
        "file_id": "CAACAgIAAxkBAAIBYmZbSticker",
        "file_unique_id": "AgADSticker",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    parsed = parse_update(read(data))
    assert parsed.action == "again"
    assert parsed.media is None


def test_own_contact_is_the_senders_number_never_in_a_repr() -> None:
    parsed = parse_update(read(Updates().contact("+22376300001")))
    assert (parsed.action, parsed.phone) == ("contact", "tel:+22376300001")
    assert parsed.address == f"telegram:{FR_USER}" and parsed.input is None
    assert "76300001" not in repr(parsed)  # a log line that prints it shows no number
    data = Updates().contact("22376300001")
    assert parse_update(read(data)).phone == "tel:+22376300001"  # Telegram's form: no "+"


def test_someone_elses_contact_carries_no_number() -> None:
    card = Updates().contact("+22376999999", user_id=BM_USER)
    parsed = parse_update(read(card))
    assert (parsed.action, parsed.phone) == ("contact", None)
    del card["message"]["contact"]["user_id"]  # a card of someone not on Telegram
    assert parse_update(read(card)).phone is None


def test_own_contact_without_a_usable_number_asks_again() -> None:
    assert parse_update(read(Updates().contact("12"))).action == "again"


def test_callback_data_fits_telegram_limit() -> None:
    short = "ML-BKO.commune-iv"
    assert callback_data(short) == short
    long = "ML-3." + "tres-long-nom-de-cercle-" * 4
    data = callback_data(long)
    assert data.startswith(HASHED_PREFIX)
    assert len(data.encode()) <= MAX_CALLBACK_BYTES
    assert callback_data(long) == data  # stable: a press is matched back by recomputing it
    assert callback_data(long + "x") != data


def test_split_text_on_word_boundaries() -> None:
    text = " ".join(["mot"] * 3000)  # 11999 characters
    pieces = split_text(text, limit=4000)
    assert len(pieces) == 3
    assert all(len(p) <= 4000 for p in pieces)
    assert " ".join(pieces) == text
    assert split_text("court") == ["court"]
