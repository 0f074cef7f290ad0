"""The admin speaks the moderator's language: labels, not codes, on the report page and the
audit log; "Transmettre à" grouped by kind and area; a voice report's recording where its
description would be. Pages are read in French (the default), as a moderator sees them.
Each test runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import Attachment, Report, User, VoicePrompt
from citoyen.services import prompts, queues
from tests.services.prompts.sounds import wav
from tests.web.conftest import Desk

COMMUNE_IV = "ML-BKO.commune-iv"


class _Select(HTMLParser):
    """The options of the forward form's <select name="stakeholder">, with their optgroup."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.group: str | None = None
        self.options: list[tuple[str | None, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "select":
            self.inside = values.get("name") == "stakeholder"
        elif self.inside and tag == "optgroup":
            self.group = values.get("label")
        elif self.inside and tag == "option" and values.get("value"):
            self.options.append((self.group, values["value"] or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self.inside = False
        elif tag == "optgroup":
            self.group = None


def _page(desk: Desk, report: Report) -> str:
    return desk.client.get(f"/admin/reports/{report.id}").get_data(as_text=True)


def test_report_page_names_channels_and_groups_stakeholders(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV, channel="voice")
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    page = _page(desk, report)
    assert " · appel · fr" in page
    assert " · voice · " not in page
    select = _Select()
    select.feed(page)
    assert select.options, "no stakeholder to forward to"
    assert all(group for group, _code in select.options), "an option outside any optgroup"
    groups = {group for group, _code in select.options}
    assert any(g.startswith("Gendarmerie · ") for g in groups), groups
    assert "Police · Bamako" in groups, groups
    # Grouped, not one flat list: many stakeholders, far fewer groups.
    assert len(groups) < len(select.options)


def test_escalation_is_worded_in_french(desk: Desk) -> None:
    t0 = datetime.now(UTC)
    report = desk.report(category="armed_attack", area=COMMUNE_IV, urgency="emergency", now=t0)
    with write_session(desk.runtime.engine) as session:
        queues.escalate_due(session, now=t0 + timedelta(minutes=15))
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    page = _page(desk, report)
    assert "non pris en charge à temps" in page
    assert re.search(r"déjà chez [^<;]*\w", page) or "non pris en charge à temps par " in page
    assert "not acknowledged" not in page


def test_voice_report_shows_its_recording_in_place_of_a_description(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV, channel="voice")
    with Session(desk.runtime.engine) as session:
        session.add(
            Attachment(
                report_id=report.id,
                channel="voice",
                kind="recording",
                provider_ref="RE0123",
                status="fetched",
                duration_seconds=12,
            )
        )
        session.commit()
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    page = _page(desk, report)
    description = page.split("<h2>Description</h2>", 1)[1].split("<h2>", 1)[0]
    assert "Dit par l'auteur du signalement (enregistrement)" in description.replace("&#39;", "'")
    assert "<audio controls" in description
    assert "<p>—</p>" not in description


def test_audit_log_names_targets_and_details(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("coord@example.org", "admin", None)
    desk.login("coord@example.org")
    reason = "messages insultants répétés"
    assert desk.post(f"/admin/reports/{report.id}/block", reason=reason).status_code == 302
    page = desk.client.get("/admin/audit").get_data(as_text=True)
    assert "auteur du signalement n° " in page
    assert f"signalement : {report.reference}" in page
    assert "contact: " not in page and ">contact " not in page


def test_refusals_are_worded_without_codes(desk: Desk) -> None:
    report = desk.report(category="theft", area=COMMUNE_IV)
    desk.user("agent4@example.org", "agent", "bko-police-c4")
    desk.login("agent4@example.org")
    base = f"/admin/reports/{report.id}"
    expected = {
        ("status", "closed", ""): "Pour clore un signalement, choisissez un motif.",
        ("status", "resolved", "spam"): "Un motif ne se donne qu&#39;en clôturant",
        ("reply", "", ""): "La réponse : vide.",
    }
    for (action, status, extra), words in expected.items():
        form = {"status": status, "reason": extra} if action == "status" else {"message": status}
        page = desk.post(f"{base}/{action}", **form).get_data(as_text=True)
        [flash] = re.findall(r'<p class="flash error" role="status">(.*?)</p>', page)
        assert words in flash, (action, form, flash)
        for english in ("closing needs", "one of:", "no_further_action", "is empty", "only given"):
            assert english not in flash, (action, english)
    forwarded = desk.post(f"{base}/forward", stakeholder="bko-police-c4").get_data(as_text=True)
    assert "a déjà ce signalement." in forwarded


def _flash(response) -> str:  # type: ignore[no-untyped-def]
    """The one error message of a refused form, as the page shows it."""
    assert response.status_code == 400, response.status_code
    page = response.get_data(as_text=True)
    [flash] = re.findall(r'<p class="flash error" role="status">(.*?)</p>', page)
    return html.unescape(flash)


def _no_english(flash: str, *sentences: str) -> None:
    for english in sentences:
        assert english not in flash, (english, flash)


def test_account_refusals_are_worded_in_french(desk: Desk) -> None:
    desk.user("admin@example.org", "admin")
    desk.login("admin@example.org")
    english = ("already exists", "give --", "works for", "cannot remove", "not an email")
    created = {
        ("admin@example.org", "analyst", ""): (
            "Le compte n’a pas été créé : Un compte existe déjà avec l’adresse e-mail "
            "admin@example.org."
        ),
        ("agent@example", "agent", "bko-police-c4"): (
            "Le compte n’a pas été créé : « agent@example » n’est pas une adresse e-mail."
        ),
        ("agent@example.org", "agent", ""): (
            "Le compte n’a pas été créé : Un agent travaille pour un acteur : choisissez-en un."
        ),
    }
    for (email, role, stakeholder), words in created.items():
        form = {"email": email, "role": role, "stakeholder": stakeholder}
        flash = _flash(desk.post("/admin/users/new", **form))
        assert flash == words, (form, flash)
        _no_english(flash, *english)
    with Session(desk.runtime.engine) as session:
        me = session.exec(select(User).where(User.email == "admin@example.org")).one()
    flash = _flash(desk.post(f"/admin/users/{me.id}", role="analyst", active="1"))
    assert flash == (
        "Rien n’a été modifié : Vous ne pouvez pas retirer votre propre accès d’administrateur."
    )
    _no_english(flash, *english)


def test_prompt_refusals_are_worded_in_french(desk: Desk) -> None:
    desk.user("admin@example.org", "admin")
    desk.user("recorder@example.org", "agent", "bko-police-c4")
    desk.login("admin@example.org")
    key = next(s.key for s in prompts.coverage(desk.runtime, "bm") if s.status == "missing")
    english = ("not an audio", "not supported", "too long", "recording", "digits", "too easy")
    uploads = {
        (b"Ceci est un texte, pas un son.\n" * 20, "notes.wav"): (
            "Non enregistré : Ce n’est pas un fichier audio : envoyez un enregistrement WAV ou MP3."
        ),
        (b"OggS\x00\x02" + bytes(200), "note.ogg"): (
            "Non enregistré : Les fichiers Ogg ne peuvent pas être joués pendant les appels"
        ),
        (wav(61.5), "long.wav"): (
            "Non enregistré : L’enregistrement est trop long (61,5 s ; 60 s au plus)."
        ),
    }
    for (data, name), words in uploads.items():
        response = desk.client.post(
            f"/admin/prompts/bm/{key}/upload",
            data={"csrf_token": desk.token("/admin/prompts"), "file": (io.BytesIO(data), name)},
            content_type="multipart/form-data",
        )
        flash = _flash(response)
        assert flash.startswith(words), (name, flash)
        _no_english(flash, *english)
    with Session(desk.runtime.engine) as session:
        assert session.exec(select(VoicePrompt)).all() == []
        recorder = session.exec(select(User).where(User.email == "recorder@example.org")).one()
    pins = {
        "1234": "Pas fait : Ce code est trop facile à deviner (un seul chiffre répété, ou une "
        "suite comme 1234).",
        "12a": "Pas fait : Le code doit avoir de 4 à 8 chiffres (tapés sur le clavier du "
        "téléphone).",
    }
    for pin, words in pins.items():
        flash = _flash(desk.post("/admin/prompts/pins", user=str(recorder.id), pin=pin))
        assert flash == words, (pin, flash)
        _no_english(flash, *english)


def _flash_after(desk: Desk, response) -> str:  # type: ignore[no-untyped-def]
    """The one error message of a refused form that sends the browser back to its page."""
    assert response.status_code == 303, response.status_code
    page = desk.client.get(response.headers["Location"]).get_data(as_text=True)
    [flash] = re.findall(r'<p class="flash error" role="status">(.*?)</p>', page)
    return html.unescape(flash)


def test_text_refusals_are_worded_in_french(desk: Desk) -> None:
    desk.user("admin@example.org", "admin")
    desk.login("admin@example.org")
    locale = desk.runtime.settings.locales_dir / "bm.yaml"
    before = locale.read_text(encoding="utf-8")
    english = ("placeholder", "differ", "not a simple name", "cannot be empty", "no text", "none")
    texts = {
        ("report.welcome", "Aw ni ce! {polis}"): (
            "Non enregistré : report.welcome : les mots entre accolades doivent être ceux du "
            "texte de référence (Français) : {fire}, {police} ; ce texte a {polis}."
        ),
        ("report.welcome", "Aw ni ce!"): (
            "Non enregistré : report.welcome : les mots entre accolades doivent être ceux du "
            "texte de référence (Français) : {fire}, {police} ; ce texte a —."
        ),
        ("report.welcome", "Polisi: {police.number} {fire}"): (
            "Non enregistré : report.welcome : {police.number} n’est pas un mot à remplacer. "
            "Écrivez un simple nom entre accolades, comme {police}."
        ),
        ("report.welcome", "Polisi: {police {fire}"): (
            "Non enregistré : report.welcome : une accolade est mal placée. Écrivez chaque mot "
            "à remplacer entre accolades, comme {police}."
        ),
        (
            "report.welcome",
            "   ",
        ): "Non enregistré : Le texte de report.welcome ne peut pas être vide.",
        ("report.nothing", "Aw ni ce!"): (
            "Non enregistré : Il n’y a pas de texte report.nothing pour la langue bm."
        ),
    }
    for (key, text), words in texts.items():
        response = desk.post(f"/admin/texts/bm/{key}", text=text, reviewed="1")
        flash = _flash_after(desk, response)
        assert flash == words, (text, flash)
        _no_english(flash, *english)
    assert locale.read_text(encoding="utf-8") == before


def test_trial_refusals_are_worded_in_french(desk: Desk) -> None:
    desk.user("admin@example.org", "admin")
    desk.login("admin@example.org")
    english = ("unknown", "no flow", "not enabled")
    starts = {
        ("nope", "sms", "fr"): "Non démarré : Il n’y a pas de parcours nope.",
        ("report", "sms", "xx"): "Non démarré : La langue xx n’est pas activée.",
        ("report", "fax", "fr"): "Non démarré : Canal inconnu : fax.",
    }
    for (flow, channel, language), words in starts.items():
        form = {"flow": flow, "channel": channel, "language": language}
        flash = _flash_after(desk, desk.post("/admin/try/start", **form))
        assert flash == words, (form, flash)
        _no_english(flash, *english)


def test_queue_refusals_are_worded_in_french(desk: Desk) -> None:
    """A hand-made or stale link to the queue: the page says why in French and shows the
    queue (400, as the link was refused), never an English error page."""
    desk.report(category="theft", area=COMMUNE_IV)
    desk.user("admin@example.org", "admin")
    desk.login("admin@example.org")
    english = ("unknown", "damaged", "Bad Request", "Invalid")
    links = {
        "/admin/?status=bogus": "Filtre non appliqué : Statut inconnu dans le filtre : bogus.",
        "/admin/?urgency=soon": "Filtre non appliqué : Urgence inconnue dans le filtre : soon.",
        "/admin/?area=abc": "Filtre non appliqué : Valeur de filtre invalide.",
        "/admin/?after=not-a-cursor": (
            "Ce lien de page est abîmé : recommencez depuis la première page."
        ),
    }
    for link, words in links.items():
        response = desk.client.get(link)
        flash = _flash(response)
        assert flash == words, (link, flash)
        _no_english(flash, *english)
        assert "Vol ou cambriolage" in response.get_data(as_text=True)  # the queue is there
    # a damaged cursor keeps the filter: the first page of the same list
    response = desk.client.get("/admin/?urgency=normal&after=not-a-cursor")
    assert _flash(response).startswith("Ce lien de page est abîmé")
    assert '<option value="normal" selected>' in response.get_data(as_text=True)


def test_error_pages_are_worded_in_french(desk: Desk) -> None:
    """A report that does not exist, a page the role may not open, a damaged outbox filter:
    the French admin says so in French; a webhook path keeps its plain answer."""
    desk.user("agent@example.org", "agent", stakeholder="bko-police-c4")
    desk.login("agent@example.org")
    pages = {
        "/admin/reports/999999": (404, "Page introuvable", "n'existe pas"),
        "/admin/users": (403, "Accès refusé", "Votre compte ne peut pas ouvrir cette page."),
    }
    for path, (status, title, words) in pages.items():
        response = desk.client.get(path)
        page = html.unescape(response.get_data(as_text=True))
        assert response.status_code == status, path
        assert f"<h1>{title}</h1>" in page and words in page, page
        _no_english(page, "Not found", "Forbidden", "Bad Request")
    assert desk.client.get("/twilio/nowhere").get_data(as_text=True) == "Not found"


def test_every_refusal_code_has_words() -> None:
    """Each code the services raise (citoyen.services.refusals) is worded in the admin.

    Read from the source: every class of the services derived from Refusal, and every call
    making one, which must pass a code (literal, or a caught refusal's ``exc.code``).
    """
    import ast
    from pathlib import Path

    from citoyen.web.admin.labels import REFUSALS

    root = Path(__file__).resolve().parents[2] / "src" / "citoyen" / "services"
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in root.rglob("*.py")}
    refusals = {"Refusal"}
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id in refusals for base in node.bases
            ):
                refusals.add(node.name)
    assert {
        "StatusError",
        "CaseworkError",
        "UserError",
        "PromptError",
        "AudioError",
        "TranslationError",
        "TrialError",
        "FilterError",
    } <= refusals
    raised: dict[str, set[str]] = {}
    uncoded: list[str] = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in refusals - {"Refusal"}:
                continue
            code = next((k.value for k in node.keywords if k.arg == "code"), None)
            if code is None and len(node.args) >= 2:
                code = node.args[1]
            where = f"{path.relative_to(root)}:{node.lineno}"
            if isinstance(code, ast.Constant) and isinstance(code.value, str) and code.value:
                raised.setdefault(node.func.id, set()).add(code.value)
            elif not (isinstance(code, ast.Attribute) and code.attr == "code"):
                uncoded.append(where)
    assert uncoded == []
    assert len(raised["CaseworkError"] | raised["StatusError"]) >= 20
    assert len(raised["UserError"]) >= 8
    assert len(raised["PromptError"]) >= 6
    assert len(raised["AudioError"]) >= 9
    assert len(raised["TranslationError"]) >= 8
    assert len(raised["TrialError"]) >= 4
    assert len(raised["FilterError"]) >= 5
    everything = set().union(*raised.values())
    assert everything - set(REFUSALS) == set()
