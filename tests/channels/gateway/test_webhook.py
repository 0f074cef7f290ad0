"""``POST /sms-gateway/webhook``: events of SMS Gateway for Android phones, signed as the app signs
them. Forged, unsigned and replayed requests are refused and store nothing; a citizen's SMS is
answered through the outbox (sent on a gateway phone); delivery reports reach the outbox row;
keywords and whole reports behave as on Twilio, in French and Bambara; redelivered events,
also concurrent ones, are taken once."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, select

from citoyen.channels.sms import MAX_SEGMENTS
from citoyen.engine.sms import segments
from citoyen.models import Area, Message, Outbox, QueueEntry, Report
from citoyen.services.dispatch import dispatch_once
from tests.channels.gateway.conftest import MOOV_NUMBER, ORANGE_NUMBER, post
from tests.channels.gateway.fake_gateway import DEVICE_ID, SIGNING_KEY, envelope, received, sign
from tests.channels.sms.conftest import count, counts, words
from tests.channels.sms.test_webhook import CATEGORIES, DESCRIPTIONS, contact_of
from tests.security.conftest import FUZZ, report_statuses, snapshot

NUMBER = ORANGE_NUMBER


class Citizen:
    """A citizen texting a gateway phone; ``say`` returns the SMS queued in answer."""

    def __init__(self, client, runtime, number: str = NUMBER) -> None:
        self.client = client
        self.runtime = runtime
        self.number = number

    def say(self, text: str) -> list[str]:
        data = received(self.number, text)
        response = post(self.client, data)
        assert response.status_code == 200, response.get_data(as_text=True)
        prefix = f"agw:{DEVICE_ID}:{data['id']}:"
        with Session(self.runtime.engine) as session:
            rows = session.exec(
                select(Outbox).where(Outbox.idempotency_key.startswith(prefix)).order_by(Outbox.id)
            ).all()
        for row in rows:
            assert (row.channel, row.kind, row.status) == ("sms", "reply", "pending")
            assert segments(row.body) <= MAX_SEGMENTS
        return [row.body for row in rows]


@pytest.fixture
def citizen(client, runtime) -> Citizen:
    return Citizen(client, runtime)


# --- verification ------------------------------------------------------------------------------


def test_a_signed_sms_is_answered_through_the_outbox(citizen, runtime, t) -> None:
    replies = citizen.say("Bonjour")
    assert t("system.language_prompt", "fr") in replies[0]
    with Session(runtime.engine) as session:
        [message] = session.exec(select(Message).where(Message.direction == "in")).all()
    assert message.channel == "sms"
    assert message.provider_id.startswith(f"agw:{DEVICE_ID}:")


def _refused(client, runtime, body: bytes, headers: dict[str, str]) -> None:
    before = snapshot(runtime.engine)
    response = post(client, body, headers)
    assert response.status_code == 403
    assert snapshot(runtime.engine) == before


BODY = json.dumps(received(NUMBER, "Bonjour")).encode()


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda: {}, id="unsigned"),
        pytest.param(lambda: {"X-Signature": sign(BODY)["X-Signature"]}, id="no-timestamp"),
        pytest.param(lambda: {"X-Timestamp": str(_now())}, id="no-signature"),
        pytest.param(lambda: sign(BODY, key="not-the-key"), id="forged"),
        pytest.param(lambda: sign(BODY + b" "), id="other-body"),
        pytest.param(lambda: sign(BODY, timestamp=_now() - 301), id="replayed"),
        pytest.param(lambda: sign(BODY, timestamp=_now() + 302), id="from-the-future"),
        pytest.param(lambda: {**sign(BODY), "X-Timestamp": "1e9"}, id="malformed-timestamp"),
    ],
)
def test_forged_unsigned_and_replayed_requests_are_refused(client, runtime, headers) -> None:
    _refused(client, runtime, BODY, headers())


def test_a_signature_with_a_timestamp_it_was_not_made_with_is_refused(client, runtime) -> None:
    headers = sign(BODY, timestamp=int(time.time()) - 10)
    headers["X-Timestamp"] = str(int(time.time()))  # a replay with the stamp renewed
    _refused(client, runtime, BODY, headers)


def test_a_request_inside_the_window_is_taken(client, runtime) -> None:
    response = post(client, BODY, sign(BODY, timestamp=int(time.time()) - 290))
    assert response.status_code == 200


def test_without_a_signing_key_every_request_is_refused(app, runtime, client, caplog) -> None:
    runtime.settings = runtime.settings.model_copy(update={"sms_gateway_signing_key": None})
    _refused(client, runtime, BODY, sign(BODY))
    assert "no signing key configured" in caplog.text


def test_a_phones_own_signing_key_is_accepted(app, runtime, client) -> None:
    phones = [
        p.model_copy(update={"signing_key": "key-of-orange1"})
        for p in runtime.settings.sms_gateway_phones[:1]
    ]
    runtime.settings = runtime.settings.model_copy(
        update={"sms_gateway_signing_key": None, "sms_gateway_phones": phones}
    )
    assert post(client, BODY, sign(BODY, key="key-of-orange1")).status_code == 200
    assert post(client, BODY, sign(BODY, key=SIGNING_KEY)).status_code == 403


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "body is not JSON"),
        (b"[1, 2]", "body is not a JSON object"),
        (json.dumps({**received(NUMBER, "x"), "event": 3}).encode(), "missing or malformed event"),
        (
            json.dumps({**received(NUMBER, "x"), "payload": "x"}).encode(),
            "missing or malformed payload",
        ),
        (json.dumps({**received(NUMBER, "x"), "id": ""}).encode(), "missing or malformed id"),
        (
            json.dumps({**received(NUMBER, "x"), "deviceId": "a" * 49}).encode(),
            "missing or malformed deviceId",
        ),
        (json.dumps(received("", "x")).encode(), "missing sender"),
        (json.dumps(received(NUMBER, "x" * 1601)).encode(), "message too long"),
        (
            json.dumps(envelope("sms:delivered", {"messageId": None})).encode(),
            "missing or malformed messageId",
        ),
    ],
)
def test_malformed_events_get_400_and_store_nothing(client, runtime, body, reason) -> None:
    before = snapshot(runtime.engine)
    response = post(client, body)
    assert response.status_code == 400
    assert response.get_data(as_text=True) == reason
    assert snapshot(runtime.engine) == before


@pytest.mark.parametrize("sender", ["OrangeMali", "36063", "+1"])
def test_an_sms_from_no_phone_number_is_acknowledged_and_ignored(client, runtime, sender) -> None:
    """Operators' notices and short codes reach the phones too; a 4xx would make the app retry
    them for two days."""
    before = snapshot(runtime.engine)
    assert post(client, received(sender, "Votre solde est de 100 F")).status_code == 200
    assert snapshot(runtime.engine) == before


def test_other_events_are_acknowledged_and_ignored(client, runtime) -> None:
    before = snapshot(runtime.engine)
    for event in ("system:ping", "app:started", "sms:data-received", "mms:received"):
        assert post(client, envelope(event, {"health": {}})).status_code == 200
    assert snapshot(runtime.engine) == before


# --- dedupe ------------------------------------------------------------------------------------


def test_a_redelivered_event_stores_nothing_new(client, runtime) -> None:
    data = received(NUMBER, "Bonjour")
    assert post(client, data).status_code == 200
    before = counts(runtime)
    assert post(client, data).status_code == 200  # the app's retry: same id, fresh signature
    assert counts(runtime) == before


def test_the_same_text_twice_is_two_messages_though_its_message_id_is_the_same(
    citizen, runtime
) -> None:
    """The app's messageId is derived from the content: "1" twice has one messageId."""
    citizen.say("Bonjour")
    citizen.say("1")
    citizen.say("1")
    assert count(runtime, Message, Message.direction == "in") == 3


