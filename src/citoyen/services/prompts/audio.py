"""Checking an audio file before it becomes a prompt, and making it something Twilio plays.

Field teams record on whatever phone they have and send what it makes. Twilio's ``<Play>`` takes
WAV (PCM) and MP3, so those two are accepted; everything else is refused with a message that says
what the file is and what to do (export as WAV or MP3), because "invalid file" helps nobody.
WAV files are normalised in pure Python: 24- and 32-bit samples become 16-bit, and stereo becomes
mono (the first channel) — a phone line is mono, and the file is half the size. MP3 files are kept
as they are once :mod:`mutagen` has read their frames and duration.
"""

from __future__ import annotations

import io
import wave
from array import array
from dataclasses import dataclass

from mutagen import MutagenError
from mutagen.mp3 import MP3

from citoyen.services.refusals import Refusal

MAX_BYTES = 10 * 1024 * 1024  # a minute of 16-bit 44.1 kHz stereo WAV is about 10 MB
MAX_SECONDS = 60.0  # a prompt is a sentence or two (the longest, the welcome, ~15 s)
MIN_SECONDS = 0.2  # shorter is a click, not a prompt

# Formats phones and messaging apps produce, by their first bytes: refused with their name in
# the English message, and with the bare format name (the same in every language) as the
# ``format`` of the code the admin words.
_OTHER_FORMATS: tuple[tuple[bytes, int, str, str], ...] = (
    (b"OggS", 0, "Ogg (Opus or Vorbis, e.g. a WhatsApp voice note)", "Ogg"),
    (b"ftyp", 4, "MP4/M4A/3GP (AAC)", "MP4/M4A/3GP (AAC)"),
    (b"#!AMR", 0, "AMR (a phone voice memo)", "AMR"),
    (b"fLaC", 0, "FLAC", "FLAC"),
    (b"FORM", 0, "AIFF", "AIFF"),
    (b"\x1a\x45\xdf\xa3", 0, "WebM/Matroska", "WebM/Matroska"),
    (b"\x30\x26\xb2\x75", 0, "WMA", "WMA"),
)


class AudioError(Refusal):
    """An upload that cannot be a prompt: the English message says why (logs, the command line,
    a phone take's error), ``code`` and ``params`` let the admin say it in the staff's language.

    Codes: ``audio_empty``, ``audio_too_big`` (``size_mb``, ``limit_mb``), ``not_audio``,
    ``mp3_unreadable``, ``audio_format`` (``format``), ``wav_not_pcm``, ``wav_unusable``,
    ``audio_too_long`` (``seconds``, ``limit_seconds``), ``audio_too_short`` (``seconds``).
    """


@dataclass(frozen=True)
class Audio:
    """A checked prompt file, ready to store: bytes Twilio can play and what they are."""

    data: bytes
    extension: str  # ".wav" | ".mp3"
    content_type: str  # "audio/wav" | "audio/mpeg"
    duration_ms: int
    converted: bool  # True when the bytes differ from the upload (WAV normalised)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def _seconds(value: float) -> str:
    whole = round(value)
    return f"{whole // 60} min {whole % 60} s" if whole >= 60 else f"{value:.1f} s"


def _sniff(data: bytes) -> tuple[str, str] | None:
    """``("wav", "WAV")``, ``("mp3", "MP3")``, the description and bare name of another known
    format, or None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav", "WAV"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3", "MP3"
    for magic, offset, described, bare in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            return described, bare
    return None


def validate_upload(
    data: bytes,
    filename: str = "",
    *,
    max_bytes: int = MAX_BYTES,
    max_seconds: float = MAX_SECONDS,
) -> Audio:
    """The upload as a prompt Twilio can play, or :class:`AudioError` naming the problem.

    The content decides, not the file name: a renamed ``.m4a`` is still refused as AAC.
    """
    name = f"{filename}: " if filename else ""
    if not data:
        raise AudioError(f"{name}the file is empty", "audio_empty")
    if len(data) > max_bytes:
        raise AudioError(
            f"{name}the file is too big ({_mb(len(data))}; at most {_mb(max_bytes)})",
            "audio_too_big",
            size_mb=round(len(data) / (1024 * 1024), 1),
            limit_mb=round(max_bytes / (1024 * 1024), 1),
        )
    sniffed = _sniff(data)
    if sniffed is None:
        raise AudioError(
            f"{name}this is not an audio file; send a WAV or MP3 recording", "not_audio"
        )
    kind, bare = sniffed
    if kind == "wav":
        audio = _wav(data, name)
    elif kind == "mp3":
        audio = _mp3(data, name)
    else:
        raise AudioError(
            f"{name}{kind} audio is not supported: export or convert the recording to WAV or "
            "MP3 (most phone recorder apps offer one of them)",
            "audio_format",
            format=bare,
        )
    seconds = audio.duration_ms / 1000
    if seconds > max_seconds:
        raise AudioError(
            f"{name}the recording is too long ({_seconds(seconds)}; at most "
            f"{_seconds(max_seconds)})",
            "audio_too_long",
            seconds=round(seconds, 1),
            limit_seconds=round(max_seconds, 1),
        )
    if seconds < MIN_SECONDS:
        raise AudioError(
            f"{name}the recording is empty or too short ({_seconds(seconds)})",
            "audio_too_short",
            seconds=round(seconds, 2),
        )
    return audio


def _wav(data: bytes, name: str) -> Audio:
    try:
        with wave.open(io.BytesIO(data)) as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        # wave reads PCM only: float, A-law, ADPCM or MP3-in-WAV end up here.
        raise AudioError(
            f"{name}this WAV file is not plain PCM ({exc}); export it as 16-bit PCM WAV or MP3",
            "wav_not_pcm",
        ) from None
    if rate <= 0 or channels <= 0 or width not in (1, 2, 3, 4):
        raise AudioError(f"{name}this WAV file has an unusable format", "wav_unusable")
    count = len(frames) // (width * channels)
    duration_ms = int(count * 1000 / rate)
    if width in (1, 2) and channels == 1:
        return Audio(data, ".wav", "audio/wav", duration_ms, converted=False)
    samples = _to_16bit(frames, width)
    if channels > 1:
        samples = samples[0::channels]  # the first channel: a phone line is mono
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())
    return Audio(out.getvalue(), ".wav", "audio/wav", duration_ms, converted=True)


def _to_16bit(frames: bytes, width: int) -> array:
    """Little-endian PCM samples of ``width`` bytes as signed 16-bit (the top two bytes)."""
    if width == 2:
        samples = array("h")
        samples.frombytes(frames[: len(frames) // 2 * 2])
        return samples
    if width == 1:  # 8-bit WAV is unsigned
        return array("h", ((b - 128) << 8 for b in frames))
    view = memoryview(frames)[: len(frames) // width * width]
    low = bytes(view[width - 2 :: width])  # the two most significant bytes of each sample
    high = bytes(view[width - 1 :: width])
    interleaved = bytearray(len(low) * 2)
    interleaved[0::2] = low
    interleaved[1::2] = high
    samples = array("h")
    samples.frombytes(bytes(interleaved))
    return samples


def _mp3(data: bytes, name: str) -> Audio:
    try:
        info = MP3(io.BytesIO(data)).info
    except (MutagenError, ValueError) as exc:
        raise AudioError(
            f"{name}this file looks like MP3 but cannot be read ({exc})", "mp3_unreadable"
        ) from None
    return Audio(data, ".mp3", "audio/mpeg", int(info.length * 1000), converted=False)
