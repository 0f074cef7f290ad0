"""Transcript tests: talk to the shipped flows as a citizen would, check every reply.

In the style of Zulip's ``verify_dialog``: a test is a list of ``(said, expected)`` turns. Each
``said`` goes through :meth:`ConversationService.handle` exactly as a channel adapter sends it
(an :class:`Inbound` with a fresh provider id), and each reply is rendered exactly as that
channel shows it (``render_sms``, ``render_telegram``, ``render_voice``) before it is compared.

Expected replies are built from the locale catalogue, never copied from it::

    verify_dialog(d, [
        ("Bonjour", language_menu(lang=DEFAULT)),
        ("2", [say("report.welcome"), menu("report.category", *CATEGORIES)]),
        ("9", [say("system.invalid_choice"), menu("report.category", *CATEGORIES)]),
        ...
        ("1", say("report.confirm", reference=REFERENCE)),
    ])

What a citizen can do (``said``):

- a plain ``str``: typed text on SMS and Telegram, keypad digits on a call;
- :func:`press` (keypad digits), :func:`button` (a Telegram inline button, by option key; it must
  be on the last reply), :func:`record` (a voice recording), :func:`no_answer` (a call's
  ``<Gather>`` timed out), :func:`call` (an incoming call), :func:`typed` (text on any channel),
  :func:`retry` (the provider delivers the previous input again, same provider id),
  :func:`share_contact` (Telegram: the citizen's own number with the "call me" button, or
  someone else's contact), and :func:`choose` (the n-th option of the last menu, as this
  channel picks it: its number on SMS, its key on a call, its button on Telegram), which lets
  one script serve every channel.

What the reply must be (``expected``):

- a part or a list of parts, compared **exactly** with the whole rendered reply:
  :func:`say` (a text), :func:`menu` (a text and numbered/button/"press n" options from locale
  keys), :func:`places` (a place menu: area names, "more", "I don't know"), :func:`question`
  (a free-text question: a recording on a call), :func:`phone_question` (a question for the
  citizen's own number: on Telegram, the keyboard button that shares it), :func:`language_menu`;
- :func:`contains` (parts or strings that must appear, in this order), :func:`matches` (a regular
  expression searched in the rendered reply);
- a plain ``str``: the rendered reply, exactly.

Parts render in the dialog's language (``Dialog(lang=...)``) unless given ``lang=``;
``lang=DEFAULT`` is the deployment's default language (how a new contact is first greeted).
A :class:`Capture` as a text parameter (``reference=REFERENCE``) matches a pattern there and keeps
what it matched: ``verify_dialog`` returns the captures (``transcript.captures["reference"]``).

Rendering conventions of the transcript text (what failures show and plain strings compare to):
SMS is the SMS text itself; Telegram shows each message's text, then one ``  [label]`` line per
button (``  [label] (shares the phone number)`` for the keyboard button of a phone question),
messages separated by a blank line; a call shows one line per thing said, then what the
call waits for: ``(one key)``, ``(digits, then #)``, ``(recording)`` or ``(the call ends)``.
"""

from __future__ import annotations

import difflib
import itertools
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, select

from citoyen.engine.types import Input
from citoyen.messages.addresses import normalise_address
from citoyen.messages.render import render_sms, render_telegram, render_voice
from citoyen.messages.types import Inbound, Reply
from citoyen.models import Area, Contact, Conversation, Message, Report, SurveyAnswer
from citoyen.runtime import Runtime
from citoyen.services.contacts import find_contact
from citoyen.services.setup import ensure_ready
from citoyen.services.telegram_inbound import contact_input, typed_input

DEFAULT = "default"  # lang=DEFAULT: the deployment's default language (settings.yaml)
CHANNELS = ("sms", "voice", "telegram")

_numbers = itertools.count(1)


def ready_runtime(settings: Any) -> Runtime:
    """A runtime on the test's database, migrated and seeded with the shipped areas."""
    runtime = Runtime(settings)
    ensure_ready(runtime)
    return runtime


# --- what the citizen does ---------------------------------------------------------------------


@dataclass(frozen=True)
class Said:
    """One thing the citizen does; ``how`` is how the transcript shows it."""

    input: Input | None
    how: str
    # What the channel and the last reply must offer: "button", "key", "record", "timeout",
    # "call" or "option" (choose(), resolved per channel).
    needs: str | None = None
    retry: bool = False
    number: int | None = None  # choose(): the position of the option in the last menu


