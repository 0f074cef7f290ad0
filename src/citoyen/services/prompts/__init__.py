"""The voice prompt library: which prompts a deployment needs, the recordings it has, and how
they are made (upload, import, or by phone). See docs/voice-prompts.md."""

from citoyen.services.prompts.audio import Audio, AudioError, validate_upload
from citoyen.services.prompts.catalogue import PromptSpec, catalogue, text_hash
from citoyen.services.prompts.library import (
    ImportResult,
    PromptAudio,
    PromptError,
    PromptStatus,
    check_warnings,
    coverage,
    delete_prompt,
    import_dir,
    library_dir,
    prompt_file,
    store_audio,
    store_upload,
    summary,
)

__all__ = [
    "Audio",
    "AudioError",
    "ImportResult",
    "PromptAudio",
    "PromptError",
    "PromptSpec",
    "PromptStatus",
    "catalogue",
    "check_warnings",
    "coverage",
    "delete_prompt",
    "import_dir",
    "library_dir",
    "prompt_file",
    "store_audio",
    "store_upload",
    "summary",
    "text_hash",
    "validate_upload",
]
