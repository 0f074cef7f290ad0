"""Every webhook endpoint under hypothesis: never a 5xx, and a refused request changes nothing.

Every route Twilio calls is covered, the citizens' IVR and SMS, the survey calls and the staff's
prompt recorder included (on a call identified with a PIN, so its steps reach the service).
Requests start as what the provider sends (so most reach the service, not only the checks) and
get up to three mutations: a field missing, replaced by anything (huge, empty, another kind of
address, a NUL, a provider id one character off), repeated, or an unknown field
added; query strings valid or not; signed correctly with twilio's own validator (mostly), with
another token, or not at all. Telegram bodies are real updates with up to two values replaced or
removed at any depth (by JSON nested past any update, lone surrogates, NUL, oversized text among
the rest), arbitrary JSON or bytes, with the right, a wrong or no secret. Each test also checks
that cases reached the service (answers that are neither 400 nor 403). After each request:

- the status is below 500 (the app runs with TESTING: an unhandled exception fails the test);
- when it is a 4xx, every row of every table is as before (no partial write).

The CI run tries ``CITOYEN_FUZZ_EXAMPLES`` cases per endpoint (default 40), on SQLite and
PostgreSQL; the full run (bench/fuzz_webhooks.py, ``--postgres`` for both databases) sets it to
10,000. Results are in docs/security.md.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, sign
from tests.security.conftest import FUZZ, TELEGRAM_SECRET, report_statuses, snapshot

# Valid values (what Twilio sends) and anything at all (what an attacker or a bug sends).
VALID_PHONES = st.sampled_from(["+22376900001", "+22376900002", "76900003", "0022376900004"])
hexes = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
VALID = {
    "phone": VALID_PHONES,
    "message_sid": hexes.map(lambda h: "SM" + h),
    "call_sid": st.sampled_from(["CA" + "1" * 32, "CA" + "2" * 32]),  # calls that go on
    "recording_sid": hexes.map(lambda h: "RE" + h),
    "text": st.one_of(
        st.sampled_from(["SIGNALER", "STOP", "AIDE", "DISCRET", "1", "2", "3", "Bonjour"]),
        st.text(max_size=160),
    ),
    "digits": st.sampled_from(["1", "2", "3", "9", "0", "*", "#", "12"]),
    "number": st.integers(0, 300).map(str),
    "url": st.just("https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0"),
    "direction": st.sampled_from(["outbound-api", "inbound"]),
    "answered_by": st.sampled_from(["human", "unknown", "machine_start", "fax"]),
}
ANYTHING = st.one_of(
    st.text(max_size=40),
    st.text(min_size=1500, max_size=1700),
    # Oversized: far over every column and limit (hypothesis draws text of a few thousand at most).
    st.tuples(st.text(min_size=1, max_size=5), st.integers(4_000, 30_000)).map(
        lambda t: t[0] * t[1]
    ),
    st.sampled_from(["", " ", "+1", "telegram:12345", "withheld:CA1", "anonymous", "-1", "9" * 30]),
    # A NUL or a lone surrogate inside a value; provider ids one character off their format.
    st.text(max_size=10).map(lambda t: t + "\x00" + t),
    st.sampled_from(["SM", "CA", "RE", "MM", "AC"]).flatmap(
        lambda prefix: hexes.map(lambda h: prefix + h + "0")
    ),
    hexes.map(lambda h: "CA" + h + "NumMedia0"),
)

# Each endpoint's fields and the kind of valid value each takes.
FIELDS: dict[str, dict[str, str]] = {
    "/twilio/sms": {
        "From": "phone",
        "To": "phone",
        "Body": "text",
        "MessageSid": "message_sid",
        "NumMedia": "number",
    },
    "/twilio/voice": {"From": "phone", "To": "phone", "CallSid": "call_sid"},
    "/twilio/voice/step": {"From": "phone", "CallSid": "call_sid", "Digits": "digits"},
    "/twilio/voice/recorded": {
        "From": "phone",
        "CallSid": "call_sid",
        "RecordingUrl": "url",
        "RecordingSid": "recording_sid",
        "RecordingDuration": "number",
    },
    "/twilio/voice/recording-status": {
        "CallSid": "call_sid",
        "RecordingUrl": "url",
        "RecordingSid": "recording_sid",
        "RecordingStatus": "status",
        "RecordingDuration": "number",
    },
    "/twilio/status": {
        "MessageSid": "message_sid",
        "MessageStatus": "status",
        "ErrorCode": "number",
    },
    # Survey calls we place (the citizen is "To"), and their status callbacks.
    "/twilio/voice/survey": {
        "To": "phone",
        "CallSid": "call_sid",
        "Direction": "direction",
        "AnsweredBy": "answered_by",
    },
    "/twilio/voice/survey-status": {
        "To": "phone",
        "CallSid": "call_sid",
        "CallStatus": "status",
        "CallDuration": "number",
        "AnsweredBy": "answered_by",
    },
    # Call-backs we place (the citizen is "To"; request 1 is being called, see
    # ``_callback_placed``), and their status callbacks.
    "/twilio/voice/callback": {
        "To": "phone",
        "CallSid": "call_sid",
        "Direction": "direction",
        "AnsweredBy": "answered_by",
    },
    "/twilio/voice/callback-status": {
        "To": "phone",
        "CallSid": "call_sid",
        "CallStatus": "status",
        "CallDuration": "number",
        "AnsweredBy": "answered_by",
    },
    # The staff's prompt recorder (see the ``recorder`` fixture: the call is identified).
    "/twilio/voice/prompts": {"From": "phone", "CallSid": "call_sid"},
    "/twilio/voice/prompts/staff": {"From": "phone", "CallSid": "call_sid", "Digits": "digits"},
    "/twilio/voice/prompts/language": {"CallSid": "call_sid", "Digits": "digits"},
    "/twilio/voice/prompts/mode": {"CallSid": "call_sid", "Digits": "digits"},
    "/twilio/voice/prompts/number": {"CallSid": "call_sid", "Digits": "digits"},
    "/twilio/voice/prompts/recorded": {
        "CallSid": "call_sid",
        "RecordingUrl": "url",
        "RecordingSid": "recording_sid",
        "RecordingDuration": "number",
    },
    "/twilio/voice/prompts/silent": {"CallSid": "call_sid"},
    "/twilio/voice/prompts/review": {"CallSid": "call_sid", "Digits": "digits"},
}
STATUSES = st.sampled_from(
    ["queued", "sent", "delivered", "undelivered", "failed", "completed", "absent", "x"]
)
QUERIES = {
    "/twilio/voice/step": st.one_of(
        st.integers(1, 12).map(lambda n: f"?n={n}"), st.just("?n=2&timeout=1")
    ),
    "/twilio/voice/recorded": st.integers(1, 12).map(lambda n: f"?n={n}"),
    "/twilio/voice/survey": st.integers(1, 3).map(lambda n: f"?invitation={n}"),
    "/twilio/voice/survey-status": st.integers(1, 3).map(lambda n: f"?invitation={n}"),
    "/twilio/voice/callback": st.integers(1, 3).map(lambda n: f"?request={n}"),
    "/twilio/voice/callback-status": st.integers(1, 3).map(lambda n: f"?request={n}"),
    "/twilio/voice/prompts/pin": st.just("?staff=1"),
    "/twilio/voice/prompts/number": st.sampled_from(["?mode=all", "?mode=missing"]),
    "/twilio/voice/prompts/recorded": st.integers(1, 5).map(lambda n: f"?i={n}&mode=all"),
    "/twilio/voice/prompts/silent": st.integers(1, 5).map(lambda n: f"?i={n}&mode=missing"),
    "/twilio/voice/prompts/review": st.sampled_from(["?i=1&mode=missing&take=1"]),
}


@st.composite
def twilio_requests(draw: st.DrawFn, path: str) -> tuple[str, MultiDict, dict[str, str]]:
    """A valid request for ``path`` (values as Twilio sends them), then 0 to 3 mutations: a
    field dropped, replaced by anything, repeated, or an unknown field added; the query string
    valid or not; signed correctly (mostly), with another token, or not at all."""
    values: dict[str, list[str]] = {"AccountSid": [ACCOUNT_SID]}
    for name, kind in FIELDS[path].items():
        values[name] = [draw(STATUSES if kind == "status" else VALID[kind])]
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["drop", "replace", "repeat", "add"]))
        name = draw(st.sampled_from(sorted(values))) if values else "x"
        if action == "drop":
            values.pop(name, None)
        elif action == "replace":
            values[name] = [draw(ANYTHING)]
        elif action == "repeat" and name in values:
            values[name].append(draw(ANYTHING))
        else:
            values[draw(st.text(min_size=1, max_size=12))] = [draw(ANYTHING)]
    form = MultiDict([(k, v) for k, vs in values.items() for v in vs])
    valid_query = QUERIES.get(path, st.just(""))
    query = draw(
        st.one_of(
            valid_query,
            valid_query,
            st.text(max_size=15).map(lambda t: f"?n={t}"),
            st.integers(-5, 100_000).map(lambda n: f"?n={n}"),
        )
    )
    url = PUBLIC_URL + path + query
    signing = draw(st.sampled_from(["valid"] * 6 + ["wrong", "none"]))
    headers: dict[str, str] = {}
    if signing == "valid":
        headers["X-Twilio-Signature"] = sign(url, form, AUTH_TOKEN)
    elif signing == "wrong":
        headers["X-Twilio-Signature"] = sign(url, form, "not-the-token")
    return path + query, form, headers


def _check(
    client: Any, engine: Any, send: Any, tally: Counter[int], *, in_hypothesis: bool = True
) -> None:
    before = snapshot(engine)
    response = send()
    if in_hypothesis:
        event(f"status {response.status_code}")
    tally[response.status_code] += 1
    assert response.status_code < 500, response.status_code
    if 400 <= response.status_code < 500:
        assert snapshot(engine) == before, f"a {response.status_code} answer changed the database"


REFUSED = (400, 403, 404, 413)  # the refusals of the checks; anything else reached the service


@pytest.fixture
def recorder(client: Any, runtime: Any) -> None:
    """The fuzzed call (CallSid ``CA1…1``) is a staff member's recorder call, identified with
    their PIN and with a language chosen, as Twilio's requests would have made it."""
    from citoyen.db import write_session
    from citoyen.models import User
    from citoyen.services.prompts.pins import set_pin

    with write_session(runtime.engine) as session:
        user = User(email="fuzz@example.ml", password_hash="x", role="coordinator")
        session.add(user)
        session.flush()
        user_id = user.id
    set_pin(runtime, user_id, "4821", by_user_id=None)
    call = {"CallSid": "CA" + "1" * 32, "AccountSid": ACCOUNT_SID, "From": "+22376900001"}
    for path, digits in [
        ("/twilio/voice/prompts", None),
        ("/twilio/voice/prompts/staff", f"{user_id}#"),
        (f"/twilio/voice/prompts/pin?staff={user_id}", "4821#"),
        ("/twilio/voice/prompts/language", "2"),
        ("/twilio/voice/prompts/mode", "1"),
        ("/twilio/voice/prompts/recorded?i=1&mode=missing", None),  # take 1, for /review
    ]:
        form = {**call, **({"Digits": digits} if digits else {})}
        if "recorded" in path:
            form |= {
                "RecordingSid": "RE" + "1" * 32,
                "RecordingUrl": VALID_EXAMPLE["url"],
                "RecordingDuration": "4",
            }
        response = client.post(
            path, data=form, headers={"X-Twilio-Signature": sign(PUBLIC_URL + path, form)}
        )
        assert response.status_code == 200, (path, response.status_code)


