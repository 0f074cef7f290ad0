"""The locale catalogue: every text citizens read or hear, by key and language.

Texts live in ``locales/<lang>.yaml`` (see docs/flows.md, "Locale files") so translators and
reviewers can work without touching code; recorded voice prompts sit beside them in
``locales/<lang>/audio/<key>.wav|mp3`` for languages that text-to-speech cannot say. The catalogue
keeps the line of every key so that validation messages point at the exact place to fix, and it
renders leniently (a missing parameter stays visible as ``{name}``) because a slightly wrong SMS is
better than a conversation that crashes in front of a citizen.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError

ReviewState = Literal["reviewed", "needs-review"]
REVIEW_STATES: tuple[str, ...] = ("reviewed", "needs-review")
AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".mp3")
_META_FIELDS = {"language", "name", "tts", "review_default"}
# Per-channel variants of a text (docs/flows.md, "Texts per channel"): ``voice`` is said on
# calls; ``written`` is read on every text channel (SMS, WhatsApp, Telegram); ``sms``,
# ``whatsapp`` and ``telegram`` are read on that channel only. ``text`` is used where no variant
# applies, so voice instructions ("speak after the beep") can live on calls only.
VARIANT_FIELDS: tuple[str, ...] = ("voice", "written", "sms", "whatsapp", "telegram")
_VARIANTS_FOR_CHANNEL: dict[str, tuple[str, ...]] = {
    "voice": ("voice",),
    "sms": ("sms", "written"),
    "whatsapp": ("whatsapp", "written"),
    "telegram": ("telegram", "written"),
}
_ENTRY_FIELDS = {"text", "review", "note", *VARIANT_FIELDS}


@dataclass(frozen=True)
class LocaleMeta:
    """The ``meta`` block of a locale file."""

    language: str
    name: str
    tts: str | None = None
    review_default: ReviewState = "needs-review"


@dataclass(frozen=True)
class Entry:
    """One text: its template, review state, reviewer's note, line in the file (1-based) and
    its per-channel variants (``{"voice": ..., "written": ...}``)."""

    text: str
    review: ReviewState
    note: str | None = None
    line: int | None = None
    variants: Mapping[str, str] = field(default_factory=dict)

    def for_channel(self, channel: str | None) -> str:
        """The template a citizen on ``channel`` gets: its variant, else ``text``."""
        for name in _VARIANTS_FOR_CHANNEL.get(channel or "", ()):
            if name in self.variants:
                return self.variants[name]
        return self.text


@dataclass(frozen=True)
class LocaleIssue:
    """A problem found while reading a locale file (the flow loader turns it into a Problem)."""

    file: str
    line: int | None
    message: str
    key: str | None = None
    level: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class LocaleError(Exception):
    """Raised by a strict :meth:`Catalog.load` when a locale file cannot be used."""

    def __init__(self, issues: list[LocaleIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def parse_placeholders(template: str) -> tuple[set[str], str | None]:
    """Placeholder names of a template and, if it is malformed, why.

    Only simple names are allowed (``{police}``), so texts cannot reach into objects.
    """
    names: set[str] = set()
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return names, f"malformed placeholder: {exc}"
    for _literal, name, _spec, _conv in parsed:
        if name is None:
            continue
        if not name.isidentifier():
            return names, f"placeholder {{{name}}} is not a simple name"
        names.add(name)
    return names, None


def _line(node: Any, key: Any) -> int | None:
    """1-based line of ``key`` in a ruamel mapping, when ruamel recorded it."""
    try:
        return int(node.lc.key(key)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return None


def yaml_error_line(exc: YAMLError) -> int | None:
    """1-based line of a ruamel parse error (problem mark first, then context mark)."""
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            return int(mark.line) + 1
    return None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file keeping line numbers (round-trip loader; duplicate keys are errors)."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh)


class Catalog:
    """Texts by language and key, with review state, line numbers and recorded audio."""

    def __init__(
        self,
        metas: Mapping[str, LocaleMeta],
        entries: Mapping[str, Mapping[str, Entry]],
        *,
        files: Mapping[str, str] | None = None,
        audio: Mapping[str, Mapping[str, Path]] | None = None,
        issues: list[LocaleIssue] | None = None,
    ) -> None:
        self._metas = dict(metas)
        self._entries = {lang: dict(e) for lang, e in entries.items()}
        self._files = dict(files or {})
        self._audio = {lang: dict(a) for lang, a in (audio or {}).items()}
        self.issues: list[LocaleIssue] = list(issues or [])

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, locales_dir: Path, *, strict: bool = True) -> Catalog:
        """Read every ``*.yaml`` directly in ``locales_dir`` and scan ``<lang>/audio/``.

        With ``strict`` (the default) any error raises :class:`LocaleError`; the validator passes
        ``strict=False`` to collect every problem, and unusable files are then left out.
        """
        loader = _Loader(locales_dir)
        for path in sorted(locales_dir.glob("*.yaml")):
            loader.read(path)
        catalog = cls(
            loader.metas,
            loader.entries,
            files=loader.files,
            audio=_scan_audio(locales_dir, loader.metas),
            issues=loader.issues,
        )
        if strict and any(i.level == "error" for i in catalog.issues):
            raise LocaleError(catalog.issues)
        return catalog

    @classmethod
    def from_mapping(
        cls, texts: Mapping[str, Mapping[str, str]], *, review: ReviewState = "reviewed"
    ) -> Catalog:
        """A catalogue built in memory (tests, simulators): ``{lang: {key: text}}``."""
        metas = {lang: LocaleMeta(lang, lang, None, review) for lang in texts}
        entries = {
            lang: {k: Entry(v, review) for k, v in by_key.items()} for lang, by_key in texts.items()
        }
        return cls(metas, entries)

    # -- queries ------------------------------------------------------------------------------

    @property
    def languages(self) -> tuple[str, ...]:
        """Languages that have a usable locale file, in file-name order."""
        return tuple(self._metas)

    def meta(self, lang: str) -> LocaleMeta:
        return self._metas[lang]

    def file(self, lang: str) -> str:
        """Display path of a language's file (``locales/bm.yaml``) for messages."""
        return self._files.get(lang, f"locales/{lang}.yaml")

    def has(self, key: str, lang: str) -> bool:
        return key in self._entries.get(lang, {})

    def entry(self, key: str, lang: str) -> Entry:
        """The entry, or KeyError: callers interrupt the conversation with ``system.expired``."""
        return self._entries[lang][key]

    def text(self, key: str, lang: str, channel: str | None = None) -> str:
        """The raw template of a text, as ``channel`` shows it (KeyError when missing).

        Without a channel it is the entry's ``text``, the form every variant must match in
        placeholders."""
        return self.entry(key, lang).for_channel(channel)

    def keys(self, lang: str) -> tuple[str, ...]:
        """Keys of a language in file order."""
        return tuple(self._entries.get(lang, {}))

    def line(self, key: str, lang: str) -> int | None:
        entry = self._entries.get(lang, {}).get(key)
        return entry.line if entry else None

    def placeholders(self, key: str, lang: str) -> set[str]:
        return parse_placeholders(self.text(key, lang))[0]

    def review_state(self, key: str, lang: str) -> ReviewState:
        return self.entry(key, lang).review

    def render(
        self,
        key: str,
        lang: str,
        params: Mapping[str, Any] | None = None,
        channel: str | None = None,
    ) -> str:
        """The text (its ``channel`` variant if any) with its placeholders filled; a missing
        parameter stays visible as ``{name}``.

        Raises KeyError only when the key itself is missing in that language. Spaces around
        the text are dropped (a placeholder at the end may be empty: ``{staff_message}``).
        """
        return render_template(self.text(key, lang, channel), params or {}).strip()

    def audio_path(self, key: str, lang: str) -> Path | None:
        """The recorded prompt ``locales/<lang>/audio/<key>.wav|mp3``, if one exists."""
        return self._audio.get(lang, {}).get(key)

    def coverage(self, languages: tuple[str, ...] | None = None) -> dict[str, dict[str, Any]]:
        """Per language (``citoyen locales status``): ``name``, ``keys``, ``missing`` (count of
        keys other languages have and this one lacks), ``missing_keys``, ``needs_review`` and
        ``audio`` (recorded prompts)."""
        langs = languages if languages is not None else self.languages
        union: set[str] = set()
        for lang in langs:
            union.update(self._entries.get(lang, {}))
        rows: dict[str, dict[str, Any]] = {}
        for lang in langs:
            entries = self._entries.get(lang, {})
            meta = self._metas.get(lang)
            missing = sorted(union - set(entries))
            rows[lang] = {
                "name": meta.name if meta else lang,
                "keys": len(entries),
                "missing": len(missing),
                "missing_keys": missing,
                "needs_review": sum(1 for e in entries.values() if e.review == "needs-review"),
                "audio": len(self._audio.get(lang, {})),
            }
        return rows


