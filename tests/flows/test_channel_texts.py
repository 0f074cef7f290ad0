"""Texts fit the channel: what a caller hears is not what an SMS or Telegram user reads.

A locale entry may carry a ``voice`` variant (said on calls) and ``written``/``sms``/``telegram``
variants (docs/flows.md, "Texts per channel"). These transcripts are written out literally, in
the locale's words, so a reader sees exactly what each citizen gets: "parlez après le bip" only
on a call, "envoyez 1" in writing and "tapez 1" on a call, and on Telegram (where the citizen gave
no phone number) "vous pouvez me contacter ici" instead of "vous pouvez me rappeler".
Each test runs on SQLite and on PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from citoyen.i18n import Catalog
from tests.dialog import Dialog, button, call, press, ready_runtime, record, verify_dialog

ROOT = Path(__file__).resolve().parents[2]
RECORDING = "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0123456789"

LANGUAGE_MENU_WRITTEN = (
    "Choisissez votre langue.\n"
    "Pour le français, envoyez 1.\n"
    "Bamanankan kama, 2 ci.\n"
    "For English, send 3."
)
LANGUAGE_MENU_SAID = (
    "Choisissez votre langue.\n"
    "Pour le français, tapez 1.\n"
    "Bamanankan kama, 2 digi.\n"
    "For English, press 3.\n"
    "(one key)"
)
LANGUAGE_BUTTONS = "Choisissez votre langue.\n  [Français]\n  [Bamanankan]\n  [English]"

# The report flow up to the danger question, as keys/numbers (category 2, Bamako, Commune IV).
SMS_TO_DANGER = ["2", "1", "4"]


@pytest.fixture
def runtime(settings):
    return ready_runtime(settings)


def _sms_to_describe(d: Dialog, lang_number: str) -> None:
    for said in ["Bonjour", lang_number, *SMS_TO_DANGER, "2"]:
        d.send(said)


def test_french_sms_is_written_for_reading(runtime):
    d = Dialog(runtime, "sms", lang="fr")
    verify_dialog(d, [("Bonjour", LANGUAGE_MENU_WRITTEN)])
    for said in ["1", *SMS_TO_DANGER]:
        d.send(said)
    verify_dialog(
        d,
        [
            ("2", "Décrivez ce qui s'est passé : quoi, quand, où exactement."),
            (
                "Des hommes armés ont volé une moto.",
                "Voulez-vous rester anonyme ?\n"
                "1. Oui, rester anonyme\n"
                "2. Non, vous pouvez me rappeler",
            ),
        ],
    )


def test_french_call_says_how_to_use_the_keypad(runtime):
    d = Dialog(runtime, "voice", lang="fr")
    verify_dialog(
        d,
        [
            (call(), LANGUAGE_MENU_SAID),
            (
                press("1"),
                "Bienvenue. Ce service confidentiel sert à signaler un problème de sécurité. "
                "En cas de danger immédiat, appelez la police au 17 ou les pompiers au 18.\n"
                "Que voulez-vous faire ?\n"
                "Pour Signaler un problème de sécurité, tapez 1.\n"
                "Pour Suivre un signalement, tapez 2.\n"
                "(one key)",
            ),
        ],
    )
    for key in ["1", *SMS_TO_DANGER]:
        d.send(press(key))
    verify_dialog(
        d,
        [
            (
                press("2"),
                "Décrivez ce qui s'est passé : quoi, quand, où exactement. "
                "Parlez après le bip, puis tapez dièse.\n"
                "(recording)",
            ),
            (
                record(RECORDING),
                "Voulez-vous rester anonyme ?\n"
                "Pour Oui, rester anonyme, tapez 1.\n"
                "Pour Non, vous pouvez me rappeler, tapez 2.\n"
                "(one key)",
            ),
        ],
    )


def test_french_call_asks_for_the_reference_with_the_keypad(runtime):
    d = Dialog(runtime, "voice", lang="fr")
    d.send(call())
    d.send(press("1"))
    verify_dialog(
        d,
        [
            (
                press("2"),
                "Tapez le numéro de suivi de votre signalement, 7 chiffres, puis dièse.\n"
                "(digits, then #)",
            ),
        ],
    )


def test_french_sms_asks_for_the_reference_in_writing(runtime):
    d = Dialog(runtime, "sms", lang="fr")
    verify_dialog(
        d,
        [
            ("SUIVI", LANGUAGE_MENU_WRITTEN),
            ("1", "Envoyez le numéro de suivi de votre signalement (7 chiffres)."),
        ],
    )


def test_french_telegram_offers_contact_here_not_a_call_back(runtime):
    d = Dialog(runtime, "telegram", lang="fr")
    verify_dialog(d, [("/start", LANGUAGE_BUTTONS)])
    for said in [button("fr"), button("theft"), button("ML-BKO"), button("ML-BKO.commune-iv")]:
        d.send(said)
    verify_dialog(
        d,
        [
            (button("no"), "Décrivez ce qui s'est passé : quoi, quand, où exactement."),
            (
                "Des hommes armés ont volé une moto.",
                "Voulez-vous rester anonyme ?\n"
                "  [Oui, rester anonyme]\n"
                "  [Non, vous pouvez me contacter ici]",
            ),
        ],
    )


def test_bambara_sms_is_written_for_reading(runtime):
    d = Dialog(runtime, "sms", lang="bm")
    verify_dialog(d, [("Bonjour", LANGUAGE_MENU_WRITTEN)])
    for said in ["2", *SMS_TO_DANGER]:
        d.send(said)
    verify_dialog(
        d,
        [
            ("2", "Aw ye min kɛra fɔ: mun, tuma jumɛn, yɔrɔ jumɛn."),
            (
                "Mɔgɔ fila ye moto dɔ ta.",
                "Aw b'a fɛ aw tɔgɔ ka to gundo la wa?\n1. Ɔwɔ, gundo la\n2. Ayi, aw bɛ se ka n wele",
            ),
        ],
    )


def test_bambara_call_says_speak_after_the_beep(runtime):
    d = Dialog(runtime, "voice", lang="bm")
    d.send(call())
    for key in ["2", "1", *SMS_TO_DANGER]:
        d.send(press(key))
    verify_dialog(
        d,
        [
            (
                press("2"),
                "Aw ye min kɛra fɔ: mun, tuma jumɛn, yɔrɔ jumɛn. "
                "Aw ye kuma bip kɔfɛ, o kɔ # digi.\n"
                "(recording)",
            ),
            (
                record(RECORDING),
                "Aw b'a fɛ aw tɔgɔ ka to gundo la wa?\n"
                "Ɔwɔ, gundo la kama, 1 digi.\n"
                "Ayi, aw bɛ se ka n wele kama, 2 digi.\n"
                "(one key)",
            ),
        ],
    )


def test_bambara_telegram_offers_contact_here(runtime):
    d = Dialog(runtime, "telegram", lang="bm")
    d.send("/start")
    for said in [button("bm"), button("theft"), button("ML-BKO"), button("ML-BKO.commune-iv")]:
        d.send(said)
    verify_dialog(
        d,
        [
            (button("no"), "Aw ye min kɛra fɔ: mun, tuma jumɛn, yɔrɔ jumɛn."),
            (
                "Mɔgɔ fila ye moto dɔ ta.",
                "Aw b'a fɛ aw tɔgɔ ka to gundo la wa?\n"
                "  [Ɔwɔ, gundo la]\n"
                "  [Ayi, aw bɛ se ka n sɔrɔ yan]",
            ),
        ],
    )


# Words that only make sense on a call, per language; texts meant only for calls are skipped.
CALL_WORDS = {
    "fr": r"\b(bip|tapez|dièse|lors d'un appel)\b",
    "en": r"\b(beep|press|hash|on a call)\b",
    "bm": r"\b(bip|digi|wele la)\b",
}
VOICE_ONLY = ("recorder.", "system.voice_option", "survey.stop_notice_voice")


@pytest.mark.parametrize("channel", ["sms", "telegram"])
@pytest.mark.parametrize("lang", ["fr", "bm", "en"])
def test_no_call_instruction_is_ever_written(lang, channel):
    catalog = Catalog.load(ROOT / "locales")
    written = {
        key: catalog.text(key, lang, channel)
        for key in catalog.keys(lang)
        if not key.startswith(VOICE_ONLY)
    }
    found = {
        key: text
        for key, text in written.items()
        if re.search(CALL_WORDS[lang], text, re.IGNORECASE)
    }
    assert found == {}
    # ... while calls do say them.
    assert re.search(CALL_WORDS[lang], catalog.text("report.describe", lang, "voice"))
    assert re.search(CALL_WORDS[lang], catalog.text("system.language_option", lang, "voice"))
