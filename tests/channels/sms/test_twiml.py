"""The SMS webhook's TwiML (web/twilio_sms.py, built by the twilio library's
``MessagingResponse``) parses as XML and carries each text as one ``<Message>``, whatever the
text holds."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hypothesis import given
from hypothesis import strategies as st

from citoyen.web.twiml import messages_twiml

# Characters XML 1.0 can carry (the library writes others as they are, into invalid XML).
XML_TEXT = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        blacklist_characters=[chr(c) for c in range(32) if c not in (9, 10, 13)]
        + ["\ufffe", "\uffff"],
    )
)


def _messages(xml: str) -> list[str]:
    root = ET.fromstring(xml.encode())
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


def test_known_texts_parse_back() -> None:
    cases = [
        [],
        [""],
        ["Merci. Votre référence : 123-4567"],
        ["a & b < c > \"d\" 'e' ]]> 🙂", "Appelez le 17", "ɛ ɔ ɲ ŋ"],
    ]
    for texts in cases:
        assert _messages(messages_twiml(texts)) == texts


@given(st.lists(XML_TEXT, max_size=4))
def test_any_texts_parse_back(texts: list[str]) -> None:
    # XML parsers normalise line ends (\r\n and \r to \n) in text.
    expected = [t.replace("\r\n", "\n").replace("\r", "\n") for t in texts]
    assert _messages(messages_twiml(texts)) == expected
