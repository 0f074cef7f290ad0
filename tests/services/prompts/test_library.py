"""The prompt library: coverage and staleness from a fixture library, storage, import, delete.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlmodel import Session, select

from citoyen.db import write_session
from citoyen.models import AuditEvent, User, VoicePrompt
from citoyen.runtime import Runtime
from citoyen.services.prompts import (
    AudioError,
    PromptAudio,
    PromptError,
    catalogue,
    check_warnings,
    coverage,
    delete_prompt,
    import_dir,
    library,
    library_dir,
    store_upload,
    summary,
)
from tests.services.prompts.conftest import edit, reload
from tests.services.prompts.sounds import mp3, wav

# Shipped fixture files (tests/channels/voice/fixtures/bm/audio) that are prompts of the shipped
# flows; system.language_option.wav is not (the recorder asks for the numbered file).
SHIPPED = {"report.category", "report.category.theft", "report.confirm", "report.welcome",
           "system.voice_option.2"}  # fmt: skip


def by_key(runtime: Runtime, lang: str) -> dict[str, object]:
    return {st.key: st for st in coverage(runtime, lang)}


def files(runtime: Runtime) -> list[str]:
    root = library_dir(runtime.settings)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_catalogue_lists_what_a_bambara_call_can_play(runtime: Runtime) -> None:
    specs = catalogue(runtime.bundle, "bm")
    keys = [s.key for s in specs]
    assert [s.number for s in specs] == list(range(1, len(specs) + 1))
    assert len(keys) == len(set(keys))
    # engine texts, flow questions and options; menu lines by position; bm is 2nd language
    for key in ("system.no_answer", "report.welcome", "report.category.theft",
                "system.voice_option.1", "system.voice_option.2", "system.language_option.2"):  # fmt: skip
        assert key in keys, key
    assert "system.language_option.1" not in keys and "system.voice_option" not in keys
    # texts only sent by message are not prompts
    assert "system.help" not in keys and "alert.escalated" not in keys
    welcome = next(s for s in specs if s.key == "report.welcome")
    assert "17" in welcome.text and "{police}" not in welcome.text  # numbers are recorded


def test_flows_only_a_typed_message_starts_are_not_prompts(runtime: Runtime) -> None:
    """APPEL, SUIVI, a thanks after a report: flows a call never runs, so their texts only ever
    go by message (the call-back's answer); the call-back's opening is
    heard, and so are the report flow (incoming calls) and the survey (survey calls)."""
    keys = {s.key for s in catalogue(runtime.bundle, "bm")}
    text_only = {"callback.answer", "report.follow_status", "report.after_report"}
    assert not keys & text_only, keys & text_only
    heard = {"callback.call_intro", "report.follow_status_call", "report.ask_reference",
             "report.addition_done", "perceived_safety.safe_after_dark"}  # fmt: skip
    assert heard <= keys, heard - keys


def test_coverage_and_staleness_from_a_fixture_library(runtime: Runtime, staff: User) -> None:
    store_upload(runtime, "bm", "report.danger", wav(1.2), "danger.wav", user_id=staff.id)
    store_upload(runtime, "bm", "report.welcome", mp3(4.0), "welcome.mp3", user_id=None)
    rows = by_key(runtime, "bm")
    assert rows["report.danger"].status == "recorded"
    assert rows["report.danger"].source == "upload"
    assert rows["report.danger"].user_email == "awa@example.ml"
    assert rows["report.danger"].duration_ms == 1200
    assert rows["report.danger"].reference_text == "Quelqu'un est-il en danger en ce moment ?"
    assert rows["report.welcome"].status == "recorded"  # the library overrides a shipped file
    assert rows["report.category"].status == "shipped"
    assert rows["report.describe"].status == "missing"
    total = len(catalogue(runtime.bundle, "bm"))
    assert summary(rows.values())["bm"] == {
        "prompts": total,
        "needed": True,
        "recorded": 2,
        "shipped": len(SHIPPED) - 1,
        "stale": 0,
        "missing": total - 2 - (len(SHIPPED) - 1),
    }
    # French has text-to-speech: nothing is needed there
    assert summary(coverage(runtime, "fr"))["fr"]["needed"] is False

    # The Bambara text is edited after the recording: the recording is stale.
    locales_dir = Path(runtime.settings.locales_dir)
    edit(locales_dir / "bm.yaml", 'report.danger: "Mɔgɔ', 'report.danger: "Hakɛto, mɔgɔ')
    reload(runtime)
    rows = by_key(runtime, "bm")
    assert rows["report.danger"].status == "stale"
    assert rows["report.welcome"].status == "recorded"

    # An emergency number changes: every recording that says it is stale.
    edit(runtime.settings.resolved_config_dir / "settings.yaml", 'police: "17"', 'police: "80333"')
    reload(runtime)
    rows = by_key(runtime, "bm")
    assert rows["report.welcome"].status == "stale"
    assert "80333" in rows["report.welcome"].text
    assert summary(rows.values())["bm"]["stale"] == 2

    # Recording it again makes it current.
    store_upload(runtime, "bm", "report.danger", wav(1.0), "danger2.wav", user_id=staff.id)
    assert by_key(runtime, "bm")["report.danger"].status == "recorded"


def test_the_file_is_named_by_its_content_and_replaced_files_are_removed(
    runtime: Runtime,
) -> None:
    first = store_upload(runtime, "bm", "report.danger", wav(1.0), "a.wav", user_id=None)
    assert first.file_name.startswith("report.danger.") and first.file_name.endswith(".wav")
    assert files(runtime) == [f"bm/{first.file_name}"]
    second = store_upload(runtime, "bm", "report.danger", wav(2.0), "b.wav", user_id=None)
    assert second.file_name != first.file_name
    assert files(runtime) == [f"bm/{second.file_name}"]
    with Session(runtime.engine) as session:
        rows = session.exec(select(VoicePrompt)).all()
        assert [(r.language, r.key, r.file_name, r.size_bytes) for r in rows] == [
            ("bm", "report.danger", second.file_name, len(wav(2.0)))
        ]
        actions = session.exec(select(AuditEvent.action)).all()
        assert actions == ["prompt_stored", "prompt_stored"]


def test_a_refused_upload_changes_nothing(runtime: Runtime) -> None:
    with pytest.raises(AudioError, match="not an audio file"):
        store_upload(runtime, "bm", "report.danger", b"%PDF-1.4 ...", "texte.pdf", user_id=None)
    with pytest.raises(PromptError, match=r"'report\.nothing' is not a prompt"):
        store_upload(runtime, "bm", "report.nothing", wav(), "x.wav", user_id=None)
    with pytest.raises(PromptError, match="language 'ff' is not enabled"):
        store_upload(runtime, "ff", "report.danger", wav(), "x.wav", user_id=None)
    with Session(runtime.engine) as session:
        assert session.exec(select(VoicePrompt)).all() == []
    assert files(runtime) == []


def test_delete_brings_back_the_shipped_file(runtime: Runtime) -> None:
    store_upload(runtime, "bm", "report.category", wav(), "c.wav", user_id=None)
    assert by_key(runtime, "bm")["report.category"].status == "recorded"
    assert delete_prompt(runtime, "bm", "report.category", user_id=None) is True
    assert by_key(runtime, "bm")["report.category"].status == "shipped"
    assert files(runtime) == []
    assert delete_prompt(runtime, "bm", "report.category", user_id=None) is False


def test_import_a_folder_of_recordings(runtime: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "from-the-field"
    (folder / "bm").mkdir(parents=True)
    (folder / "bm" / "report.danger.wav").write_bytes(wav(1.0))
    (folder / "bm" / "report.describe.mp3").write_bytes(mp3(2.0))
    (folder / "bm" / "report.anonymous.wav").write_bytes(b"not audio at all")
    (folder / "bm" / "greeting.wav").write_bytes(wav(1.0))
    seen: list[tuple[int, int]] = []
    result = import_dir(runtime, folder, progress=lambda done, total: seen.append((done, total)))
    assert (result.stored, result.unchanged) == (2, 0)
    assert sorted(result.errors) == [
        "bm/greeting.wav: 'greeting' is not a prompt a call can play in 'bm'",
        "bm/report.anonymous.wav: this is not an audio file; send a WAV or MP3 recording",
    ]
    assert seen[-1] == (4, 4)
    rows = by_key(runtime, "bm")
    assert rows["report.danger"].source == "import"
    assert rows["report.describe"].status == "recorded"
    again = import_dir(runtime, folder, language=None)
    assert (again.stored, again.unchanged) == (0, 2)


def test_flows_check_warnings_name_the_fallback_and_stale_recordings(runtime: Runtime) -> None:
    store_upload(runtime, "bm", "report.danger", wav(), "d.wav", user_id=None)
    edit(
        Path(runtime.settings.locales_dir) / "bm.yaml",
        'report.danger: "Mɔgɔ',
        'report.danger: "Hakɛto, mɔgɔ',
    )
    reload(runtime)
    warnings = dict(check_warnings(runtime))
    assert set(warnings) == {"bm"}
    total = len(catalogue(runtime.bundle, "bm"))
    missing = total - 1 - (len(SHIPPED))
    assert warnings["bm"].startswith(
        f"{missing} of {total} voice prompts have no recording and 'bm' has no text-to-speech: "
        "callers hear 'fr' instead (voice_fallback); 1 recording(s) are stale"
    )
    # Without the database only shipped files count.
    shipped_only = dict(check_warnings(runtime, database=False))["bm"]
    assert shipped_only.startswith(f"{total - len(SHIPPED)} of {total} voice prompts")


def test_calls_get_library_urls_before_shipped_ones(runtime: Runtime) -> None:
    row = store_upload(runtime, "bm", "report.category", wav(), "c.wav", user_id=None)
    audio = PromptAudio.load(runtime, lambda lang, path: f"shipped:{lang}/{path.name}")
    assert audio.url("report.category", "bm") == (f"http://localhost:8000/audio/bm/{row.file_name}")
    assert audio.url("report.confirm", "bm") == "shipped:bm/report.confirm.wav"
    assert audio.url("report.describe", "bm") is None
    cdn = runtime.settings.model_copy(update={"prompts_url": "https://cdn.example.ml/prompts/"})
    runtime.settings = cdn
    audio = PromptAudio.load(runtime, lambda lang, path: "")
    assert audio.url("report.category", "bm") == (
        f"https://cdn.example.ml/prompts/bm/{row.file_name}"
    )


def _urls(runtime: Runtime) -> PromptAudio:
    return PromptAudio.load(runtime, lambda lang, path: f"shipped:{lang}/{path.name}")


def test_a_turn_hears_what_was_stored_or_deleted_a_moment_before(runtime: Runtime) -> None:
    # The rows are kept between turns: storing and deleting must still be heard at once.
    assert _urls(runtime).url("report.category", "bm") == "shipped:bm/report.category.wav"
    row = store_upload(runtime, "bm", "report.category", wav(), "c.wav", user_id=None)
    assert _urls(runtime).url("report.category", "bm").endswith(f"/audio/bm/{row.file_name}")
    again = store_upload(runtime, "bm", "report.category", wav(2.0), "c2.wav", user_id=None)
    assert _urls(runtime).url("report.category", "bm").endswith(f"/audio/bm/{again.file_name}")
    delete_prompt(runtime, "bm", "report.category", user_id=None)
    assert _urls(runtime).url("report.category", "bm") == "shipped:bm/report.category.wav"


def _stored_elsewhere(runtime: Runtime, key: str, name: str) -> None:
    """A row written as another worker's store would, without this process's own notice."""
    with write_session(runtime.engine) as session:
        session.add(
            VoicePrompt(
                language="bm",
                key=key,
                text_hash="x",
                file_name=name,
                content_type="audio/wav",
                duration_ms=1000,
                size_bytes=10,
                source="upload",
            )
        )


def test_another_workers_change_is_heard_once_the_library_is_marked(runtime: Runtime) -> None:
    store_upload(runtime, "bm", "report.danger", wav(), "d.wav", user_id=None)
    assert _urls(runtime).url("report.describe", "bm") is None  # the rows are now kept
    _stored_elsewhere(runtime, "report.describe", "report.describe.abc.wav")
    assert _urls(runtime).url("report.describe", "bm") is None  # not marked yet: the kept rows
    folder = library_dir(runtime.settings)
    before = folder.stat().st_mtime_ns
    # What the other worker's mark_changed does to the shared folder after its commit.
    os.utime(folder, ns=(before + 1_000, before + 1_000))
    assert _urls(runtime).url("report.describe", "bm").endswith("/bm/report.describe.abc.wav")


def test_a_change_made_behind_the_librarys_back_is_heard_after_the_max_age(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _urls(runtime).url("report.describe", "bm") is None
    _stored_elsewhere(runtime, "report.describe", "report.describe.abc.wav")
    monkeypatch.setattr(library, "ROWS_MAX_AGE", 0.0)
    assert _urls(runtime).url("report.describe", "bm").endswith("/bm/report.describe.abc.wav")