def render_template(template: str, params: Mapping[str, Any]) -> str:
    """Fill ``{name}`` fields from ``params``; unknown names and bad templates stay as written."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return template
    out: list[str] = []
    for literal, name, spec, conv in parsed:
        out.append(literal)
        if name is None:
            continue
        if name in params:
            value = params[name]
            try:
                if conv == "r":
                    value = repr(value)
                elif conv in ("s", "a"):
                    value = str(value) if conv == "s" else ascii(value)
                out.append(format(value, spec or ""))
            except (ValueError, TypeError):
                out.append(str(value))
        else:
            out.append(
                "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            )
    return "".join(out)


def _braces(names: set[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names)) if names else "none"


def _scan_audio(locales_dir: Path, metas: Mapping[str, LocaleMeta]) -> dict[str, dict[str, Path]]:
    """Recorded prompts per language; ``.wav`` wins over ``.mp3`` when both exist."""
    audio: dict[str, dict[str, Path]] = {}
    for lang in metas:
        folder = locales_dir / lang / "audio"
        found: dict[str, Path] = {}
        if folder.is_dir():
            for ext in reversed(AUDIO_EXTENSIONS):
                for path in sorted(folder.glob(f"*{ext}")):
                    found[path.name[: -len(ext)]] = path
        audio[lang] = found
    return audio


@dataclass
class _Loader:
    """Reads locale files one by one, collecting entries and issues."""

    locales_dir: Path
    metas: dict[str, LocaleMeta] = field(default_factory=dict)
    entries: dict[str, dict[str, Entry]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    issues: list[LocaleIssue] = field(default_factory=list)

    def issue(self, file: str, line: int | None, message: str, key: str | None = None) -> None:
        self.issues.append(LocaleIssue(file, line, message, key))

    def read(self, path: Path) -> None:
        file = f"{self.locales_dir.name}/{path.name}"
        try:
            data = read_yaml(path)
        except YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self.issue(file, yaml_error_line(exc), f"bad YAML: {problem}")
            return
        if not isinstance(data, Mapping):
            self.issue(file, None, "a locale file must be a mapping with 'meta' and 'texts'")
            return
        for key in data:
            if key not in ("meta", "texts"):
                self.issue(file, _line(data, key), f"unknown field '{key}'")
        meta = self._meta(file, path.stem, data)
        if meta is None:
            return
        texts = data.get("texts")
        if not isinstance(texts, Mapping):
            self.issue(file, _line(data, "texts"), "'texts' must be a mapping of key -> text")
            texts = {}
        self.metas[meta.language] = meta
        self.files[meta.language] = file
        self.entries[meta.language] = self._entries(file, texts, meta.review_default)

    def _meta(self, file: str, stem: str, data: Mapping[str, Any]) -> LocaleMeta | None:
        """The file's meta block; problems are reported but the texts stay usable under the
        file's name, so one wrong meta field does not hide every text from the validator."""
        meta = data.get("meta")
        if not isinstance(meta, Mapping):
            self.issue(file, _line(data, "meta"), "missing 'meta' mapping")
            return None
        for key in meta:
            if key not in _META_FIELDS:
                self.issue(file, _line(meta, key), f"meta: unknown field '{key}'")
        if meta.get("language") != stem:
            self.issue(
                file,
                _line(meta, "language"),
                f"meta.language is {meta.get('language')!r}, expected '{stem}' (the file name)",
            )
        name = meta.get("name")
        if not isinstance(name, str) or not name.strip():
            self.issue(file, _line(meta, "name"), "meta.name (the language's own name) is required")
            name = stem
        tts = meta.get("tts")
        if tts is not None and not isinstance(tts, str):
            self.issue(file, _line(meta, "tts"), "meta.tts must be a language tag or null")
            tts = None
        review = meta.get("review_default", "needs-review")
        if review not in REVIEW_STATES:
            self.issue(
                file,
                _line(meta, "review_default"),
                f"meta.review_default must be one of {', '.join(REVIEW_STATES)}",
            )
            review = "needs-review"
        return LocaleMeta(stem, str(name), tts, review)

    def _entries(
        self, file: str, texts: Mapping[Any, Any], default: ReviewState
    ) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        for key, value in texts.items():
            line = _line(texts, key)
            if not isinstance(key, str):
                self.issue(file, line, f"text key {key!r} must be a string")
                continue
            entry = self._entry(file, key, line, value, default)
            if entry is None:
                continue
            names, error = parse_placeholders(entry.text)
            if error:
                self.issue(file, line, f"text '{key}': {error}", key)
            for variant, template in entry.variants.items():
                found, error = parse_placeholders(template)
                if error:
                    self.issue(file, line, f"text '{key}', {variant}: {error}", key)
                elif found != names:
                    self.issue(
                        file,
                        line,
                        f"text '{key}': the {variant} variant uses placeholders "
                        f"{_braces(found)}, the text {_braces(names)}",
                        key,
                    )
            entries[key] = entry
        return entries

    def _entry(
        self, file: str, key: str, line: int | None, value: Any, default: ReviewState
    ) -> Entry | None:
        variants: dict[str, str] = {}
        if isinstance(value, str):
            text, review, note = value, default, None
        elif isinstance(value, Mapping):
            unknown = [k for k in value if k not in _ENTRY_FIELDS]
            if unknown:
                self.issue(file, line, f"text '{key}': unknown field '{unknown[0]}'", key)
                return None
            text, review, note = value.get("text"), value.get("review", default), value.get("note")
            if review not in REVIEW_STATES:
                self.issue(file, line, f"text '{key}': review must be one of {REVIEW_STATES}", key)
                return None
            if note is not None and not isinstance(note, str):
                note = str(note)
            for variant in VARIANT_FIELDS:
                if variant not in value:
                    continue
                template = value[variant]
                if not isinstance(template, str) or not template.strip():
                    self.issue(
                        file, line, f"text '{key}': {variant} must be a non-empty string", key
                    )
                    return None
                variants[variant] = template
        else:
            text, review, note = None, default, None
        if not isinstance(text, str) or not text.strip():
            self.issue(file, line, f"text '{key}' must be a non-empty string", key)
            return None
        return Entry(text, review, note, line, variants)
