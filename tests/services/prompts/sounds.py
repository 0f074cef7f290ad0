"""Audio files made in the test, so every case says exactly what it feeds the checks."""

from __future__ import annotations

import io
import math
import struct
import wave


def samples(seconds: float, rate: int) -> list[int]:
    """A 440 Hz tone as signed 16-bit values."""
    return [int(12000 * math.sin(2 * math.pi * 440 * i / rate)) for i in range(int(seconds * rate))]


def wav(seconds: float = 1.0, *, rate: int = 8000, width: int = 2, channels: int = 1) -> bytes:
    """A PCM WAV of a tone; every channel carries the same tone (wider samples scale it up)."""
    frames = bytearray()
    for value in samples(seconds, rate):
        for _channel in range(channels):
            if width == 1:
                frames.append((value >> 8) + 128)
            elif width == 2:
                frames += struct.pack("<h", value)
            elif width == 3:
                frames += struct.pack("<i", value << 8)[:3]
            else:
                frames += struct.pack("<i", value << 16)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(bytes(frames))
    return out.getvalue()


def float_wav(seconds: float = 1.0, rate: int = 8000) -> bytes:
    """A WAV of 32-bit float samples (format 3), as some recorder apps export."""
    data = b"".join(struct.pack("<f", v / 32768) for v in samples(seconds, rate))
    fmt = struct.pack("<HHIIHH", 3, 1, rate, rate * 4, 4, 32)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mp3(seconds: float = 1.0) -> bytes:
    """MPEG-1 Layer III frames at 128 kbit/s, 44.1 kHz (silent payload), about ``seconds``
    long: each frame is 1152 samples, 417 bytes."""
    header = bytes([0xFF, 0xFB, 0x90, 0x64])
    frame = header + bytes(417 - len(header))
    count = max(1, round(seconds * 44100 / 1152))
    return frame * count