def _callback_placed(runtime: Any) -> None:
    """Call-back request 1 is being called (CallSid ``CA2…2``), as the worker leaves it."""
    from datetime import UTC, datetime

    from citoyen.db import write_session
    from citoyen.models import CallbackRequest
    from citoyen.services.contacts import get_or_create_contact

    now = datetime.now(UTC)
    with write_session(runtime.engine) as session:
        contact, _ = get_or_create_contact(session, runtime.vault, "tel:+22376900001", now)
        session.add(
            CallbackRequest(
                id=1,
                request_key="conversation:fuzz",
                contact_id=contact.id,
                source="sms",
                status="placed",
                attempts=1,
                call_sid="CA" + "2" * 32,
                call_status="queued",
                due_at=now,
                requested_at=now,
                placed_at=now,
            )
        )


@pytest.mark.parametrize("path", list(FIELDS))
def test_twilio_webhooks_never_fail_nor_half_write(
    client, runtime, db_url, recorder, path: str
) -> None:
    tally: Counter[int] = Counter()
    if path.startswith("/twilio/voice/callback"):
        _callback_placed(runtime)

    @FUZZ
    @given(twilio_requests(path))
    def run(request: tuple[str, MultiDict, dict[str, str]]) -> None:
        target, form, headers = request
        send = lambda: client.post(target, data=form, headers=headers)  # noqa: E731
        _check(client, runtime.engine, send, tally)

    run()
    report_statuses(path, db_url, tally)
    reached = sum(n for code, n in tally.items() if code not in REFUSED)
    if path.startswith(("/twilio/voice/survey", "/twilio/voice/callback")):
        # No survey call was placed (and most fuzzed call-backs name another call or request):
        # the service's answer for an unknown one is its 404 (call) or 204 (status), past the
        # signature and every check of the form.
        reached = sum(n for code, n in tally.items() if code not in (400, 403, 413))
    assert reached, f"none reached the service: {tally}"


