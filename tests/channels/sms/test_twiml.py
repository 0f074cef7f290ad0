"""The SMS webhook's TwiML is written as text (web/twilio_sms.py): it must be exactly what the
twilio library's ``MessagingResponse`` prints for the same messages, and parse as XML."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st
from twilio.twiml.messaging_response import MessagingResponse

from citoyen.web.twilio_sms import messages_twiml


def library_twiml(texts: list[str]) -> str:
    response = MessagingResponse()
    for text in texts:
        response.message(text)
    return str(response)


# Characters XML 1.0 can carry (the library writes others as they are, into invalid XML).
XML_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
        + ["\ufffe", "\uffff"],
    )
)


def test_known_texts_match_the_library() -> None:
    cases = [
        [],
        [""],
        ["Merci. Votre référence : 123-4567"],
        ["a & b < c > \"d\" 'e' ]]> 🙂", "Appelez le 17", "ɛ ɔ ɲ ŋ"],
        ["line one\nline two\r\n\ttab"],
    ]
    for texts in cases:
        assert messages_twiml(texts) == library_twiml(texts)


@given(st.lists(XML_TEXT, max_size=4))
def test_any_texts_match_the_library_and_parse_back(texts: list[str]) -> None:
    xml = messages_twiml(texts)
    assert xml == library_twiml(texts)
    root = ET.fromstring(xml.encode())
    assert root.tag == "Response"
    # XML parsers normalise line ends (\r\n and \r to \n) in text.
    expected = [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts]
    assert [m.text or "" for m in root.findall("Message")] == expected