def typed(text: str) -> Said:
    """Text typed on SMS or Telegram (or sent as text on any channel)."""
    return Said(Input("text", text), text)


def press(digits: str) -> Said:
    """Keypad digits on a call."""
    return Said(Input("digits", digits), f"(keys) {digits}", needs="key")


def button(key: str) -> Said:
    """A Telegram inline button, by the option key it carries; it must be on the last reply."""
    return Said(Input("choice", key), key, needs="button")


def record(url: str) -> Said:
    """A voice recording (the provider's recording URL); the call must be recording."""
    return Said(Input("recording", url), f"(recording) {url}", needs="record")


def no_answer() -> Said:
    """The caller said nothing: the ``<Gather>`` timed out."""
    return Said(Input("timeout"), "(no answer)", needs="timeout")


def call() -> Said:
    """An incoming call (the first input of every call)."""
    return Said(Input("start"), "(incoming call)", needs="call")


def choose(n: int, key: str) -> Said:
    """The ``n``-th option of the last menu, whose key is ``key``, the way this channel picks it:
    its number typed on SMS, its key pressed on a call, its button on Telegram. The dialog checks
    that the ``n``-th option shown is indeed ``key``."""
    return Said(Input("choice", key), f"option {n} ({key})", needs="option", number=n)


def share_contact(number: str, *, own: bool = True) -> Said:
    """A contact shared on Telegram: the citizen's own number, with the button of a phone
    question (it must be on the last reply), or (``own=False``) someone else's contact card,
    which Telegram sends with another user's id. The transcript never shows the number."""
    if own:
        return Said(Input("contact", number), "(shares their own number)", needs="share_phone")
    return Said(Input("contact"), "(shares someone else's contact)", needs="contact")


def retry() -> Said:
    """The provider delivers the previous input again, with the same provider id."""
    return Said(None, "(the provider sends the previous input again)", retry=True)


def _as_said(said: str | Said, channel: str) -> Said:
    if isinstance(said, Said):
        return said
    if channel == "voice":
        return press(said)
    return typed(said)


# --- what the reply must be ----------------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    """A text parameter whose value the test cannot know: matched by ``pattern`` and kept."""

    name: str
    pattern: str

    @property
    def marker(self) -> str:
        return f"@@capture:{self.name}@@"


REFERENCE = Capture("reference", r"\d{3}-\d{4}")
"""The report reference code in ``report.confirm``: ``482-1937``."""


@dataclass(frozen=True)
class Part:
    """One prompt of an expected reply, in channel-neutral form.

    ``kind``: ``say`` (a text), ``menu`` (text + options from locale keys), ``places`` (text +
    area names, then "more" and "I don't know"), ``question`` (free text; a recording on a call),
    ``language`` (the language menu).
    """

    kind: str
    key: str | None
    options: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    lang: str | None = None
    more: bool = False
    unknown: bool = False

    @property
    def waits(self) -> str | None:
        """What a call waits for after this part (None: it waits for nothing)."""
        if self.kind in ("menu", "places", "language"):
            return "key"
        if self.kind == "question":
            return "record"
        if self.kind == "code":
            return "digits"
        return None


def say(key: str, *, lang: str | None = None, **params: Any) -> Part:
    """A text from the catalogue (emergency numbers filled in; other placeholders as given)."""
    return Part("say", key, params=params, lang=lang)


def menu(key: str, *options: str, lang: str | None = None, **params: Any) -> Part:
    """A question and its options, each given by its locale key, in menu order."""
    return Part("menu", key, tuple(options), params=params, lang=lang)


def places(
    key: str,
    names: Sequence[str],
    *,
    more: bool = False,
    unknown: bool = False,
    lang: str | None = None,
) -> Part:
    """A place menu: ``key`` is its header (``system.place_region``...), ``names`` the areas
    shown, then ``system.more`` and ``system.place_unknown`` when they are offered."""
    return Part("places", key, tuple(names), lang=lang, more=more, unknown=unknown)


def question(key: str, *, lang: str | None = None, **params: Any) -> Part:
    """A free-text question (a recording on a call)."""
    return Part("question", key, params=params, lang=lang)


def code_question(key: str, *, lang: str | None = None, **params: Any) -> Part:
    """A question answered with digits (a reference code): keyed then # on a call."""
    return Part("code", key, params=params, lang=lang)


