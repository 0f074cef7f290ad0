"""The voice simulator (`citoyen chat --channel voice`) says plainly what a caller hears.

It renders the same TwiML as the voice webhook, so a recorded prompt shows as
``[recording bm/report.welcome]`` and text-to-speech as ``[French text-to-speech] ...``, with
Bambara's missing recordings heard in French (its ``voice_fallback``). Bambara is forced onto the
language menu in these fixtures (tests/channels/voice/conftest.py), with 6 prompts recorded.
"""

from __future__ import annotations

from citoyen.cli.simulator import Simulator
from citoyen.runtime import Runtime


def test_a_bambara_call_in_the_simulator(runtime: Runtime) -> None:
    shown: list[str] = []
    sim = Simulator(runtime, "voice", "+22376543210")
    sim.run(["2", "1"], shown.append)
    menu, welcome, categories = shown
    assert menu.splitlines() == [
        "[French text-to-speech] Choisissez votre langue.",
        "[French text-to-speech] Pour le français, tapez 1.",
        "[recording bm/system.language_option]",
        "[English text-to-speech] For English, press 3.",
        "(one key)",
    ]
    assert welcome.splitlines()[0] == "[recording bm/report.welcome]"
    # The intent question has no Bambara recording: heard in French, the fallback.
    assert welcome.splitlines()[1] == "[French text-to-speech] Que voulez-vous faire ?"
    assert categories.splitlines()[:4] == [
        "[recording bm/report.category]",
        "[French text-to-speech] Pour Attaque ou menace armée, tapez 1.",
        "[recording bm/report.category.theft]",
        "[recording bm/system.voice_option.2]",
    ]
    assert categories.splitlines()[-1] == "(one key)"