# --- outbound: sent on a phone, delivery reports -----------------------------------------------


def test_replies_go_out_on_the_phone_of_the_citizens_operator_and_reports_update_them(
    client, runtime, gateway
) -> None:
    Citizen(client, runtime, MOOV_NUMBER).say("Bonjour")
    stats = dispatch_once(runtime)
    assert stats.sent >= 1
    [(phone, sent)] = gateway.all()
    assert phone == "moov1" and sent["phoneNumbers"] == [MOOV_NUMBER]
    with Session(runtime.engine) as session:
        [row] = session.exec(select(Outbox).where(Outbox.status == "sent")).all()
    assert row.provider_id == sent["id"]

    def report(event: str, **extra) -> None:
        payload = {
            "messageId": row.provider_id,
            "sender": "+22366999999",
            "recipient": MOOV_NUMBER,
            "simNumber": 1,
            **extra,
        }
        assert post(client, envelope(event, payload)).status_code == 200

    def delivery() -> tuple[str | None, str | None]:
        with Session(runtime.engine) as session:
            fresh = session.get(Outbox, row.id)
            return fresh.delivery_status, fresh.error

    report("sms:sent", partsCount=2, sentAt="2026-12-07T10:00:00.000+00:00")
    assert delivery() == ("sent", None)
    # One sms:delivered per part of a multi-part message; a late sms:sent does not undo it.
    report("sms:delivered", deliveredAt="2026-12-07T10:00:05.000+00:00")
    report("sms:delivered", deliveredAt="2026-12-07T10:00:06.000+00:00")
    report("sms:sent", partsCount=2, sentAt="2026-12-07T10:00:00.000+00:00")
    assert delivery() == ("delivered", None)