def phone_question(key: str, button: str, *, lang: str | None = None) -> Part:
    """A question for the citizen's own phone number (a ``phone`` node): on Telegram, the text
    and the keyboard button (``button``, a text key) that shares the number."""
    return Part("phone", key, (button,), lang=lang)


def language_menu(*, lang: str | None = None) -> Part:
    """The language menu: its header in ``lang``, each language offered in itself."""
    return Part("language", "system.language_prompt", lang=lang)


@dataclass(frozen=True)
class Contains:
    items: tuple[Part | str, ...]


@dataclass(frozen=True)
class Matches:
    pattern: str


def contains(*items: Part | str) -> Contains:
    """The reply contains each of these, in this order (parts rendered as the channel does)."""
    return Contains(items)


def matches(pattern: str) -> Matches:
    """A regular expression found in the rendered reply (``re.search``)."""
    return Matches(pattern)


Expected = Part | Sequence[Part] | Contains | Matches | str


# --- the dialog ----------------------------------------------------------------------------------


@dataclass
class Turn:
    """One exchange: what was done, the reply and how the channel rendered it."""

    number: int
    said: Said
    shown: str  # how the transcript shows what was done
    reply: Reply
    text: str  # the reply as the channel renders it (see the module docstring)
    provider_id: str | None


