"""Where a deployment's files are: flows in the flows folder, configuration in its own folder.

The flows folder (``CITOYEN_FLOWS_DIR``, ``flows/``) holds conversation flows (``*.yaml``) and
survey definitions (``surveys/``), nothing else. The configuration folder (``CITOYEN_CONFIG_DIR``,
by default ``config/`` beside the flows folder) holds what configures the service around them:
``settings.yaml``, ``stakeholders.yaml``, ``routing.yaml`` and ``whatsapp/templates.yaml``.
Authors then find each kind of file in one obvious place, and the flow loader reads every YAML
file of its folder as a flow instead of skipping a list of names.

The layout before kept those files in the flows folder. For one release such a file is still read
from there, with a warning that names it and its new place; ``citoyen flows migrate-layout``
moves them. A file found in both places is an error: which one the author edits last cannot be
guessed, and reading the wrong one would silently undo their change.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from citoyen.engine.problems import Problem

CONFIG_DIR_NAME = "config"
# Survey definitions, in the flows folder (citoyen.services.surveys.definitions).
SURVEYS_DIR = "surveys"
SETTINGS_FILE = "settings.yaml"
STAKEHOLDERS_FILE = "stakeholders.yaml"
ROUTING_FILE = "routing.yaml"
WHATSAPP_TEMPLATES_FILE = "whatsapp/templates.yaml"
# Every configuration file, relative to the configuration folder.
CONFIG_FILES = (SETTINGS_FILE, STAKEHOLDERS_FILE, ROUTING_FILE, WHATSAPP_TEMPLATES_FILE)
# Names the flow loader still leaves alone in the flows folder while the layout before is read.
LEGACY_NAMES = frozenset(name for name in CONFIG_FILES if "/" not in name)
MIGRATE_COMMAND = "citoyen flows migrate-layout"


def default_config_dir(flows_dir: Path) -> Path:
    """``config/`` beside the flows folder: a deployment with its own flows folder gets its own
    configuration folder next to it, never the project's shipped sample."""
    return Path(flows_dir).parent / CONFIG_DIR_NAME


@dataclass(frozen=True)
class ConfigFile:
    """Where one configuration file is read from, as messages name it, and what is off."""

    path: Path  # the file to read; it may not exist
    file: str  # how problems name it: "config/settings.yaml"
    problems: tuple[Problem, ...] = ()

    @property
    def legacy(self) -> bool:
        """Read from the flows folder (the layout before)."""
        return any(p.level == "warning" for p in self.problems)


@dataclass(frozen=True)
class Move:
    """One file ``migrate`` moved, or would move (``done`` False with a reason)."""

    source: Path
    target: Path
    done: bool
    reason: str = ""


@dataclass(frozen=True)
class Layout:
    """A deployment's flows folder and configuration folder."""

    flows_dir: Path
    config_dir: Path

    @classmethod
    def of(cls, flows_dir: Path, config_dir: Path | None = None) -> Layout:
        """The layout for these folders; no ``config_dir``: :func:`default_config_dir`."""
        flows = Path(flows_dir)
        return cls(flows, Path(config_dir) if config_dir is not None else default_config_dir(flows))

    def config_file(self, name: str) -> ConfigFile:
        """Where configuration file ``name`` (one of :data:`CONFIG_FILES`) is read from."""
        new, old = self.config_dir / name, self.flows_dir / name
        new_label = f"{self.config_dir.name}/{name}"
        if _same(new, old) or not old.is_file():
            return ConfigFile(new, new_label)
        old_label = f"{self.flows_dir.name}/{name}"
        if new.is_file():
            message = f"also in {new}, which is the one read: delete one of the two"
            return ConfigFile(new, new_label, (Problem("error", old_label, None, None, message),))
        message = (
            f"configuration in the flows folder is read for one more release only: "
            f"move it to {new} (`{MIGRATE_COMMAND}` does)"
        )
        return ConfigFile(old, old_label, (Problem("warning", old_label, None, None, message),))

    def problems(self) -> list[Problem]:
        """Every configuration file still in the flows folder (warning) or in both (error)."""
        return [p for name in CONFIG_FILES for p in self.config_file(name).problems]

    def migrate(self, *, dry_run: bool = False) -> list[Move]:
        """Move every configuration file out of the flows folder into the configuration folder.

        A file already in the configuration folder is left in both places (``done`` False): the
        author chooses which copy to keep, the move never overwrites one.
        """
        moves = []
        for name in CONFIG_FILES:
            source, target = self.flows_dir / name, self.config_dir / name
            if _same(source, target) or not source.is_file():
                continue
            if target.exists():
                moves.append(Move(source, target, False, f"{target} exists already"))
                continue
            if not dry_run:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(source, target)
                if source.parent != self.flows_dir and not any(source.parent.iterdir()):
                    source.parent.rmdir()  # flows/whatsapp/ once its templates left
            moves.append(Move(source, target, not dry_run))
        return moves


def _same(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()