def test_a_failed_report_marks_the_row(client, runtime) -> None:
    Citizen(client, runtime).say("Bonjour")
    dispatch_once(runtime)
    with Session(runtime.engine) as session:
        [row] = session.exec(select(Outbox).where(Outbox.status == "sent")).all()
    payload = {
        "messageId": row.provider_id,
        "recipient": NUMBER,
        "reason": "RESULT_ERROR_NO_SERVICE",
        "failedAt": "2026-12-07T10:00:00.000+00:00",
    }
    assert post(client, envelope("sms:failed", payload)).status_code == 200
    with Session(runtime.engine) as session:
        fresh = session.get(Outbox, row.id)
    assert (fresh.delivery_status, fresh.error) == ("failed", "delivery failed")


def test_a_report_for_a_message_we_did_not_send_changes_nothing(client, runtime) -> None:
    before = snapshot(runtime.engine)
    payload = {
        "messageId": "msg-456",
        "recipient": NUMBER,
        "deliveredAt": "2026-12-07T10:00:00.000+00:00",
    }
    assert post(client, envelope("sms:delivered", payload)).status_code == 200
    assert snapshot(runtime.engine) == before


# --- keywords and whole reports, as on Twilio --------------------------------------------------


def test_stop_and_start_in_bambara(citizen, runtime, t) -> None:
    citizen.say("Bonjour")
    citizen.say("2")  # Bambara
    assert citizen.say("DABILA") == [t("system.stopped", "bm")]
    assert contact_of(runtime, NUMBER).opted_out is True
    # As on Twilio, the notice and the question that follows share one SMS.
    assert citizen.say("START")[0].split("\n\n")[0] == t("system.started", "bm")
    assert contact_of(runtime, NUMBER).opted_out is False


def test_aide_gives_help(citizen, t) -> None:
    citizen.say("Bonjour")
    citizen.say("1")
    assert citizen.say("AIDE")[0].split("\n\n")[0] == t("system.help", "fr")


@pytest.mark.parametrize(("lang", "digit"), [("fr", "1"), ("bm", "2")])
def test_a_whole_report_over_the_gateway(citizen, runtime, t, gateway, lang, digit) -> None:
    assert t("system.language_prompt", "fr") in citizen.say("Bonjour")[0]
    first = citizen.say(digit)
    # The welcome and the first question: one SMS, as Twilio's answer carries it.
    assert len(first) == 1
    assert segments(first[0]) == {"fr": 2, "bm": 3}[lang]
    assert words(*first) == words(
        t("report.welcome", lang),
        t("report.category", lang),
        *(f"{n}. {t(f'report.category.{key}', lang)}" for n, key in enumerate(CATEGORIES, 1)),
    )
    assert "1. Bamako" in citizen.say("2")[-1]  # theft
    assert "4. Commune IV" in citizen.say("1")[-1]
    assert words(*citizen.say("4")).startswith(words(t("report.danger", lang)))
    assert words(*citizen.say("2")) == words(t("report.describe", lang))
    assert words(*citizen.say(DESCRIPTIONS[lang])).startswith(words(t("report.anonymous", lang)))
    assert words(*citizen.say("1")).startswith(words(t("report.consent", lang)))
    confirm = citizen.say("2")

    with Session(runtime.engine) as session:
        [report] = session.exec(select(Report)).all()
        area = session.get(Area, report.area_id)
        queues = session.exec(select(QueueEntry).where(QueueEntry.report_id == report.id)).all()
    assert words(*confirm) == words(t("report.confirm", lang, reference=report.reference))
    assert (report.channel, report.language, report.category) == ("sms", lang, "theft")
    assert area.code == "ML-BKO.commune-iv"
    assert report.description == DESCRIPTIONS[lang]
    assert queues, "the report was not routed to any queue"

    # The replies go out on the Orange phone, the citizen's operator (one per pass at 1 SMS/s).
    assert dispatch_once(runtime).sent == 1
    assert len(gateway.sent["orange1"]) == 1
    assert gateway.sent["moov1"] == gateway.sent["telecel1"] == []