class Dialog:
    """One citizen talking to the service on one channel.

    ``lang`` is the language the test expects the conversation to be in: parts of expected
    replies render in it unless they say otherwise. Change it (``d.lang = "en"``) when the test
    switches language, or give ``lang=`` to the parts.
    """

    def __init__(
        self, runtime: Runtime, channel: str, *, lang: str | None = None, address: str | None = None
    ) -> None:
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}")
        self.runtime = runtime
        self.channel = channel
        self.catalog = runtime.bundle.catalog
        self.settings = runtime.bundle.settings
        self.lang = lang or self.settings.languages.default
        n = next(_numbers)
        self.address = address or (
            f"telegram:{700000000 + n}" if channel == "telegram" else f"+22376{n:06d}"
        )
        self.turns: list[Turn] = []

    # -- talking ----------------------------------------------------------------------------------

    def send(self, said: str | Said) -> Turn:
        """Do one thing and return the rendered reply."""
        said = _as_said(said, self.channel)
        if said.retry:
            if not self.turns:
                raise AssertionError("retry() needs a previous input to send again")
            previous = self.turns[-1]
            inp, provider_id = previous.said.input, previous.provider_id
            shown = f"{previous.shown}   (again, same provider id)"
        else:
            if said.needs == "option":
                said = self._resolve_option(said)
            self._check_possible(said)
            inp = said.input
            provider_id = f"{self.channel}-{uuid.uuid4().hex}"
            shown = self._shown(said)
        assert inp is not None
        if self.channel == "telegram" and inp.kind == "text":
            # Typed in the chat: commands (/start, /help...) as the bot reads them.
            inp = typed_input(self.runtime, self.address, inp.value or "")
        elif inp.kind == "contact":
            # As the bot reads a contact: the number encrypted, or refused (someone else's).
            phone = normalise_address(f"tel:{inp.value}") if inp.value else None
            inp = contact_input(self.runtime, phone)
        reply = self.runtime.conversations.handle(
            Inbound(self.channel, self.address, inp, provider_id=provider_id)
        )
        turn = Turn(
            number=len(self.turns) + 1,
            said=said if not said.retry else self.turns[-1].said,
            shown=shown,
            reply=reply,
            text=self.render(reply),
            provider_id=provider_id,
        )
        self.turns.append(turn)
        return turn

    @property
    def last(self) -> Turn:
        return self.turns[-1]

    def _last_buttons(self) -> list[tuple[str, str]]:
        if not self.turns:
            return []
        reply = self.turns[-1].reply
        messages = render_telegram(self.catalog, reply.prompts, reply.language, reply.params)
        return [b for m in messages for b in m.buttons]

    def _last_share_phone(self) -> str | None:
        if not self.turns:
            return None
        reply = self.turns[-1].reply
        messages = render_telegram(self.catalog, reply.prompts, reply.language, reply.params)
        return next((m.share_phone for m in messages if m.share_phone), None)

    def _last_gather(self) -> str | None:
        if not self.turns:
            return None
        reply = self.turns[-1].reply
        gather = render_voice(self.catalog, reply.prompts, reply.language, reply.params).gather
        if gather is None:
            return None
        return "record" if gather.get("input") == "record" else "key"

    def _resolve_option(self, said: Said) -> Said:
        """choose(n, key) as this channel does it, after checking the n-th option is key."""
        assert said.input is not None and said.number is not None
        n, key = said.number, said.input.value
        menus = [p.options for p in (self.last.reply.prompts if self.turns else []) if p.options]
        shown = [o.key for o in menus[-1]] if menus else []
        if not 1 <= n <= len(shown) or shown[n - 1] != key:
            raise AssertionError(
                f"turn {len(self.turns) + 1}: option {n} of the last menu is not {key!r}; "
                f"the menu offers {shown}"
            )
        if self.channel == "telegram":
            return button(key)
        if self.channel == "voice":
            return press(str(n))
        return typed(str(n))

    def _check_possible(self, said: Said) -> None:
        """A test may only do what the channel lets a citizen do at this point."""
        where = f"turn {len(self.turns) + 1} ({said.how})"
        if said.needs == "button":
            if self.channel != "telegram":
                raise AssertionError(f"{where}: buttons exist on Telegram only")
            keys = [key for _label, key in self._last_buttons()]
            if said.input is None or said.input.value not in keys:
                raise AssertionError(f"{where}: no such button on the last reply; shown: {keys}")
        elif said.needs in ("share_phone", "contact"):
            if self.channel != "telegram":
                raise AssertionError(f"{where}: contacts are shared on Telegram only")
            if said.needs == "share_phone" and self._last_share_phone() is None:
                raise AssertionError(f"{where}: the last reply shows no button to share a number")
        elif said.needs in ("key", "record", "timeout", "call"):
            if self.channel != "voice":
                raise AssertionError(f"{where}: keys, recordings, silence exist on calls only")
            waiting = self._last_gather()
            if said.needs == "timeout" and waiting is None:
                raise AssertionError(f"{where}: the call is waiting for nothing")
            if said.needs in ("key", "record") and waiting != said.needs:
                raise AssertionError(f"{where}: the call is waiting for {waiting or 'nothing'}")

    def _shown(self, said: Said) -> str:
        if said.needs == "button" and said.input is not None:
            labels = {key: label for label, key in self._last_buttons()}
            return f"[{labels.get(said.input.value, said.input.value)}]"
        return said.how

    # -- rendering ----------------------------------------------------------------------------------

    def render(self, reply: Reply) -> str:
        """The reply exactly as this channel renders it, as transcript text."""
        catalog, prompts, lang, params = self.catalog, reply.prompts, reply.language, reply.params
        if self.channel == "sms":
            return render_sms(catalog, prompts, lang, params)
        if self.channel == "telegram":
            blocks = []
            for message in render_telegram(catalog, prompts, lang, params):
                blocks.append(
                    _telegram_block(
                        message.text,
                        [label for label, _ in message.buttons],
                        message.share_phone,
                    )
                )
            return "\n\n".join(blocks)
        turn = render_voice(catalog, prompts, lang, params)
        lines = [segment.text for segment in turn.segments]
        gather = turn.gather
        if gather is None:
            waits = None
        elif gather.get("input") == "record":
            waits = "record"
        elif gather.get("finish_on_key"):
            waits = "digits"
        else:
            waits = "key"
        return "\n".join([*lines, _WAITS[waits]])

    def t(self, key: str, lang: str | None = None, **params: Any) -> str:
        """A catalogue text as citizens on this channel get it (its channel variant, emergency
        numbers filled in)."""
        values = {**self.runtime.conversations.emergency_params(), **params}
        return self.catalog.render(key, self._lang(lang), values, self.channel)

    def _lang(self, lang: str | None) -> str:
        if lang == DEFAULT:
            return self.settings.languages.default
        return lang or self.lang

    def _render_part(self, part: Part) -> str:
        """How one expected part shows on this channel (without a call's waiting line)."""
        lang = self._lang(part.lang)
        params = {k: (v.marker if isinstance(v, Capture) else v) for k, v in part.params.items()}
        header = self.t(part.key, lang, **params) if part.key else ""
        if part.kind == "language":
            languages = list(self.settings.languages.enabled)
            lines = [
                self.t("system.language_option", code, n=n) for n, code in enumerate(languages, 1)
            ]
            if self.channel == "telegram":
                return _telegram_block(header, [self.catalog.meta(c).name for c in languages])
            return "\n".join([header, *lines])  # each line in its own language, with its digit
        if part.kind == "phone":
            if self.channel == "telegram":
                return _telegram_block(header, [], self.t(part.options[0], lang))
            return header
        if part.kind == "menu":
            labels = [self.t(option, lang, **params) for option in part.options]
        elif part.kind == "places":
            labels = list(part.options)
            if part.more:
                labels.append(self.t("system.more", lang))
            if part.unknown:
                labels.append(self.t("system.place_unknown", lang))
        else:
            labels = []
        if not labels:
            if self.channel == "telegram":
                return _telegram_block(header, [])
            return header
        if self.channel == "telegram":
            return _telegram_block(header, labels)
        if self.channel == "voice":
            said = [
                self.t("system.voice_option", lang, label=x, n=n) for n, x in enumerate(labels, 1)
            ]
            return "\n".join([header, *said])
        return "\n".join([header, *(f"{n}. {label}" for n, label in enumerate(labels, 1))])

    def expected_text(self, parts: Sequence[Part]) -> str:
        """The whole reply these parts make on this channel."""
        blocks = [self._render_part(part) for part in parts]
        if self.channel == "voice":
            waits = None
            for part in parts:
                waits = part.waits or waits
            return "\n".join([*blocks, _WAITS[waits]])
        return "\n\n".join(blocks)

    # -- the database ------------------------------------------------------------------------------

    def session(self) -> Session:
        return Session(self.runtime.engine, expire_on_commit=False)

    def contact(self) -> Contact:
        with self.session() as session:
            contact = find_contact(session, self.runtime.vault, self.address)
            if contact is None:
                raise AssertionError(f"no contact for {self.address}")
            return contact

    def reports(self) -> list[Report]:
        contact = self.contact()
        with self.session() as session:
            stmt = select(Report).where(Report.contact_id == contact.id).order_by(Report.id)
            return list(session.exec(stmt).all())

    def conversations(self) -> list[Conversation]:
        contact = self.contact()
        with self.session() as session:
            stmt = (
                select(Conversation)
                .where(Conversation.contact_id == contact.id)
                .order_by(Conversation.id)
            )
            return list(session.exec(stmt).all())

    def conversation(self) -> Conversation:
        """The contact's latest conversation."""
        conversations = self.conversations()
        if not conversations:
            raise AssertionError(f"no conversation for {self.address}")
        return conversations[-1]

    def messages(self, provider_id: str | None = None) -> list[Message]:
        contact = self.contact()
        with self.session() as session:
            stmt = select(Message).where(Message.contact_id == contact.id)
            if provider_id is not None:
                stmt = stmt.where(Message.provider_id == provider_id)
            return list(session.exec(stmt.order_by(Message.id)).all())

    def survey_answers(self) -> list[SurveyAnswer]:
        contact = self.contact()
        with self.session() as session:
            stmt = (
                select(SurveyAnswer)
                .where(SurveyAnswer.contact_id == contact.id)
                .order_by(SurveyAnswer.id)
            )
            return list(session.exec(stmt).all())

    def area_code(self, area_id: int | None) -> str | None:
        if area_id is None:
            return None
        with self.session() as session:
            area = session.get(Area, area_id)
            return area.code if area is not None else None

    # -- showing ----------------------------------------------------------------------------------

    def transcript(self, turns: Iterable[Turn] | None = None) -> str:
        lines = [f"Dialog on {self.channel} from {self.address} (expected language {self.lang})"]
        for turn in self.turns if turns is None else turns:
            lines.append(_show_turn(turn))
        return "\n".join(lines)