def _update_fixtures() -> list[dict[str, Any]]:
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "channels" / "telegram" / "fixtures"
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# Values no update holds: JSON nested past any update (to the parser's limit and beyond), a lone
# surrogate (valid JSON, no UTF-8 text), a NUL, text far over any field. Written into the body as
# raw JSON by ``_encode`` (json.dumps could neither nest 2,000 deep nor keep a lone surrogate).
HOSTILE = st.one_of(
    st.integers(30, 2_000).map(lambda n: _Raw("[" * n + "]" * n)),
    st.integers(30, 1_000).map(lambda n: _Raw('{"a":' * n + "1" + "}" * n)),
    st.sampled_from(["\\ud800", "x\\udfffy", "\\udc00\\ud800"]).map(lambda t: _Raw(f'"{t}"')),
    st.text(max_size=20).map(lambda t: t + "\x00"),
    st.tuples(st.text(min_size=1, max_size=5), st.integers(1_000, 20_000)).map(
        lambda t: t[0] * t[1]
    ),
)


class _Raw(str):
    """JSON text to put into a body as it is."""


def _encode(value: Any) -> bytes:
    """``value`` as a JSON body, with each :class:`_Raw` inside written as it is."""
    raws: list[str] = []

    def mark(v: Any) -> Any:
        if isinstance(v, _Raw):
            raws.append(str(v))
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(v, dict):
            return {k: mark(x) for k, x in v.items()}
        if isinstance(v, list):
            return [mark(x) for x in v]
        return v

    text = json.dumps(mark(value), allow_nan=True)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@RAW{i}@@"', raw)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated_updates(draw: st.DrawFn) -> Any:
    """A real update with one value somewhere replaced, removed or added."""
    update = json.loads(json.dumps(draw(st.sampled_from(_update_fixtures()))))
    update["update_id"] = draw(st.one_of(st.integers(0, 2**40), st.integers(0, 2**40), json_values))
    for _ in range(draw(st.integers(0, 2))):
        node = update
        for _ in range(draw(st.integers(0, 3))):
            dicts = [k for k, v in node.items() if isinstance(v, dict)]
            if not dicts:
                break
            node = node[draw(st.sampled_from(dicts))]
        key = draw(st.sampled_from([*node.keys(), "extra"]))
        if draw(st.booleans()):
            node[key] = draw(st.one_of(json_values, json_values, HOSTILE))
        else:
            node.pop(key, None)
    return update


