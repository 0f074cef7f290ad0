"""Which texts are voice prompts (the prompt library's catalogue): those of the flows a call can
run, the incoming call's flow and the flows survey calls run; never those of a flow only a typed
message starts (docs/voice-prompts.md, "Which prompts a deployment needs")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from citoyen.engine import load_bundle
from citoyen.engine.loader import call_flows, survey_flows, voice_keys
from tests.engine.support import VALID
from tests.engine.test_flow_validation import CALLBACK_FLOW, CALLBACK_TEXTS


def _keys(root: Path) -> list[str]:
    bundle = load_bundle(root / "flows", root / "locales")
    return voice_keys(bundle.flows, bundle.survey_flows)


def _with_callback(variant: Callable[..., Path], **files: str) -> Path:
    fr = (VALID / "locales/fr.yaml").read_text(encoding="utf-8")
    bm = (VALID / "locales/bm.yaml").read_text(encoding="utf-8")
    return variant(
        {
            "flows/callme.yaml": CALLBACK_FLOW,
            "locales/fr.yaml": fr + CALLBACK_TEXTS,
            "locales/bm.yaml": bm + CALLBACK_TEXTS,
            **files,
        }
    )


def test_a_flow_only_a_keyword_starts_is_never_heard(variant: Callable[..., Path]) -> None:
    keys = _keys(_with_callback(variant))
    assert "callme.told" not in keys  # the call-back's answer: sent by message only
    assert "callback.call_intro" in keys  # what the answered call-back says first
    assert "demo.age" in keys  # the incoming call's flow
    assert "survey.consent" not in keys  # SONDAGE is typed; no survey calls it


def test_a_flow_a_survey_calls_is_heard(variant: Callable[..., Path]) -> None:
    calling = "id: monthly\nflow: survey\nchannels: [sms, voice]\n"
    root = _with_callback(variant, **{"flows/surveys/monthly.yaml": calling})
    assert survey_flows(root / "flows") == {"survey"}
    assert "survey.consent" in _keys(root)
    texting = calling.replace("[sms, voice]", "[sms, telegram]")
    root = _with_callback(variant, **{"flows/surveys/monthly.yaml": texting})
    assert survey_flows(root / "flows") == frozenset()
    assert "survey.consent" not in _keys(root)


def test_unreadable_survey_files_count_for_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "flows" / "surveys"
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_text("flow: [unclosed\n", encoding="utf-8")
    (folder / "list.yaml").write_text("- flow: survey\n", encoding="utf-8")
    (folder / "noflow.yaml").write_text("channels: [voice]\n", encoding="utf-8")
    assert survey_flows(tmp_path / "flows") == frozenset()
    assert survey_flows(tmp_path / "nowhere") == frozenset()


def test_calls_run_the_incoming_call_flow_and_the_called_ones(bundle) -> None:  # type: ignore[no-untyped-def]
    flows = dict(bundle.flows)
    assert [f.id for f in call_flows(flows)] == ["demo"]  # its incoming_call trigger
    assert [f.id for f in call_flows(flows, {"survey"})] == ["demo", "survey"]