_WAITS = {
    None: "(the call ends)",
    "key": "(one key)",
    "digits": "(digits, then #)",
    "record": "(recording)",
}


def _telegram_block(text: str, buttons: Sequence[str], share_phone: str | None = None) -> str:
    lines = [text, *(f"  [{label}]" for label in buttons)]
    if share_phone:
        lines.append(f"  [{share_phone}] (shares the phone number)")
    return "\n".join(lines)


def _indent(text: str, prefix: str) -> str:
    return "\n".join(f"{prefix}{line}" for line in (text.splitlines() or [""]))


def _show_turn(turn: Turn) -> str:
    status = f"      ({turn.reply.status}, {turn.reply.language})"
    return f"{turn.number:>3} > {turn.shown}\n{_indent(turn.text, '    < ')}\n{status}"


# --- checking ------------------------------------------------------------------------------------


@dataclass
class Transcript:
    """What :func:`verify_dialog` went through: the turns and the captured values."""

    dialog: Dialog
    turns: list[Turn]
    captures: dict[str, str]

    @property
    def last(self) -> Turn:
        return self.turns[-1]


def _pattern_for(text: str, captures: set[Capture]) -> re.Pattern[str]:
    """The expected text as a pattern: a capture matches its pattern where it first appears,
    and the same value wherever it appears again ("Référence : 482-1937 ... SUIVI 482-1937")."""
    pattern = re.escape(text)
    for capture in captures:
        marker = re.escape(capture.marker)
        pattern = pattern.replace(marker, f"(?P<{capture.name}>{capture.pattern})", 1)
        pattern = pattern.replace(marker, f"(?P={capture.name})")
    return re.compile(pattern, re.DOTALL)


