"""Pure engine throughput: steps per second on one core (target: >= 20,000/s).

Runs complete `report` conversations (language, category, place through region > cercle >
commune, danger, description, anonymity, consent) against the shipped flows and the shipped area
tree, with no database: only `engine.start` / `engine.step`, plus the JSON round trip of the state
that the service does on every message.

    .venv/bin/python bench/engine_steps.py [--seconds 5] [--no-round-trip]

``--no-round-trip`` leaves the JSON round trip out, to see the engine's own share.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from sqlmodel import Session

from citoyen import db
from citoyen.engine import load_bundle, start, step
from citoyen.engine.types import Context, Input, State
from citoyen.services.areas.menus import load_area_context
from citoyen.services.areas.seeding import seed_shipped_areas

ROOT = Path(__file__).resolve().parents[1]


def area_context(tmp: Path) -> tuple[dict, tuple]:
    url = f"sqlite:///{tmp / 'bench.db'}"
    db.upgrade(url)
    with Session(db.get_engine(url)) as session:
        seed_shipped_areas(session)
        session.commit()
        return load_area_context(session)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--no-round-trip", action="store_true", help="engine.step only")
    args = parser.parse_args()

    import tempfile

    bundle = load_bundle(ROOT / "flows", ROOT / "locales")
    flow = bundle.flows["report"]
    with tempfile.TemporaryDirectory() as tmp:
        areas, roots = area_context(Path(tmp))
    settings = bundle.settings
    ctx = Context(
        languages=tuple(settings.languages.enabled),
        default_language=settings.languages.default,
        keywords={k: tuple(v) for k, v in settings.keywords.items()},
        areas=areas,
        area_roots=roots,
        menu_size=9,
    )
    script = [
        Input("digits", "1"),  # French
        Input("digits", "2"),  # theft
        Input("digits", "3"),  # a region
        Input("digits", "1"),  # its first cercle
        Input("digits", "1"),  # its first commune
        Input("digits", "2"),  # nobody in danger
        Input("text", "Deux motos volées devant le marché hier soir vers 21 h"),
        Input("digits", "1"),  # anonymous
        Input("digits", "2"),  # no surveys
    ]
    steps = conversations = 0
    deadline = time.perf_counter() + args.seconds
    began = time.perf_counter()
    cpu_began = time.process_time()
    while time.perf_counter() < deadline:
        result = start(flow, ctx)
        state = result.state
        for inp in script:
            result = step(flow, state, inp, ctx)
            # What the service does on every message: the state goes to JSON and back.
            if args.no_round_trip:
                state = result.state
            else:
                state = State.from_dict(json.loads(json.dumps(result.state.to_dict())))
            steps += 1
        assert result.state.status == "completed", result.state
        conversations += 1
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"{conversations} conversations, {steps} steps in {wall:.2f} s wall / {cpu:.2f} s CPU")
    what = "engine.step only, no JSON round trip" if args.no_round_trip else "target >= 20,000"
    print(f"{steps / cpu:,.0f} steps/s per core ({what})")


if __name__ == "__main__":
    main()