telegram_bodies = st.one_of(
    mutated_updates().map(_encode),
    mutated_updates().map(_encode),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=300),
)


def test_telegram_webhook_never_fails_nor_half_writes(client, runtime, db_url) -> None:
    tally: Counter[int] = Counter()

    @FUZZ
    @given(
        telegram_bodies,
        st.sampled_from([TELEGRAM_SECRET, TELEGRAM_SECRET, "wrong", None]),
        st.sampled_from(["application/json", "text/plain", ""]),
    )
    def run(body: bytes, secret: str | None, content_type: str) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        _check(
            client,
            runtime.engine,
            lambda: client.post("/telegram/webhook", data=body, headers=headers),
            tally,
        )

    run()
    report_statuses("/telegram/webhook", db_url, tally)
    assert sum(n for code, n in tally.items() if code < 300), f"none reached the service: {tally}"


def test_telegram_user_id_that_is_no_telegram_id_is_a_400(client, runtime) -> None:
    """Found by the fuzzing above: a 26-digit user id used to raise AddressError (a 500)."""
    update = next(u for u in _update_fixtures() if "message" in u)
    update = json.loads(json.dumps(update))
    update["message"]["from"]["id"] = 10**25
    update["message"]["chat"]["id"] = 10**25
    before = snapshot(runtime.engine)
    response = client.post(
        "/telegram/webhook",
        data=json.dumps(update),
        headers={
            "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400
    assert snapshot(runtime.engine) == before


@pytest.mark.parametrize("path", [*FIELDS, "/telegram/webhook"])
def test_a_body_over_one_megabyte_is_refused_and_changes_nothing(client, runtime, path) -> None:
    before = snapshot(runtime.engine)
    body = b"Body=" + b"x" * (1024 * 1024 + 1)
    response = client.post(
        path,
        data=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET,
            "X-Twilio-Signature": "x",
        },
    )
    assert response.status_code == 413
    assert snapshot(runtime.engine) == before


def test_a_nul_character_in_a_message_is_dropped_not_a_500(client, runtime) -> None:
    """Found by the fuzzing above on PostgreSQL, whose text columns refuse NUL: an SMS body
    with one used to fail its insert (a 500). The character is dropped; the message is kept."""
    from sqlmodel import Session, select

    from citoyen.models import Message
    from tests.channels.twilio_helpers import signed_post

    form = {
        "From": "+22376900001",
        "To": "+22320200000",
        "Body": "Bon\x00jour",
        "MessageSid": "SM" + "3" * 32,
        "AccountSid": ACCOUNT_SID,
    }
    response = signed_post(client, "/twilio/sms", form)
    assert response.status_code == 200
    with Session(runtime.engine) as session:
        bodies = session.exec(select(Message.body).where(Message.direction == "in")).all()
    assert bodies == ["Bonjour"]


VALID_EXAMPLE = {
    "phone": "+22376900001",
    "message_sid": "SM" + "4" * 32,
    "call_sid": "CA" + "1" * 32,
    "recording_sid": "RE" + "4" * 32,
    "text": "Bonjour",
    "digits": "1",
    "number": "12",
    "url": "https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0",
    "status": "completed",
    "direction": "outbound-api",
    "answered_by": "machine_start",
}


@pytest.mark.parametrize("at", [3, None])
@pytest.mark.parametrize(
    ("path", "field"), [(path, field) for path, fields in FIELDS.items() for field in fields]
)
def test_a_nul_character_in_any_twilio_field_is_never_a_500(
    client, runtime, path, field, at
) -> None:
    """Every field of every Twilio webhook, with a NUL inside (or at the end of) an otherwise
    valid request: PostgreSQL refuses NUL in text, so any value stored as given would fail."""
    form = {name: VALID_EXAMPLE[kind] for name, kind in FIELDS[path].items()}
    form["AccountSid"] = ACCOUNT_SID
    value = form[field]
    form[field] = value[:at] + "\x00" + value[at:] if at is not None else value + "\x00"
    target = path + {
        "/twilio/voice/step": "?n=2",
        "/twilio/voice/recorded": "?n=2",
        "/twilio/voice/survey": "?invitation=1",
        "/twilio/voice/survey-status": "?invitation=1",
        "/twilio/voice/prompts/recorded": "?i=1&mode=all",
    }.get(path, "")
    headers = {"X-Twilio-Signature": sign(PUBLIC_URL + target, form, AUTH_TOKEN)}
    send = lambda: client.post(target, data=form, headers=headers)  # noqa: E731
    _check(client, runtime.engine, send, Counter(), in_hypothesis=False)


def _nul_everywhere(value: Any) -> Any:
    """``value`` with a NUL appended to every string inside it."""
    if isinstance(value, str):
        return value + "\x00"
    if isinstance(value, dict):
        return {k: _nul_everywhere(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_nul_everywhere(v) for v in value]
    return value


@pytest.mark.parametrize("index", range(len(_update_fixtures())))
def test_a_nul_character_in_any_telegram_string_is_never_a_500(client, runtime, index) -> None:
    update = _nul_everywhere(_update_fixtures()[index])
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    send = lambda: client.post("/telegram/webhook", json=update, headers=headers)  # noqa: E731
    _check(client, runtime.engine, send, Counter(), in_hypothesis=False)


@pytest.mark.parametrize(
    ("fixture", "where", "value"),
    [
        ("callback_query", ("callback_query", "data"), True),
        ("callback_query", ("callback_query", "data"), 12),
        ("message_text", ("message", "text"), 5),
        ("message_text", ("message", "text"), ["SIGNALER"]),
    ],
)
def test_a_telegram_value_of_the_wrong_json_type_is_a_400(
    client, runtime, fixture, where, value
) -> None:
    """Found by the bench-sized fuzzing: a button whose data is ``true`` was a 500."""
    update = json.loads(json.dumps(next(u for u in _update_fixtures() if where[0] in u)))
    update[where[0]][where[1]] = value
    before = snapshot(runtime.engine)
    response = client.post(
        "/telegram/webhook",
        json=update,
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    )
    assert response.status_code == 400
    assert snapshot(runtime.engine) == before
