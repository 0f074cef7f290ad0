"""Outbound SMS over gateway phones: the real android-sms-gateway client against a local fake of
the app's HTTP API. Which phone sends (the recipient's operator first), failover when a phone
stops answering, per-phone rates, and the exactly-once-per-phone message id."""

from __future__ import annotations

import threading
import time

import pytest
from phonenumbers import carrier
from sqlmodel import Session

from citoyen.channels import mali_operators
from citoyen.channels.android_gateway import (
    DOWN_FIRST_SECONDS,
    AndroidGatewaySender,
    gateway_message_id,
)
from citoyen.channels.base import OutboundMessage, PermanentSendError, TransientSendError
from citoyen.channels.mali_operators import operator_of
from citoyen.models import GatewayPhoneRecord as PhoneRow
from citoyen.services.gateway_phones import DatabasePhoneHealth
from tests.channels.gateway.conftest import MOOV_NUMBER, ORANGE_NUMBER, TELECEL_NUMBER


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def message(
    number: str, body: str = "Votre signalement 482-1937 est pris en charge.", key: str = "k1"
):
    return OutboundMessage(1, key, "sms", f"tel:{number}", body)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_sender(phones, clock, health=None, order=("orange", "moov", "telecel")):
    return AndroidGatewaySender(phones, order, health=health, clock=clock, sleep=clock.sleep)


@pytest.mark.parametrize(
    ("number", "operator"),
    [
        (ORANGE_NUMBER, "orange"),
        ("+22390000001", "orange"),
        (MOOV_NUMBER, "moov"),
        ("+22399000001", "moov"),
        (TELECEL_NUMBER, "telecel"),
        ("+22620000000", None),  # Burkina Faso
        ("+22320000000", None),  # a Malian landline
    ],
)
def test_the_operator_comes_from_the_carrier_data(number, operator) -> None:
    assert operator_of(number) == operator


def test_numbers_the_carrier_data_does_not_name_fall_back_to_the_prefix(monkeypatch) -> None:
    monkeypatch.setattr(carrier, "name_for_number", lambda *_: "")
    assert mali_operators.operator_of("+22375000000") == "orange"
    assert mali_operators.operator_of("+22365000000") == "moov"
    assert mali_operators.operator_of("+22351000000") == "telecel"
    assert mali_operators.operator_of("+22390000000") is None


@pytest.mark.parametrize(
    ("number", "phone"),
    [(ORANGE_NUMBER, "orange1"), (MOOV_NUMBER, "moov1"), (TELECEL_NUMBER, "telecel1")],
)
def test_each_sms_goes_out_on_the_phone_of_the_recipients_operator(
    gateway, phones, clock, number, phone
) -> None:
    sender = make_sender(phones, clock)
    result = sender.send(message(number, key=f"key-{phone}"))
    [(name, sent)] = gateway.all()
    assert name == phone
    assert sent["phoneNumbers"] == [number]
    assert sent["textMessage"] == {"text": "Votre signalement 482-1937 est pris en charge."}
    assert sent["withDeliveryReport"] is True
    assert sent["id"] == result.provider_id == gateway_message_id(f"key-{phone}")


def test_a_retried_row_is_not_sent_twice_by_one_phone(gateway, phones, clock) -> None:
    sender = make_sender(phones, clock)
    first = sender.send(message(ORANGE_NUMBER, key="row-7"))
    clock.now += 60
    again = sender.send(message(ORANGE_NUMBER, key="row-7"))  # the answer was lost: the row retried
    assert first == again
    assert len(gateway.sent["orange1"]) == 1


def test_a_phone_that_stops_answering_hands_its_messages_to_the_next_and_comes_back(
    gateway, phones, clock, runtime
) -> None:
    sender = make_sender(phones, clock, DatabasePhoneHealth(runtime.engine))
    gateway.off.add("orange1")
    sender.send(message(ORANGE_NUMBER, "Premier", key="a"))
    assert gateway.texts("orange1") == []
    assert gateway.texts("moov1") == ["Premier"]  # the next operator in CITOYEN_SMS_GATEWAY_ORDER
    with Session(runtime.engine) as session:
        row = session.get(PhoneRow, "orange1")
    assert (row.state, row.failures, row.operator) == ("down", 1, "orange")
    assert row.last_error == "gateway 503" and row.down_until is not None

    # While it is down it is not even asked.
    clock.now += 10  # the next phone has its token back (10 SMS a minute)
    sender.send(message(ORANGE_NUMBER, "Deuxième", key="b"))
    assert gateway.texts("moov1") == ["Premier", "Deuxième"]
    asked = [r for r, _ in gateway.httpserver.log if r.path.startswith("/orange1/")]
    assert len(asked) == 1

    gateway.off.clear()
    clock.now += DOWN_FIRST_SECONDS + 1
    sender.send(message(ORANGE_NUMBER, "Troisième", key="c"))
    assert gateway.texts("orange1") == ["Troisième"]
    with Session(runtime.engine) as session:
        row = session.get(PhoneRow, "orange1")
    assert (row.state, row.failures, row.down_until) == ("up", 0, None)
    assert row.last_ok_at is not None


