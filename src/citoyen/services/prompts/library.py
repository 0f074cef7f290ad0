"""The prompt library: recorded prompts stored in a folder, their metadata in ``voice_prompts``.

Two layers, the first one found wins:

1. the **library** — files in ``CITOYEN_PROMPTS_DIR`` (default ``<instance>/prompts``), named
   ``<lang>/<key>.<content hash>.wav|mp3`` so that a new recording has a new URL and no cache
   plays the old one; one row per language and key in ``voice_prompts`` (hash of the text it
   says, duration, size, source, who made it);
2. the **shipped** files ``locales/<lang>/audio/<key>.wav|mp3``: read-only, never stale (no text
   hash is known for them), overridden by a library recording of the same key.

Every function here is what a face needs and nothing more: the admin page lists
:func:`coverage`, stores with :func:`store_upload`, removes with :func:`delete_prompt`; calls use
:class:`PromptAudio`; the CLI prints :func:`summary`. Writes commit before files are removed, so a
failed transaction never leaves a row pointing at a deleted file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import AuditEvent, User, VoicePrompt
from citoyen.services.prompts.audio import Audio, AudioError, validate_upload
from citoyen.services.prompts.catalogue import PromptSpec, catalogue
from citoyen.services.refusals import Refusal

log = logging.getLogger(__name__)

SOURCES = ("upload", "phone", "import")
STATUSES = ("recorded", "shipped", "stale", "missing")
FILE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,200}")
CONTENT_TYPES = {".wav": "audio/wav", ".mp3": "audio/mpeg"}


class PromptError(Refusal):
    """A library request that cannot be honoured (unknown language or key, a bad PIN): the
    English reason for the command line, and a code the admin words in the staff's language."""


@dataclass(frozen=True)
class PromptStatus:
    """One prompt of one language as the admin page and ``citoyen prompts status`` show it."""

    language: str
    number: int
    key: str
    text: str  # what the recording must say
    reference_text: str | None  # the same text in the default language (what recorders hear)
    status: str  # recorded | shipped | stale | missing
    needed: bool  # False where Twilio can say the text (text-to-speech): a recording is optional
    source: str | None = None  # upload | phone | import | shipped
    file_name: str | None = None
    duration_ms: int | None = None
    size_bytes: int | None = None
    user_email: str | None = None
    recorded_at: datetime | None = None


@dataclass
class ImportResult:
    stored: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.stored} stored, {self.unchanged} unchanged, {len(self.errors)} refused"


def library_dir(settings: Any) -> Path:
    return Path(settings.resolved_prompts_dir)


def has_tts(bundle: Any, lang: str) -> bool:
    """True when Twilio can say this language's texts (its ``meta.tts`` is a Twilio voice)."""
    from citoyen.channels.twilio_voice import sayable

    catalog = bundle.catalog
    return lang in catalog.languages and sayable(catalog.meta(lang).tts) is not None


def rows_by_key(
    session: Session, language: str | None = None
) -> dict[tuple[str, str], VoicePrompt]:
    query = select(VoicePrompt)
    if language is not None:
        query = query.where(VoicePrompt.language == language)
    return {(row.language, row.key): row for row in session.exec(query).all()}


def languages_of(bundle: Any, language: str | None = None) -> list[str]:
    enabled = list(bundle.settings.languages.enabled)
    if language is None:
        return enabled
    if language not in enabled:
        raise PromptError(
            f"language '{language}' is not enabled ({', '.join(enabled)})",
            "prompt_language",
            language=language,
        )
    return [language]


