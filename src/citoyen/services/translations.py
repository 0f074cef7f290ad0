"""Translators' round trip: locale texts out as a PO catalogue and back, review state included.

Translators work in Poedit or Weblate, which read gettext PO files (written and read here with
Babel's ``pofile``, the library Flask-Babel already brings). One entry per text key:

- ``msgctxt`` is the key (``report.category.theft``), ``msgid`` the text in the reference
  language (the default language, French), ``msgstr`` the text in the exported language;
- the ``fuzzy`` flag is the review state: a text still ``needs-review`` is fuzzy, and clearing
  the flag in Poedit ("needs work" off) marks it reviewed;
- translator comments (``# ...``) are the ``note`` to reviewers; extracted comments (``#. ...``)
  tell the placeholders to keep and the SMS cost, for information only.

An import checks everything before writing anything: an unknown key, a malformed placeholder or
a placeholder set that differs from the reference language refuses the whole file. It then
writes only the entries that changed into ``locales/<lang>.yaml`` (ruamel keeps the file's
comments and layout) and reports each change with its new SMS cost.
"""

from __future__ import annotations

import io
import json
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog as PoCatalog
from babel.messages.pofile import PoFileError, read_po, write_po
from sqlmodel import Session, col, select

from citoyen.db import write_session
from citoyen.engine import sms
from citoyen.i18n import Catalog, parse_placeholders, read_yaml
from citoyen.models import TextChange, User
from citoyen.services.flowmap import SAMPLE_PARAMS
from citoyen.services.refusals import Refusal


class TranslationError(Refusal):
    """A catalogue or a text that cannot be taken (nothing written): ``problems`` says every
    reason in English (the command line prints each), ``code`` and ``params`` let the admin say
    why in the staff's language (a reviewer's change has one problem).

    Codes: ``po_unreadable``, ``po_language`` (``language``), ``po_problems`` (``count``),
    ``text_unknown`` (``key``, ``language``), ``text_blank`` (``key``), ``placeholder_broken``
    (``key``), ``placeholder_name`` (``key``, ``name``), ``placeholders_differ`` (``key``,
    ``found``, ``expected``, ``reference``), ``text_unwritable`` (``file``, ``key``).
    """

    def __init__(self, problems: list[str], code: str = "", **params: Any) -> None:
        super().__init__("\n".join(problems), code, **params)
        self.problems = problems


@dataclass(frozen=True)
class Change:
    """One text an import (or a reviewer) changed."""

    key: str
    old_text: str | None
    new_text: str
    old_review: str | None
    new_review: str
    note: str | None
    segments: int  # SMS parts of the new text alone, placeholders filled with sample values
    encoding: str

    def describe(self) -> str:
        parts = []
        if self.old_text != self.new_text:
            parts.append("text changed" if self.old_text is not None else "text added")
        if self.old_review != self.new_review:
            parts.append(f"{self.old_review or 'new'} -> {self.new_review}")
        cost = f"{self.segments} SMS ({self.encoding})"
        return f"{self.key}: {', '.join(parts) or 'note changed'}; now {cost}"


@dataclass
class ImportResult:
    language: str
    changes: list[Change] = field(default_factory=list)
    unchanged: int = 0
    untranslated: list[str] = field(default_factory=list)


def cost(text: str, params: dict[str, Any]) -> tuple[int, str]:
    from citoyen.i18n import render_template

    rendered = render_template(text, params)
    return sms.segments(rendered), sms.encoding(rendered)


def export_po(catalog: Catalog, language: str, reference: str, params: dict[str, Any]) -> bytes:
    """The texts of ``language`` as a PO catalogue, against the ``reference`` language."""
    keys = list(dict.fromkeys([*catalog.keys(reference), *catalog.keys(language)]))
    po = PoCatalog(
        locale=language,
        header_comment=(
            f"# citoyen: the texts citizens read and hear, in {language}, against {reference}.\n"
            "# msgctxt is the text key; a fuzzy entry still needs review (clear the flag once\n"
            "# checked); comments are notes to reviewers. Keep every {placeholder} as it is.\n"
            "# Import with: citoyen locales import FILE.po"
        ),
        project="citoyen",
        domain="citoyen",
        fuzzy=False,
        creation_date=datetime(2000, 1, 1, tzinfo=UTC),
        revision_date=datetime(2000, 1, 1, tzinfo=UTC),
    )
    for key in keys:
        source = catalog.text(key, reference) if catalog.has(key, reference) else ""
        if not catalog.has(key, language):
            translated, flags, notes = "", set(), []
        else:
            entry = catalog.entry(key, language)
            translated = entry.text
            flags = {"fuzzy"} if entry.review == "needs-review" else set()
            notes = entry.note.splitlines() if entry.note else []
        names = sorted(parse_placeholders(source or translated)[0])
        auto = []
        if names:
            auto.append("placeholders to keep: " + " ".join(f"{{{n}}}" for n in names))
        if translated:
            parts, enc = cost(translated, params)
            auto.append(f"SMS alone: {parts} part(s), {enc}")
        po.add(
            source or key,
            translated,
            context=key,
            flags=flags,
            user_comments=notes,
            auto_comments=auto,
            locations=[(f"locales/{language}.yaml", catalog.line(key, language) or 0)],
        )
    out = io.BytesIO()
    write_po(out, po, width=0, sort_output=False, include_previous=False)
    return out.getvalue()