def test_a_send_stops_trying_phones_when_its_time_is_up(gateway, phones, clock) -> None:
    """Each phone may take its whole timeout; the send must end within the dispatcher's margin."""
    from citoyen.channels import android_gateway

    more = phones + [gateway.phone(f"extra{n}", "any") for n in range(4)]
    gateway.off.update(p.name for p in more)
    sender = make_sender(more, clock)
    real = sender._send_on

    def slow(phone, *args):
        clock.now += android_gateway.GATEWAY_TIMEOUT_SECONDS  # each phone times out
        return real(phone, *args)

    sender._send_on = slow
    with pytest.raises(TransientSendError):
        sender.send(message(ORANGE_NUMBER))
    assert clock.now - 1000.0 <= android_gateway.SEND_BUDGET_SECONDS
    assert 0 < len(gateway.httpserver.log) < len(more)


def test_when_no_phone_answers_the_message_waits(gateway, phones, clock) -> None:
    sender = make_sender(phones, clock)
    gateway.off.update({"orange1", "moov1", "telecel1"})
    with pytest.raises(TransientSendError) as caught:
        sender.send(message(MOOV_NUMBER))
    assert caught.value.code == "phones_down"
    assert caught.value.retry_after == pytest.approx(DOWN_FIRST_SECONDS)
    assert gateway.all() == []


def test_wrong_credentials_are_a_phone_problem_not_a_bad_message(gateway, phones, clock) -> None:
    gateway.auth["orange1"] = "Basic bm9wZQ=="
    sender = make_sender(phones, clock)
    sender.send(message(ORANGE_NUMBER))
    assert [name for name, _ in gateway.all()] == ["moov1"]


def test_a_busy_phone_spills_to_the_next_and_all_busy_gives_the_row_back(
    gateway, phones, clock
) -> None:
    slow = [p.model_copy(update={"per_minute": 1.0}) for p in phones]
    sender = make_sender(slow, clock)
    for n in range(3):
        sender.send(message(ORANGE_NUMBER, f"n{n}", key=f"k{n}"))
    assert [name for name, _ in gateway.all()] == ["orange1", "moov1", "telecel1"]
    with pytest.raises(TransientSendError) as caught:
        sender.send(message(ORANGE_NUMBER, "n3", key="k3"))
    assert caught.value.code == "phones_busy"
    assert 50 < caught.value.retry_after <= 60
    assert len(gateway.all()) == 3


def test_a_send_that_waited_for_its_phone_takes_the_token_made_meanwhile(
    gateway, phones, clock
) -> None:
    """Two sends for one phone at once (two sending threads): the second waits for the first's
    answer, and the token the phone made meanwhile is its own. Read before the wait, the clock
    said the phone was busy, and the SMS went off-net on another operator's phone."""
    sender = make_sender([p.model_copy(update={"per_minute": 60.0}) for p in phones], clock)
    orange = sender.phones[0]
    client, answering, answer = orange.client, threading.Event(), threading.Event()

    class SlowToAnswer:
        def send(self, request):
            answering.set()
            assert answer.wait(10)
            return client.send(request)

    orange.client = SlowToAnswer()
    first = threading.Thread(target=sender.send, args=(message(ORANGE_NUMBER, "a", key="a"),))
    first.start()
    assert answering.wait(10)
    orange.client = client  # the second send's own call is answered at once
    second = threading.Thread(target=sender.send, args=(message(ORANGE_NUMBER, "b", key="b"),))
    second.start()
    time.sleep(0.2)  # the second send is waiting for the phone
    clock.now += 1.0  # the first answer took a second: the phone has made a token meanwhile
    answer.set()
    first.join(10)
    second.join(10)
    assert gateway.texts("orange1") == ["a", "b"]
    assert gateway.texts("moov1") == []


def test_a_short_wait_for_a_busy_phone_is_waited_out(gateway, phones, clock) -> None:
    quick = [phones[0].model_copy(update={"per_minute": 30.0})]  # one every 2 s
    sender = make_sender(quick, clock)
    sender.send(message(ORANGE_NUMBER, "a", key="a"))
    sender.send(message(ORANGE_NUMBER, "b", key="b"))
    assert gateway.texts("orange1") == ["a", "b"]
    assert clock.slept == [pytest.approx(2.0)]


def test_a_message_the_gateway_refuses_fails_without_trying_other_phones(
    gateway, phones, clock, httpserver
) -> None:
    httpserver.clear_all_handlers()
    httpserver.expect_request("/orange1/messages", method="POST").respond_with_json(
        {"message": "invalid phone number +22376000031"}, status=400
    )
    sender = make_sender(phones, clock)
    with pytest.raises(PermanentSendError) as caught:
        sender.send(message(ORANGE_NUMBER))
    assert caught.value.code == "gateway_400"
    assert "22376000031" not in str(caught.value)
    assert len(httpserver.log) == 1