def coverage(
    runtime: Any, language: str | None = None, *, database: bool = True
) -> list[PromptStatus]:
    """Every prompt of every enabled language (or one), with its state: recorded, shipped (a
    file under locales/), stale (the text changed since it was recorded) or missing.

    ``database=False`` looks at the shipped files only (a database not migrated yet).
    """
    bundle = runtime.bundle
    catalog = bundle.catalog
    langs = languages_of(bundle, language)
    default = bundle.settings.languages.default
    rows: dict[tuple[str, str], VoicePrompt] = {}
    users: dict[int, str] = {}
    if database:
        with Session(runtime.engine) as session:
            rows = rows_by_key(session, language)
            users = dict(session.exec(select(User.id, User.email)).all())
    out: list[PromptStatus] = []
    for lang in langs:
        needed = not has_tts(bundle, lang)
        reference = {s.key: s.text for s in catalogue(bundle, default)} if lang != default else {}
        for spec in catalogue(bundle, lang):
            row = rows.get((lang, spec.key))
            base = {
                "language": lang,
                "number": spec.number,
                "key": spec.key,
                "text": spec.text,
                "reference_text": reference.get(spec.key, spec.text),
                "needed": needed,
            }
            if row is not None:
                out.append(
                    PromptStatus(
                        **base,
                        status="recorded" if row.text_hash == spec.text_hash else "stale",
                        source=row.source,
                        file_name=row.file_name,
                        duration_ms=row.duration_ms,
                        size_bytes=row.size_bytes,
                        user_email=users.get(row.user_id) if row.user_id else None,
                        recorded_at=row.created_at,
                    )
                )
                continue
            shipped = catalog.audio_path(spec.key, lang)
            if shipped is not None:
                out.append(
                    PromptStatus(
                        **base,
                        status="shipped",
                        source="shipped",
                        file_name=shipped.name,
                        size_bytes=shipped.stat().st_size,
                    )
                )
            else:
                out.append(PromptStatus(**base, status="missing"))
    return out


def summary(statuses: Iterable[PromptStatus]) -> dict[str, dict[str, Any]]:
    """Counts per language: ``prompts``, one count per status, ``needed`` (no text-to-speech)."""
    out: dict[str, dict[str, Any]] = {}
    for st in statuses:
        row = out.setdefault(
            st.language, {"prompts": 0, "needed": st.needed, **dict.fromkeys(STATUSES, 0)}
        )
        row["prompts"] += 1
        row[st.status] += 1
    return out


def check_warnings(runtime: Any, *, database: bool = True) -> list[tuple[str, str]]:
    """``(language, message)`` per language whose calls are missing something: prompts without
    a recording in a language Twilio cannot speak (callers hear the fallback language), and
    stale recordings in any language (callers hear an old text)."""
    bundle = runtime.bundle
    settings = bundle.settings
    counts = summary(coverage(runtime, database=database))
    out: list[tuple[str, str]] = []
    for lang, row in counts.items():
        parts = []
        if row["needed"] and row["missing"]:
            fallback = settings.voice_fallback.get(lang, settings.languages.default)
            how = "voice_fallback" if lang in settings.voice_fallback else "the default language"
            parts.append(
                f"{row['missing']} of {row['prompts']} voice prompts have no recording and "
                f"'{lang}' has no text-to-speech: callers hear '{fallback}' instead ({how})"
            )
        if row["stale"]:
            parts.append(
                f"{row['stale']} recording(s) are stale (the text changed since they were recorded)"
            )
        if parts:
            out.append(
                (lang, "; ".join(parts) + f"; see `citoyen prompts status --language {lang}`")
            )
    return out


# --- writing ---------------------------------------------------------------------------------


def _spec(runtime: Any, lang: str, key: str) -> PromptSpec:
    bundle = runtime.bundle
    languages_of(bundle, lang)
    spec = next((s for s in catalogue(bundle, lang) if s.key == key), None)
    if spec is None:
        raise PromptError(
            f"'{key}' is not a prompt a call can play in '{lang}'",
            "prompt_key",
            key=key,
            language=lang,
        )
    return spec