def read_catalogue(data: bytes) -> PoCatalog:
    try:
        return read_po(io.BytesIO(data), abort_invalid=True)
    except (PoFileError, UnicodeDecodeError, ValueError) as exc:
        raise TranslationError([f"not a PO file: {exc}"], "po_unreadable") from None


def plan_import(
    catalog: Catalog, po: PoCatalog, language: str, reference: str, params: dict[str, Any]
) -> ImportResult:
    """What importing ``po`` into ``language`` would change; raises on any problem."""
    known = set(catalog.keys(reference)) | set(catalog.keys(language))
    problems: list[str] = []
    result = ImportResult(language)
    for message in po:
        if not message.id:  # the header
            continue
        key = message.context
        where = f"line {message.lineno}" if message.lineno else "an entry"
        if not key:
            problems.append(f"{where}: no msgctxt (the text key)")
            continue
        if key not in known:
            problems.append(f"{where}: unknown text key '{key}'")
            continue
        text = message.string if isinstance(message.string, str) else message.string[0]
        if not text.strip():
            result.untranslated.append(key)
            continue
        problem = check_text(catalog, key, text, language, reference)
        if problem is not None:
            problems.append(f"{where}: {problem}")
            continue
        review = "needs-review" if message.fuzzy else "reviewed"
        old = catalog.entry(key, language) if catalog.has(key, language) else None
        # PO tools wrap comments: a note whose words did not change is the same note.
        note = " ".join(" ".join(message.user_comments).split()) or None
        if old is not None and old.note and note == " ".join(old.note.split()):
            note = old.note
        if old is not None and (old.text, old.review, old.note or None) == (text, review, note):
            result.unchanged += 1
            continue
        result.changes.append(make_change(key, old, text, review, note, params))
    if problems:
        raise TranslationError(problems, "po_problems", count=len(problems))
    return result


def check_text(
    catalog: Catalog, key: str, text: str, language: str, reference: str
) -> TranslationError | None:
    """Why ``text`` cannot be the text of ``key`` in ``language`` (its ``str()`` is the English
    problem), or None."""
    names, error = parse_placeholders(text)
    if error:
        odd = _odd_placeholder(text)
        if odd is None:
            return TranslationError([f"text '{key}': {error}"], "placeholder_broken", key=key)
        return TranslationError([f"text '{key}': {error}"], "placeholder_name", key=key, name=odd)
    if catalog.has(key, reference) and reference != language:
        expected = catalog.placeholders(key, reference)
        if names != expected:
            shown = ", ".join(f"{{{n}}}" for n in sorted(expected))
            found = ", ".join(f"{{{n}}}" for n in sorted(names))
            return TranslationError(
                [
                    f"text '{key}': placeholders {found or 'none'} differ from {shown or 'none'} "
                    f"in {reference}"
                ],
                "placeholders_differ",
                key=key,
                found=found or "—",
                expected=shown or "—",
                reference=catalog.meta(reference).name,
            )
    return None


