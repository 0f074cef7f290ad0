"""Upload checks: what is accepted, what Twilio gets, and the message for everything else."""

from __future__ import annotations

import io
import struct
import wave

import pytest

from citoyen.services.prompts import AudioError, validate_upload
from tests.services.prompts.sounds import float_wav, mp3, samples, wav


def read(data: bytes) -> tuple[int, int, int, list[int]]:
    with wave.open(io.BytesIO(data)) as reader:
        frames = reader.readframes(reader.getnframes())
        values = list(struct.unpack(f"<{len(frames) // 2}h", frames))
        return reader.getnchannels(), reader.getsampwidth(), reader.getframerate(), values


def test_a_mono_16_bit_wav_is_kept_byte_for_byte() -> None:
    data = wav(1.5)
    audio = validate_upload(data, "report.welcome.wav")
    assert audio.data == data
    assert (audio.extension, audio.content_type) == (".wav", "audio/wav")
    assert audio.duration_ms == 1500
    assert audio.converted is False


@pytest.mark.parametrize(("width", "channels"), [(2, 2), (3, 1), (4, 2)])
def test_wide_or_stereo_wav_becomes_mono_16_bit_with_the_same_sound(
    width: int, channels: int
) -> None:
    audio = validate_upload(wav(1.0, rate=16000, width=width, channels=channels), "a.wav")
    assert audio.converted is True
    n_channels, sample_width, rate, values = read(audio.data)
    assert (n_channels, sample_width, rate) == (1, 2, 16000)
    assert values == samples(1.0, 16000)
    assert audio.duration_ms == 1000


def test_mp3_is_accepted_with_its_duration() -> None:
    audio = validate_upload(mp3(3.0), "prompt.mp3")
    assert (audio.extension, audio.content_type) == (".mp3", "audio/mpeg")
    assert 2900 <= audio.duration_ms <= 3100
    assert audio.converted is False


def test_a_non_audio_file_is_refused_with_a_clear_message() -> None:
    with pytest.raises(AudioError) as caught:
        validate_upload(b"Bonjour, voici le texte du message.\n", "message.txt")
    assert (caught.value.code, caught.value.params) == ("not_audio", {})
    assert str(caught.value) == (
        "message.txt: this is not an audio file; send a WAV or MP3 recording"
    )


@pytest.mark.parametrize(
    ("data", "name", "bare"),
    [
        (b"OggS\x00\x02" + bytes(200), "Ogg (Opus or Vorbis, e.g. a WhatsApp voice note)", "Ogg"),
        (b"\x00\x00\x00\x20ftypM4A " + bytes(200), "MP4/M4A/3GP (AAC)", "MP4/M4A/3GP (AAC)"),
        (b"#!AMR\n" + bytes(200), "AMR (a phone voice memo)", "AMR"),
    ],
)
def test_phone_formats_twilio_cannot_play_are_named(data: bytes, name: str, bare: str) -> None:
    # Named by content: a voice note renamed to .wav is still a voice note.
    with pytest.raises(AudioError) as caught:
        validate_upload(data, "note.wav")
    assert (caught.value.code, caught.value.params) == ("audio_format", {"format": bare})
    assert f"{name} audio is not supported" in str(caught.value)
    assert "WAV or MP3" in str(caught.value)


def test_a_float_wav_is_refused_as_not_pcm() -> None:
    with pytest.raises(AudioError) as caught:
        validate_upload(float_wav(), "float.wav")
    assert caught.value.code == "wav_not_pcm"
    assert "not plain PCM" in str(caught.value)


def test_empty_too_big_too_long_and_too_short() -> None:
    with pytest.raises(AudioError, match="the file is empty") as caught:
        validate_upload(b"", "x.wav")
    assert caught.value.code == "audio_empty"
    with pytest.raises(AudioError, match=r"too big \(1\.0 MB; at most 0\.5 MB\)") as caught:
        validate_upload(bytes(1024 * 1024), "x.wav", max_bytes=512 * 1024)
    assert (caught.value.code, caught.value.params) == (
        "audio_too_big",
        {"size_mb": 1.0, "limit_mb": 0.5},
    )
    with pytest.raises(AudioError, match=r"too long \(2 min 5 s; at most 1 min 0 s\)") as caught:
        validate_upload(wav(125.0), "x.wav")
    assert (caught.value.code, caught.value.params) == (
        "audio_too_long",
        {"seconds": 125.0, "limit_seconds": 60.0},
    )
    with pytest.raises(AudioError, match="empty or too short") as caught:
        validate_upload(wav(0.05), "x.wav")
    assert (caught.value.code, caught.value.params) == (
        "audio_too_short",
        {"seconds": 0.05},
    )