def _write_file(folder: Path, name: str, data: bytes) -> Path:
    """Write atomically (temporary file, then rename) so a reader never gets half a file."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed below
        dir=folder, prefix=".", suffix=".part", delete=False
    )
    try:
        with handle:
            handle.write(data)
        final = folder / name
        os.replace(handle.name, final)
        final.chmod(0o644)  # prompts are public: a storage sync or CDN may serve the folder
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return final


def store_audio(
    runtime: Any,
    lang: str,
    key: str,
    audio: Audio,
    *,
    source: str,
    user_id: int | None = None,
    text_hash: str | None = None,
) -> VoicePrompt:
    """Put a checked recording in the library as the prompt of ``lang``/``key``, replacing any.

    ``text_hash`` is the hash of the text the recording says; default: the current text (an
    upload made now, looking at the text). A phone recording passes the hash of the text read to
    the recorder, so a text edited meanwhile shows the new recording as stale.
    """
    if source not in SOURCES:
        raise PromptError(f"unknown source {source!r}", "prompt_source", source=source)
    spec = _spec(runtime, lang, key)
    digest = hashlib.sha256(audio.data).hexdigest()[:12]
    name = f"{key}.{digest}{audio.extension}"
    folder = library_dir(runtime.settings) / lang
    path = _write_file(folder, name, audio.data)
    old_name: str | None = None
    now = datetime.now(UTC)
    try:
        with write_session(runtime.engine) as session:
            row = session.exec(
                select(VoicePrompt).where(VoicePrompt.language == lang, VoicePrompt.key == key)
            ).first()
            if row is None:
                row = VoicePrompt(language=lang, key=key)
                session.add(row)
            else:
                old_name = row.file_name
            row.text_hash = text_hash or spec.text_hash
            row.file_name = name
            row.content_type = audio.content_type
            row.duration_ms = audio.duration_ms
            row.size_bytes = len(audio.data)
            row.source = source
            row.user_id = user_id
            row.created_at = now
            session.add(
                AuditEvent(
                    user_id=user_id,
                    action="prompt_stored",
                    target_type="voice_prompt",
                    data={"language": lang, "key": key, "source": source, "file": name},
                    created_at=now,
                )
            )
            session.flush()
            session.expunge(row)
    except BaseException:
        if old_name != name:
            path.unlink(missing_ok=True)
        raise
    mark_changed(runtime)
    if old_name and old_name != name:
        (folder / old_name).unlink(missing_ok=True)
    log.info("prompts: %s/%s stored (%s, %d ms)", lang, key, source, audio.duration_ms)
    return row


def store_upload(
    runtime: Any, lang: str, key: str, data: bytes, filename: str, *, user_id: int | None
) -> VoicePrompt:
    """An uploaded file, checked (:class:`AudioError` says what is wrong) and stored.

    The language and key are checked first, so a wrong target is named before the file is read.
    """
    _spec(runtime, lang, key)
    audio = validate_upload(data, filename)
    return store_audio(runtime, lang, key, audio, source="upload", user_id=user_id)


def delete_prompt(runtime: Any, lang: str, key: str, *, user_id: int | None) -> bool:
    """Remove a library recording (a shipped file, if any, is heard again); False if none."""
    with write_session(runtime.engine) as session:
        row = session.exec(
            select(VoicePrompt).where(VoicePrompt.language == lang, VoicePrompt.key == key)
        ).first()
        if row is None:
            return False
        name = row.file_name
        session.delete(row)
        session.add(
            AuditEvent(
                user_id=user_id,
                action="prompt_deleted",
                target_type="voice_prompt",
                data={"language": lang, "key": key, "file": name},
            )
        )
    mark_changed(runtime)
    (library_dir(runtime.settings) / lang / name).unlink(missing_ok=True)
    log.info("prompts: %s/%s deleted", lang, key)
    return True


def prompt_file(runtime: Any, lang: str, key: str) -> tuple[Path, str] | None:
    """The file to listen to for a prompt (library first, then shipped) and its content type."""
    with Session(runtime.engine) as session:
        row = session.exec(
            select(VoicePrompt).where(VoicePrompt.language == lang, VoicePrompt.key == key)
        ).first()
    if row is not None:
        return library_dir(runtime.settings) / lang / row.file_name, row.content_type
    shipped = runtime.bundle.catalog.audio_path(key, lang)
    if shipped is not None:
        return shipped, CONTENT_TYPES.get(shipped.suffix.lower(), "audio/wav")
    return None


def import_dir(
    runtime: Any,
    folder: Path,
    *,
    language: str | None = None,
    user_id: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ImportResult:
    """Load a folder of recordings named ``<key>.wav|mp3``, in ``<lang>/`` subfolders or, with
    ``language``, directly in ``folder``. Each file is checked like an upload; a file identical
    to the stored one is left alone; files that are not prompts are listed as refused."""
    folder = Path(folder)
    langs = languages_of(runtime.bundle, language)
    files: list[tuple[str, Path]] = []
    for lang in langs:
        where = folder if language else folder / lang
        if where.is_dir():
            files += [
                (lang, p)
                for p in sorted(where.iterdir())
                if p.is_file() and p.suffix.lower() in CONTENT_TYPES
            ]
    result = ImportResult()
    with Session(runtime.engine) as session:
        existing = rows_by_key(session, language)
    for done, (lang, path) in enumerate(files, start=1):
        key = path.name[: -len(path.suffix)]
        label = f"{lang}/{path.name}"
        try:
            _spec(runtime, lang, key)
            audio = validate_upload(path.read_bytes(), label)
        except (PromptError, AudioError) as exc:
            result.errors.append(f"{label}: {exc}" if isinstance(exc, PromptError) else str(exc))
        else:
            row = existing.get((lang, key))
            digest = hashlib.sha256(audio.data).hexdigest()[:12]
            if row is not None and row.file_name == f"{key}.{digest}{audio.extension}":
                result.unchanged += 1
            else:
                store_audio(runtime, lang, key, audio, source="import", user_id=user_id)
                result.stored += 1
        if progress:
            progress(done, len(files))
    return result


# --- calls -----------------------------------------------------------------------------------

# How long a process trusts its copy of the library's rows while the library folder says
# nothing changed: bounds how long a change made behind this module's back (a restored backup,
# a hand-edited row) stays unheard.
ROWS_MAX_AGE = 60.0


@dataclass(frozen=True)
class _Rows:
    folder: Path
    stamp: int | None  # the library folder's mtime (ns) read before the rows were
    loaded: float  # time.monotonic() of the load
    rows: dict[tuple[str, str], str]  # (language, key) -> file name


# Per database engine (one per URL per process): the library rows last read. Every call turn
# needs them; reading them from the database each time costs a query per turn.
_rows_cache: weakref.WeakKeyDictionary[Engine, _Rows] = weakref.WeakKeyDictionary()
_rows_lock = threading.Lock()


def _stamp(folder: Path) -> int | None:
    try:
        return folder.stat().st_mtime_ns
    except OSError:
        return None  # no library yet: nothing was ever stored


def mark_changed(runtime: Any) -> None:
    """Tell every process serving calls that the library's rows changed: this process forgets
    its copy, and the library folder's mtime moves strictly forward for the others. Called after
    the change is committed, so whoever sees the new stamp and reads the rows sees the change."""
    with _rows_lock:
        _rows_cache.pop(runtime.engine, None)
    folder = library_dir(runtime.settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        now = max(time.time_ns(), (_stamp(folder) or 0) + 1)
        os.utime(folder, ns=(now, now))
    except OSError as exc:
        log.warning(
            "prompts: could not mark the library changed (%s); other workers may play the "
            "previous recording for up to %d s",
            exc.strerror,
            ROWS_MAX_AGE,
        )


def library_rows(runtime: Any) -> dict[tuple[str, str], str]:
    """``(language, key) -> file name`` of every library recording, read again only when the
    library changed (:func:`mark_changed`, which every write here calls after its commit) or
    the copy is older than :data:`ROWS_MAX_AGE`. The stamp is read before the rows, so a change
    committed meanwhile moves the stamp past the copy and the next turn reads it."""
    engine = runtime.engine
    folder = library_dir(runtime.settings)
    stamp = _stamp(folder)
    now = time.monotonic()
    with _rows_lock:
        cached = _rows_cache.get(engine)
    if (
        cached is not None
        and cached.folder == folder
        and cached.stamp == stamp
        and now - cached.loaded < ROWS_MAX_AGE
    ):
        return cached.rows
    with Session(engine) as session:
        rows = {
            (lang, key): name
            for lang, key, name in session.exec(
                select(VoicePrompt.language, VoicePrompt.key, VoicePrompt.file_name)
            ).all()
        }
    with _rows_lock:
        _rows_cache[engine] = _Rows(folder, stamp, now, rows)
    return rows


class PromptAudio:
    """The URL to ``<Play>`` for a prompt, made once per call turn: library, then shipped.

    ``base_url`` serves the library (``CITOYEN_PROMPTS_URL``, or the service's ``/audio``);
    ``shipped_url`` turns a shipped file into its URL.
    """

    def __init__(
        self,
        rows: dict[tuple[str, str], str],
        catalog: Any,
        *,
        base_url: str,
        shipped_url: Callable[[str, Path], str],
    ) -> None:
        self.rows = rows
        self.catalog = catalog
        self.base_url = base_url.rstrip("/")
        self.shipped_url = shipped_url

    @classmethod
    def load(cls, runtime: Any, shipped_url: Callable[[str, Path], str]) -> PromptAudio:
        settings = runtime.settings
        base = settings.prompts_url or f"{settings.public_url.rstrip('/')}/audio"
        return cls(
            library_rows(runtime), runtime.bundle.catalog, base_url=base, shipped_url=shipped_url
        )

    def url(self, key: str, lang: str) -> str | None:
        name = self.rows.get((lang, key))
        if name is not None:
            return f"{self.base_url}/{quote(lang)}/{quote(name)}"
        shipped = self.catalog.audio_path(key, lang)
        return self.shipped_url(lang, shipped) if shipped is not None else None

    def has(self, key: str, lang: str) -> bool:
        return (lang, key) in self.rows or self.catalog.audio_path(key, lang) is not None
