"""Every webhook endpoint under hypothesis: never a 5xx, and a refused request changes nothing.

Requests are built the way an attacker or a confused provider could send them: signed correctly
(so they reach the parsing, not only the signature check) or not, with fields missing, repeated,
huge, of the wrong kind, and with unknown fields; Telegram bodies are arbitrary JSON or mutations
of real updates, with the right or a wrong secret. After each request:

- the status is below 500 (the app runs with TESTING: an unhandled exception fails the test);
- when it is a 4xx, every row of every table is as before (no partial write).

The CI run tries ``CITOYEN_FUZZ_EXAMPLES`` cases per endpoint (default 40); the bench run
(bench/fuzz_webhooks.py) sets it to 10,000. Results are in docs/security.md.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.channels.twilio_helpers import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, sign
from tests.security.conftest import TELEGRAM_SECRET, snapshot

EXAMPLES = int(os.environ.get("CITOYEN_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

phones = st.one_of(
    st.sampled_from(["+22376900001", "+22376900002", "76900003", "0022376900004", "+15005550006"]),
    st.from_regex(r"\+223[5-9]\d{7}", fullmatch=True),
    st.text(max_size=30),
)
sids = st.one_of(
    st.from_regex(r"(SM|MM|CA|RE)[0-9a-f]{32}", fullmatch=True),
    st.text(max_size=80),
)
texts = st.one_of(
    st.text(max_size=200),
    st.sampled_from(["SIGNALER", "STOP", "AIDE", "1", "2", "9", "*", "#", "", " "]),
    st.text(min_size=1500, max_size=1700),
)
digits = st.one_of(st.from_regex(r"[0-9*#]{0,5}", fullmatch=True), st.text(max_size=10))
numbers = st.one_of(st.integers(-5, 100_000).map(str), st.text(max_size=10))
urls = st.one_of(
    st.just("https://api.twilio.com/2010-04-01/Accounts/AC0/Recordings/RE0"),
    st.text(max_size=100),
)

FIELDS: dict[str, dict[str, st.SearchStrategy[str]]] = {
    "/twilio/sms": {
        "From": phones,
        "To": phones,
        "Body": texts,
        "MessageSid": sids,
        "AccountSid": st.just(ACCOUNT_SID),
        "NumMedia": numbers,
        "MediaUrl0": urls,
    },
    "/twilio/voice": {
        "From": phones,
        "To": phones,
        "CallSid": sids,
        "AccountSid": st.just(ACCOUNT_SID),
        "CallStatus": st.sampled_from(["ringing", "in-progress", "completed", "x"]),
    },
    "/twilio/voice/step": {
        "From": phones,
        "CallSid": sids,
        "Digits": digits,
        "AccountSid": st.just(ACCOUNT_SID),
    },
    "/twilio/voice/recorded": {
        "From": phones,
        "CallSid": sids,
        "RecordingUrl": urls,
        "RecordingSid": sids,
        "RecordingDuration": numbers,
        "Digits": digits,
    },
    "/twilio/voice/recording-status": {
        "CallSid": sids,
        "RecordingUrl": urls,
        "RecordingSid": sids,
        "RecordingStatus": st.sampled_from(["completed", "failed", "absent", "x"]),
        "RecordingDuration": numbers,
    },
    "/twilio/status": {
        "MessageSid": sids,
        "MessageStatus": st.sampled_from(["sent", "delivered", "undelivered", "failed", "x"]),
        "CallSid": sids,
        "CallStatus": st.sampled_from(["completed", "busy", "no-answer", "failed", "x"]),
        "ErrorCode": numbers,
        "CallDuration": numbers,
        "AccountSid": st.just(ACCOUNT_SID),
    },
}


@st.composite
def twilio_requests(draw: st.DrawFn, path: str) -> tuple[str, MultiDict, dict[str, str]]:
    fields = FIELDS[path]
    form: MultiDict = MultiDict()
    for name, values in fields.items():
        if draw(st.integers(0, 9)) == 0:
            continue  # missing
        for _ in range(2 if draw(st.integers(0, 14)) == 0 else 1):  # sometimes repeated
            form.add(name, draw(values))
    for name, value in draw(
        st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=2)
    ).items():
        form.add(name, value)
    query = draw(
        st.one_of(
            st.just(""),
            st.builds(lambda n: f"?n={n}", numbers),
            st.builds(lambda a, b: f"?n={a}&lang={b}", numbers, st.text(max_size=5)),
        )
    )
    url = PUBLIC_URL + path + query
    signing = draw(st.sampled_from(["valid", "valid", "valid", "wrong", "none"]))
    headers: dict[str, str] = {}
    if signing == "valid":
        headers["X-Twilio-Signature"] = sign(url, form, AUTH_TOKEN)
    elif signing == "wrong":
        headers["X-Twilio-Signature"] = sign(url, form, "not-the-token")
    return path + query, form, headers


def _check(client: Any, engine: Any, send: Any) -> None:
    before = snapshot(engine)
    response = send()
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows the spread
    assert response.status_code < 500, response.status_code
    if 400 <= response.status_code < 500:
        assert snapshot(engine) == before, f"a {response.status_code} answer changed the database"


@pytest.mark.parametrize("path", list(FIELDS))
def test_twilio_webhooks_never_fail_nor_half_write(client, runtime, path: str) -> None:
    @FUZZ
    @given(twilio_requests(path))
    def run(request: tuple[str, MultiDict, dict[str, str]]) -> None:
        target, form, headers = request
        _check(client, runtime.engine, lambda: client.post(target, data=form, headers=headers))

    run()


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


@st.composite
def mutated_updates(draw: st.DrawFn) -> Any:
    """A real update with one value somewhere replaced, removed or added."""
    update = json.loads(json.dumps(draw(st.sampled_from(_update_fixtures()))))
    update["update_id"] = draw(st.one_of(st.integers(0, 2**40), json_values))
    node = update
    for _ in range(draw(st.integers(0, 3))):
        dicts = [k for k, v in node.items() if isinstance(v, dict)]
        if not dicts:
            break
        node = node[draw(st.sampled_from(dicts))]
    key = draw(st.sampled_from([*node.keys(), "extra"]))
    if draw(st.booleans()):
        node[key] = draw(json_values)
    else:
        node.pop(key, None)
    return update


telegram_bodies = st.one_of(
    mutated_updates().map(lambda u: json.dumps(u, allow_nan=True).encode()),
    json_values.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=300),
)


def test_telegram_webhook_never_fails_nor_half_writes(client, runtime) -> None:
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
        )

    run()


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