# --- exactly once under concurrent redelivery ----------------------------------------------------

REPORT = ["Bonjour", "1", "2", "1", "4", "2", "Vol de moto devant la mosquée", "1", "2"]


def deliver_at_once(app, body: bytes, n: int) -> list[int]:
    """POST ``body`` ``n`` times from ``n`` threads released together; the statuses."""
    statuses: list[int] = []
    barrier = threading.Barrier(n)

    def deliver() -> None:
        client = app.test_client()
        barrier.wait()
        statuses.append(post(client, body, sign(body)).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def test_each_event_delivered_one_to_three_times_at_once_is_taken_once(app, runtime) -> None:
    """The exactly-once run: every webhook of a whole report arrives 1-3 times concurrently (the
    app retries while a slow answer is on its way). One report, one stored input and one set of
    replies per event."""
    copies = [1, 3, 2, 3, 1, 2, 3, 2, 3]
    queued: list[int] = []
    for text, n in zip(REPORT, copies, strict=True):
        data = received(NUMBER, text)
        body = json.dumps(data).encode()
        statuses = deliver_at_once(app, body, n)
        assert statuses == [200] * n
        prefix = f"agw:{DEVICE_ID}:{data['id']}:"
        with Session(runtime.engine) as session:
            rows = session.exec(
                select(Outbox).where(Outbox.idempotency_key.startswith(prefix))
            ).all()
        assert rows, f"no reply to {text!r}"
        queued.append(len(rows))

    assert count(runtime, Message, Message.direction == "in") == len(REPORT)
    assert count(runtime, Report) == 1
    assert count(runtime, Outbox) == sum(queued)
    with Session(runtime.engine) as session:
        [report] = session.exec(select(Report)).all()
    assert report.channel == "sms"


# --- fuzzing -----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.sampled_from(
    ["sms:received", "sms:sent", "sms:delivered", "sms:failed", "sms:cancelled", "system:ping", "x"]
)


@st.composite
def gateway_bodies(draw: st.DrawFn) -> bytes:
    """A body as the app sends it, then up to three fields replaced by anything; or noise."""
    data = received(
        draw(st.sampled_from([NUMBER, MOOV_NUMBER, "76900003", "0022376900004"])),
        draw(st.text(max_size=200)),
    )
    data["event"] = draw(EVENTS)
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.sampled_from(["top", "payload"]))
        target = (
            data if where == "top" or not isinstance(data.get("payload"), dict) else data["payload"]
        )
        target[draw(st.sampled_from([*sorted(target), "extra"]))] = draw(json_values)
    return draw(
        st.one_of(
            st.just(json.dumps(data).encode()),
            st.just(json.dumps(data).encode()),
            st.binary(max_size=200),
        )
    )


def test_fuzzed_signed_bodies_never_give_a_5xx_nor_half_write(client, runtime, db_url) -> None:
    tally: Counter[int] = Counter()

    @FUZZ
    @given(gateway_bodies())
    def run(body: bytes) -> None:
        before = snapshot(runtime.engine)
        response = post(client, body, sign(body))
        tally[response.status_code] += 1
        assert response.status_code < 500
        if response.status_code >= 400:
            assert snapshot(runtime.engine) == before

    run()
    report_statuses("/sms-gateway/webhook", db_url, tally)
    assert tally[200] and tally[400], tally
