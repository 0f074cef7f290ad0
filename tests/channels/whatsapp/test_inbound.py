"""WhatsApp messages arrive on Twilio's messaging webhook with ``whatsapp:`` addresses: the same
flows on their own channel, replies as TwiML, voice notes and photos kept as attachments, shared
locations turned into the nearest area."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, select

from citoyen.models import Area, Attachment, Conversation, Message, QueueEntry, Report
from tests.channels.sms.conftest import counts, words
from tests.channels.whatsapp.conftest import WhatsApp
from tests.security.conftest import FUZZ, report_statuses, snapshot

MEDIA = "https://api.twilio.com/2010-04-01/Accounts/AC" + "0" * 32 + "/Messages/{mm}/Media/{me}"


@pytest.fixture
def whatsapp(client) -> WhatsApp:
    return WhatsApp(client)


def media_url(n: int) -> str:
    return MEDIA.format(mm=f"MM{n:032x}", me=f"ME{n:032x}")


def test_a_whatsapp_message_runs_the_flows_on_its_own_channel(whatsapp, runtime, t) -> None:
    replies = whatsapp.say("Bonjour")
    assert t("system.language_prompt", "fr") in replies[0]
    with Session(runtime.engine) as session:
        [message] = session.exec(select(Message).where(Message.direction == "in")).all()
        [conversation] = session.exec(select(Conversation)).all()
    assert message.channel == conversation.channel == "whatsapp"


@pytest.mark.parametrize(("lang", "digit"), [("fr", "1"), ("bm", "2")])
def test_a_whole_report_over_whatsapp_with_a_location_and_a_voice_note(
    whatsapp, client, runtime, t, lang, digit
) -> None:
    whatsapp.say("Bonjour")
    assert words(*whatsapp.say(digit)).startswith(words(t("report.welcome", lang)))
    place = whatsapp.say("2")  # theft
    assert words(*place).startswith(words(t("report.place", lang)))
    # A shared location near Bamako's Commune IV answers the place question.
    after_place = whatsapp.say("", Latitude="12.6596", Longitude="-8.0286", Address="", Label="")
    assert words(*after_place).startswith(words(t("report.danger", lang)))
    assert words(*whatsapp.say("2")) == words(t("report.describe", lang))
    # A photo without caption asks again; a voice note answers the description.
    again = whatsapp.say("", NumMedia="1", MediaUrl0=media_url(1), MediaContentType0="image/jpeg")
    assert words(t("report.describe", lang)) in words(*again)
    anonymous = whatsapp.say(
        "", NumMedia="1", MediaUrl0=media_url(2), MediaContentType0="audio/ogg"
    )
    assert words(*anonymous).startswith(words(t("report.anonymous", lang)))
    assert words(*whatsapp.say("1")).startswith(words(t("report.consent", lang)))
    confirm = whatsapp.say("2")

    with Session(runtime.engine) as session:
        [report] = session.exec(select(Report)).all()
        area = session.get(Area, report.area_id)
        attachments = session.exec(select(Attachment).order_by(Attachment.id)).all()
        queues = session.exec(select(QueueEntry).where(QueueEntry.report_id == report.id)).all()
    assert words(*confirm) == words(t("report.confirm", lang, reference=report.reference))
    assert (report.channel, report.language, report.category) == ("whatsapp", lang, "theft")
    assert area.code.startswith("ML-BKO")
    assert queues, "the report was not routed"
    assert [(a.kind, a.channel, a.status, a.report_id) for a in attachments] == [
        ("photo", "whatsapp", "pending", report.id),
        ("voice", "whatsapp", "pending", report.id),
    ]
    assert attachments[1].provider_ref == f"MM{2:032x}/ME{2:032x}"

    # Staff see where it came from.
    from tests.web.conftest import sign_in

    admin = sign_in(client.application, "admin@example.org", "admin")
    page = admin.get(f"/admin/reports/{report.id}").get_data(as_text=True)
    assert "· WhatsApp ·" in " ".join(page.split())


def test_after_a_report_thanks_are_acknowledged_and_a_photo_joins_it(whatsapp, runtime, t) -> None:
    """Through the real webhook: "Merci" after a report gets the acknowledgement (no new
    report), a photo sent alone soon after is added to the report, SUIVI answers its status."""
    for said in ("Bonjour", "1", "2", "1", "1", "2", "Vol de moto", "1", "2"):
        confirm = whatsapp.say(said)
    with Session(runtime.engine) as session:
        [report] = session.exec(select(Report)).all()
    assert words(*confirm) == words(t("report.confirm", "fr", reference=report.reference))
    ack = whatsapp.say("Merci")
    assert words(*ack) == words(t("report.after_report", "fr", reference=report.reference))
    photo = whatsapp.say("", NumMedia="1", MediaUrl0=media_url(7), MediaContentType0="image/jpeg")
    saved = t("report.addition.saved", "fr")
    assert words(*photo) == words(
        t("report.addition_done", "fr", reference=report.reference, addition_outcome=saved)
    )
    status = whatsapp.say("suivi")
    assert words(*status).startswith(words(f"Signalement {report.reference} :"))
    with Session(runtime.engine) as session:
        assert len(session.exec(select(Report)).all()) == 1
        [attachment] = session.exec(select(Attachment)).all()
    assert (attachment.kind, attachment.report_id) == ("photo", report.id)


def test_a_location_far_from_any_area_asks_again(whatsapp, t) -> None:
    whatsapp.say("Bonjour")
    whatsapp.say("1")
    whatsapp.say("2")
    again = whatsapp.say("", Latitude="48.8566", Longitude="2.3522")  # Paris
    assert words(*again).startswith(words(t("system.help", "fr")))
    assert words(t("system.place_region", "fr")) in words(*again)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"From": "whatsapp:pas-un-numero"}, "From is not a WhatsApp number"),
        ({"Latitude": "north", "Longitude": "-8"}, "malformed Latitude/Longitude"),
        ({"Latitude": "91", "Longitude": "0"}, "malformed Latitude/Longitude"),
        ({"NumMedia": "x"}, "malformed NumMedia"),
        ({"NumMedia": "²"}, "malformed NumMedia"),  # str.isdigit says yes, int() no
        ({"NumMedia": "1" * 5000}, "malformed NumMedia"),  # over int()'s 4,300 digits
        (
            {"NumMedia": "1", "MediaUrl0": "https://evil.example/x"},
            "MediaUrl0 is not a Twilio media URL",
        ),
        ({"MessageSid": ""}, "missing MessageSid"),
        ({"ButtonText": "Appelez-moi", "ButtonPayload": "A" * 257}, "malformed ButtonPayload"),
    ],
)
def test_malformed_whatsapp_requests_get_400_and_store_nothing(
    whatsapp, runtime, extra, reason
) -> None:
    before = counts(runtime)
    response = whatsapp.send("Bonjour", **extra)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == reason
    assert counts(runtime) == before


def test_an_unsigned_whatsapp_message_is_refused(client, runtime) -> None:
    before = counts(runtime)
    response = client.post("/twilio/sms", data=WhatsApp(client).form("Bonjour"))
    assert response.status_code == 403
    assert counts(runtime) == before


def test_a_voice_note_is_downloaded_from_the_messages_media_list(
    whatsapp, runtime, httpserver
) -> None:
    from citoyen.channels.twilio_rest import TwilioMessageMediaFetcher
    from citoyen.services.media import fetch_pending_attachments

    whatsapp.say("Bonjour")
    whatsapp.say("", NumMedia="1", MediaUrl0=media_url(7), MediaContentType0="audio/ogg")
    path = f"/2010-04-01/Accounts/AC{'0' * 32}/Messages/MM{7:032x}/Media/ME{7:032x}"
    httpserver.expect_oneshot_request(path, method="GET").respond_with_data(
        b"OggS-voice-note", content_type="audio/ogg"
    )
    fetcher = TwilioMessageMediaFetcher(
        "AC" + "0" * 32, "test-auth-token-0123456789abcdef", api_base=httpserver.url_for("/")
    )
    assert fetch_pending_attachments(runtime, {"whatsapp": fetcher}).fetched == 1
    httpserver.check_assertions()
    [(request, _)] = httpserver.log
    assert request.authorization.username == "AC" + "0" * 32
    with Session(runtime.engine) as session:
        [attachment] = session.exec(select(Attachment)).all()
    assert attachment.status == "fetched"
    stored = runtime.settings.instance_dir / attachment.local_path
    assert stored.read_bytes() == b"OggS-voice-note"


ANYTHING = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "nan", "inf", "-91", "1e400", "whatsapp:", "whatsapp:+1", "3", "A" * 300]),
)
FIELDS = [
    "Body",
    "Latitude",
    "Longitude",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "From",
    "ButtonPayload",
]


def test_fuzzed_signed_whatsapp_messages_never_give_a_5xx_nor_half_write(client, runtime, db_url):
    from tests.channels.twilio_helpers import signed_post

    tally: Counter[int] = Counter()
    citizen = WhatsApp(client)

    @FUZZ
    @given(st.dictionaries(st.sampled_from(FIELDS), ANYTHING, max_size=4))
    def run(changes: dict[str, str]) -> None:
        form = citizen.form("Bonjour")
        if "From" in changes and not changes["From"].startswith("whatsapp:"):
            changes["From"] = "whatsapp:" + changes["From"]
        form |= changes
        before = snapshot(runtime.engine)
        response = signed_post(client, "/twilio/sms", form)
        tally[response.status_code] += 1
        assert response.status_code < 500
        if response.status_code >= 400:
            assert snapshot(runtime.engine) == before

    run()
    report_statuses("/twilio/sms (WhatsApp)", db_url, tally)
    assert tally[200] and tally[400], tally