def _captures_in(parts: Sequence[Part]) -> set[Capture]:
    return {v for part in parts for v in part.params.values() if isinstance(v, Capture)}


def check_reply(dialog: Dialog, turn: Turn, expected: Expected) -> tuple[str | None, dict, str]:
    """Compare one rendered reply with what was expected.

    Returns (problem or None, captured values, the expected reply as text for the message).
    """
    actual = turn.text
    if isinstance(expected, str):
        ok = actual == expected
        return (None if ok else "the reply differs"), {}, expected
    if isinstance(expected, Matches):
        found = re.search(expected.pattern, actual)
        return (
            (None if found else "no match"),
            (found.groupdict() if found else {}),
            (f"(a reply matching /{expected.pattern}/)"),
        )
    if isinstance(expected, Contains):
        position, captured, shown = 0, {}, []
        for item in expected.items:
            if isinstance(item, Part):
                text = dialog._render_part(item)
                caps = _captures_in([item])
            else:
                text, caps = item, set()
            shown.append(text)
            found = _pattern_for(text, caps).search(actual, position)
            if found is None:
                where = "after the previous one" if position else "anywhere"
                return (
                    f"this is not in the reply ({where}):\n{_indent(text, '      ')}",
                    {},
                    "(a reply containing, in this order:)\n" + "\n...\n".join(shown),
                )
            captured.update(found.groupdict())
            position = found.end()
        return None, captured, "(a reply containing, in this order:)\n" + "\n...\n".join(shown)
    parts = [expected] if isinstance(expected, Part) else list(expected)
    for part in parts:
        if not isinstance(part, Part):
            raise TypeError(f"expected a Part, got {part!r}")
    text = dialog.expected_text(parts)
    found = _pattern_for(text, _captures_in(parts)).fullmatch(actual)
    if found is None:
        return "the reply differs", {}, text
    return None, found.groupdict(), text


def verify_dialog(dialog: Dialog, script: Sequence[tuple[str | Said, Expected]]) -> Transcript:
    """Play ``script`` turn by turn; fail on the first reply that is not the one expected.

    The failure shows the whole transcript so far, then what was expected and a diff.
    """
    __tracebackhide__ = True
    start = len(dialog.turns)
    captures: dict[str, str] = {}
    for said, expected in script:
        turn = dialog.send(said)
        problem, captured, wanted = check_reply(dialog, turn, expected)
        if problem is not None:
            message = (
                f"turn {turn.number}: {problem}\n\n"
                f"{dialog.transcript()}\n\n"
                f"expected reply to turn {turn.number}:\n{_indent(wanted, '    < ')}"
            )
            if not isinstance(expected, Contains | Matches):
                diff = difflib.unified_diff(
                    wanted.splitlines(), turn.text.splitlines(), "expected", "actual", lineterm=""
                )
                message += "\n\ndiff:\n" + "\n".join(diff)
            raise AssertionError(message)
        for name, value in captured.items():
            if name in captures and captures[name] != value:
                raise AssertionError(
                    f"turn {turn.number}: {name} was {captures[name]!r}, now {value!r}\n\n"
                    f"{dialog.transcript()}"
                )
            captures[name] = value
    return Transcript(dialog, dialog.turns[start:], captures)