def _odd_placeholder(text: str) -> str | None:
    """The first placeholder of ``text`` that is not a simple name (``{a.b}``, ``{0}``), or None
    when the braces themselves are broken."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return None
    return next((n for _, n, _, _ in parsed if n is not None and not n.isidentifier()), None)


def make_change(
    key: str, old: Any, text: str, review: str, note: str | None, params: dict[str, Any]
) -> Change:
    parts, enc = cost(text, params)
    return Change(
        key,
        old.text if old else None,
        text,
        old.review if old else None,
        review,
        note,
        parts,
        enc,
    )


def record(
    session: Session,
    language: str,
    changes: list[Change],
    *,
    source: str,
    user_id: int | None,
    now: datetime | None = None,
) -> None:
    """Keep who changed which text when (the ``text_changes`` history)."""
    now = now or datetime.now(UTC)
    for change in changes:
        session.add(
            TextChange(
                language=language,
                key=change.key,
                old_text=change.old_text,
                new_text=change.new_text,
                old_review=change.old_review,
                new_review=change.new_review,
                note=change.note,
                source=source,
                user_id=user_id,
                created_at=now,
            )
        )


def review_text(
    runtime: Any,
    language: str,
    key: str,
    text: str,
    *,
    reviewed: bool,
    note: str | None,
    user_id: int,
    now: datetime | None = None,
) -> Change | None:
    """A reviewer's correction or approval of one text, written to its locale file and kept in
    the history; None when nothing changed. Raises :class:`TranslationError` (nothing written)
    for an unknown text or broken placeholders."""
    settings = runtime.bundle.settings
    catalog = Catalog.load(runtime.settings.locales_dir)  # the files as they are now
    if language not in catalog.languages or not catalog.has(key, language):
        raise TranslationError(
            [f"no text '{key}' in '{language}'"], "text_unknown", key=key, language=language
        )
    text = text.strip()
    if not text:
        raise TranslationError([f"text '{key}' cannot be empty"], "text_blank", key=key)
    problem = check_text(catalog, key, text, language, settings.languages.default)
    if problem is not None:
        raise problem
    old = catalog.entry(key, language)
    review = "reviewed" if reviewed else "needs-review"
    note = (note or "").strip() or None
    if (old.text, old.review, old.note or None) == (text, review, note):
        return None
    change = make_change(key, old, text, review, note, sample_params(settings))
    with write_session(runtime.engine) as session:
        write_changes(runtime.settings.locales_dir, language, [change])
        record(session, language, [change], source="admin", user_id=user_id, now=now)
    return change


def apply_import(runtime: Any, language: str, changes: list[Change]) -> bool:
    """Write an import's changes into the locale file and, when the database is migrated, keep
    them in the history (source ``import``); whether the history has them."""
    try:
        recorded = not runtime.needs_migration()
    except Exception:  # no database reachable: the file still changes, as a YAML edit would
        recorded = False
    if not recorded:
        write_changes(runtime.settings.locales_dir, language, changes)
        return False
    with write_session(runtime.engine) as session:
        write_changes(runtime.settings.locales_dir, language, changes)
        record(session, language, changes, source="import", user_id=None)
    return True


def history(session: Session, language: str | None = None, limit: int = 50) -> list[Any]:
    """The latest text changes, newest first, with the email of who made them."""
    stmt = (
        select(TextChange, User.email)
        .join(User, User.id == TextChange.user_id, isouter=True)
        .order_by(col(TextChange.id).desc())
        .limit(limit)
    )
    if language:
        stmt = stmt.where(TextChange.language == language)
    return list(session.exec(stmt).all())


def _scalar(value: Any) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is valid YAML)."""
    if value is None:
        return "null"
    return json.dumps(str(value), ensure_ascii=False)


def _entry_lines(
    key: str, indent: str, change: Change, default: str, extra: dict[str, Any]
) -> list[str]:
    fields: dict[str, Any] = {}
    if change.new_review != default:
        fields["review"] = change.new_review
    if change.note:
        fields["note"] = change.note
    fields.update(extra)
    if not fields:
        return [f"{indent}{key}: {_scalar(change.new_text)}"]
    inner = indent + "  "
    lines = [f"{indent}{key}:", f"{inner}text: {_scalar(change.new_text)}"]
    lines += [f"{inner}{name}: {_scalar(value)}" for name, value in fields.items()]
    return lines


def write_changes(locales_dir: Path, language: str, changes: list[Change]) -> None:
    """Write ``changes`` into ``locales/<language>.yaml``, touching only their entries.

    Each changed entry is rewritten in place (its lines, found from the parsed file's line
    numbers), every other line of the file is kept byte for byte, so comments, layout and other
    people's edits stay. An entry stays a plain string when its review state is the file's
    default and it has no note; otherwise it is a mapping with ``text``, ``review``, ``note``
    (and any other field it already had). A new key is added at the end of ``texts``. The file
    is read back and compared before it replaces the old one.
    """
    if not changes:
        return
    path = Path(locales_dir) / f"{language}.yaml"
    original = path.read_text(encoding="utf-8")
    lines = original.splitlines()
    data = read_yaml(path)
    default = data.get("meta", {}).get("review_default", "needs-review")
    texts = data["texts"]
    keys = list(texts)
    starts = {k: int(texts.lc.key(k)[0]) for k in keys}
    # Replace from the bottom up so earlier line numbers stay right.
    edits: list[tuple[int, int, list[str]]] = []
    added: list[str] = []
    indent = "  "
    for change in changes:
        if change.key not in starts:
            added += _entry_lines(change.key, indent, change, default, {})
            continue
        first = starts[change.key]
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        later = [starts[k] for k in keys if starts[k] > first]
        last = (min(later) if later else len(lines)) - 1
        while last > first and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
            last -= 1
        current = texts[change.key]
        extra = {}
        if isinstance(current, dict):
            extra = {k: v for k, v in current.items() if k not in ("text", "review", "note")}
        edits.append((first, last, _entry_lines(change.key, indent, change, default, extra)))
    for first, last, new in sorted(edits, reverse=True):
        lines[first : last + 1] = new
    if added:
        while lines and not lines[-1].strip():
            lines.pop()
        lines += added
    text = "\n".join(lines) + "\n"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(text, encoding="utf-8")
    written = read_yaml(tmp)["texts"]
    for change in changes:
        entry = written.get(change.key)
        got = entry.get("text") if isinstance(entry, dict) else entry
        review = entry.get("review", default) if isinstance(entry, dict) else default
        if (got, review) != (change.new_text, change.new_review):
            tmp.unlink()
            raise TranslationError(
                [f"{path.name}: could not write '{change.key}' safely"],
                "text_unwritable",
                file=path.name,
                key=change.key,
            )
    tmp.replace(path)


def sample_params(bundle_settings: Any) -> dict[str, Any]:
    return {**dict(bundle_settings.emergency_numbers), **SAMPLE_PARAMS}
