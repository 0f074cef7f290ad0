"""SMS cost has a budget: what a new reporter's first exchange costs, per language.

The welcome and the first question travel as one SMS: at most 2 segments in French and English
(GSM-7) and 3 in Bambara (UCS-2), as ``sms_budget`` in flows/settings.yaml says and
``citoyen flows check`` enforces. The dialogues are written out in the locale's words; each
reply's cost is what the SMS webhook bills (its ``<Message>`` texts). A survey invitation says
STOP once. Each dialogue runs on SQLite and on PostgreSQL (the ``settings`` fixture).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from citoyen.channels.sms import MAX_SEGMENTS
from citoyen.engine import sms
from citoyen.engine.loader import load_bundle
from citoyen.engine.sms_budget import first_prompts
from citoyen.messages.render import render_sms_parts
from citoyen.services.surveys.invite import invitation_messages
from tests.dialog import Dialog, ready_runtime, verify_dialog

ROOT = Path(__file__).resolve().parents[2]

FIRST_EXCHANGE = {
    "fr": (
        "Signalement confidentiel. En danger ? Police 17, pompiers 18.\n\n"
        "Quel problème ?\n"
        "1. Attaque ou menace armée\n"
        "2. Vol ou cambriolage\n"
        "3. Violence, au foyer ou sexuelle\n"
        "4. Conflit communautaire ou foncier\n"
        "5. Activité ou objet suspect\n"
        "6. Coupeurs de route, enlèvement\n"
        "7. Incendie, accident, catastrophe\n"
        "8. Autre"
    ),
    "bm": (
        "Aw ni ce! Gundo la. Farati: polisi 17, tasuma 18.\n\n"
        "Mun kɛra?\n"
        "1. Marifa binkanni\n"
        "2. Sonyali\n"
        "3. Fariya, musow tɔɲɔli\n"
        "4. Kɛlɛ, dugukolo\n"
        "5. Ko sigasigalen\n"
        "6. Sira bandiw\n"
        "7. Tasuma, balawu\n"
        "8. Ko wɛrɛ"
    ),
    "en": (
        "Confidential reporting. In danger? Police 17, fire service 18.\n\n"
        "What happened?\n"
        "1. Armed attack or threat\n"
        "2. Theft or burglary\n"
        "3. Violence, including domestic or sexual\n"
        "4. Community or land conflict\n"
        "5. Suspicious activity or object\n"
        "6. Road banditry or kidnapping\n"
        "7. Fire, accident or disaster\n"
        "8. Other"
    ),
}
BUDGET = {"fr": 2, "en": 2, "bm": 3}
LANGUAGE_NUMBER = {"fr": "1", "bm": "2", "en": "3"}


@pytest.fixture
def runtime(settings):
    return ready_runtime(settings)


def billed(d: Dialog) -> int:
    """Segments the SMS webhook sends for the last reply (its <Message> texts)."""
    reply = d.last.reply
    parts = render_sms_parts(d.catalog, reply.prompts, reply.language, reply.params)
    return sms.cost(parts, MAX_SEGMENTS)


@pytest.mark.parametrize("lang", ["fr", "bm", "en"])
def test_first_exchange_fits_the_budget(runtime, lang):
    d = Dialog(runtime, "sms", lang=lang)
    d.send("Bonjour")  # the language menu
    verify_dialog(d, [(LANGUAGE_NUMBER[lang], FIRST_EXCHANGE[lang])])
    assert billed(d) == BUDGET[lang]


def test_bambara_help_at_the_first_question_fits_3_segments(runtime):
    d = Dialog(runtime, "sms", lang="bm")
    d.send("Bonjour")
    d.send("2")
    question = FIRST_EXCHANGE["bm"].split("\n\n")[1]
    verify_dialog(
        d, [("DƐMƐ", "Nimɔrɔ ci. Kumasen wɛrɛw: SEGIN, KƆLƆSI, KAN, DABILA.\n\n" + question)]
    )
    assert billed(d) == 3


def test_the_budget_is_the_one_in_settings():
    bundle = load_bundle(ROOT / "flows", ROOT / "locales")
    budgets = {lang: b.first_exchange for lang, b in bundle.settings.sms_budget.items()}
    assert budgets == BUDGET


@pytest.mark.parametrize(("lang", "word"), [("fr", "STOP"), ("bm", "DABILA"), ("en", "STOP")])
def test_survey_invitation_says_stop_once(lang, word):
    bundle = load_bundle(ROOT / "flows", ROOT / "locales")
    prompts = first_prompts(bundle.flows["perceived_safety"], bundle.settings, lang)
    reply = SimpleNamespace(
        prompts=prompts, language=lang, params=dict(bundle.settings.emergency_numbers)
    )
    text = "\n\n".join(part for part, _payload in invitation_messages(bundle.catalog, reply, "sms"))
    assert text.count(word) == 1, text
    assert text.endswith(bundle.catalog.render("survey.stop_notice", lang, {}))
    assert len(set(text.split("\n\n"))) == len(text.split("\n\n"))  # no paragraph twice
