"""Drawing a :class:`~citoyen.services.flowmap.FlowMap` as SVG, with a small layered layout.

Why our own layout: ``make run`` must need no system package (no Graphviz binary), and the one
pure-Python layered layout on PyPI (grandalf) is licensed GPL-2.0/EPL-1.0, which cannot be
combined with this AGPL-3.0 project. Flows are small (a few dozen nodes), so the classic
Sugiyama steps are enough: break loops (arrows back up are drawn apart, dashed), put each node
on the layer of its longest path from the start, add a waypoint on every layer a long arrow
crosses, then order each layer by the mean position of its neighbours, a few sweeps down and up.

The SVG uses presentation attributes only (no ``<style>``, no script), so it can be inlined in an
admin page under the Content-Security-Policy ``default-src 'self'`` and opened as a file alike.
"""

from __future__ import annotations

import itertools
import textwrap
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from citoyen.services.flowmap import FlowMap, MapNode, Translate, flow_map, headline, untranslated

NODE_WIDTH = 230
LINE_HEIGHT = 15
PADDING = 8
LAYER_GAP = 56
NODE_GAP = 36
WAYPOINT_WIDTH = 14
WRAP = 34
# Fill per node kind: questions (wait for the citizen) light blue, steps the flow takes alone grey,
# actions amber, ends green.
FILLS = {
    "choice": "#e3f0fb",
    "language": "#e3f0fb",
    "place": "#e3f0fb",
    "number": "#e3f0fb",
    "text": "#e3f0fb",
    "reference": "#e3f0fb",
    "phone": "#e3f0fb",
    "message": "#f3f3f3",
    "branch": "#fff4d6",
    "action": "#fde2c8",
    "end": "#dff3e0",
}


@dataclass
class _Box:
    name: str
    layer: int
    width: float
    height: float
    lines: list[tuple[str, bool]]  # (text, bold)
    kind: str = "waypoint"
    x: float = 0.0
    y: float = 0.0


def _box_lines(node: MapNode, headline: str | None) -> list[tuple[str, bool]]:
    lines = [(f"{node.name} · {node.kind}", True)]
    if headline:
        wrapped = textwrap.wrap(headline, WRAP)
        lines.extend((w, False) for w in wrapped[:3])
        if len(wrapped) > 3:
            lines[-1] = (lines[-1][0].rstrip() + " …", False)
    for line in node.lines:
        lines.extend((w, False) for w in textwrap.wrap(line, WRAP) or [""])
    return lines


def _back_edges(fmap: FlowMap) -> set[tuple[str, str]]:
    """Edges that close a loop, found by a depth-first walk from the start (then the rest)."""
    succ: dict[str, list[str]] = {n.name: [] for n in fmap.nodes}
    for e in fmap.edges:
        succ[e.source].append(e.target)
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    back: set[tuple[str, str]] = set()
    order = [fmap.start, *(n.name for n in fmap.nodes)]
    for root in order:
        if root in state or root not in succ:
            continue
        stack = [(root, iter(succ[root]))]
        state[root] = 1
        while stack:
            name, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[name] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((name, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    return back


def _layers(fmap: FlowMap, back: set[tuple[str, str]]) -> dict[str, int]:
    """Longest path from a source, over the edges that go forward."""
    forward = [(e.source, e.target) for e in fmap.edges if (e.source, e.target) not in back]
    indegree = {n.name: 0 for n in fmap.nodes}
    for _s, t in forward:
        indegree[t] += 1
    layer = {n.name: 0 for n in fmap.nodes}
    ready = [n.name for n in fmap.nodes if indegree[n.name] == 0]
    while ready:
        cur = ready.pop(0)
        for s, t in forward:
            if s == cur:
                layer[t] = max(layer[t], layer[s] + 1)
                indegree[t] -= 1
                if indegree[t] == 0:
                    ready.append(t)
    return layer


def layout(
    fmap: FlowMap, headlines: dict[str, str | None]
) -> tuple[list[_Box], list[list[str]], float, float]:
    """Boxes with positions, the polyline (box names) of each edge, and the drawing's size."""
    back = _back_edges(fmap)
    layer = _layers(fmap, back)
    boxes: dict[str, _Box] = {}
    for node in fmap.nodes:
        lines = _box_lines(node, headlines.get(node.name))
        height = PADDING * 2 + LINE_HEIGHT * len(lines)
        boxes[node.name] = _Box(node.name, layer[node.name], NODE_WIDTH, height, lines, node.kind)
    paths: list[list[str]] = []
    for i, e in enumerate(fmap.edges):
        if (e.source, e.target) in back:
            paths.append([e.source, e.target])
            continue
        path = [e.source]
        for k in range(layer[e.source] + 1, layer[e.target]):
            point = f"~{i}~{k}"
            boxes[point] = _Box(point, k, WAYPOINT_WIDTH, LINE_HEIGHT, [])
            path.append(point)
        path.append(e.target)
        paths.append(path)
    depth = max((b.layer for b in boxes.values()), default=0) + 1
    rows: list[list[str]] = [[] for _ in range(depth)]
    for name, box in boxes.items():
        rows[box.layer].append(name)
    _order(rows, paths, back, fmap)
    return _place(rows, boxes, paths)


def _order(
    rows: list[list[str]], paths: list[list[str]], back: set[tuple[str, str]], fmap: FlowMap
) -> None:
    """Barycentre sweeps: each layer sorted by the mean position of its neighbours."""
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for path in paths:
        if (path[0], path[-1]) in back and len(path) == 2:
            continue
        for a, b in itertools.pairwise(path):
            down.setdefault(a, []).append(b)
            up.setdefault(b, []).append(a)
    for _sweep in range(4):
        for neighbours, layers in ((up, range(1, len(rows))), (down, range(len(rows) - 2, -1, -1))):
            for i in layers:
                ref = rows[i - 1] if neighbours is up else rows[i + 1]
                pos = {name: k for k, name in enumerate(ref)}

                here = {name: k for k, name in enumerate(rows[i])}

                def key(
                    name: str,
                    here: dict[str, int] = here,
                    pos: dict[str, int] = pos,
                    links: dict[str, list[str]] = neighbours,
                ) -> float:
                    linked = [pos[n] for n in links.get(name, []) if n in pos]
                    return sum(linked) / len(linked) if linked else here[name]

                rows[i].sort(key=key)


def _place(
    rows: list[list[str]], boxes: dict[str, _Box], paths: list[list[str]]
) -> tuple[list[_Box], list[list[str]], float, float]:
    widths = [sum(boxes[n].width for n in row) + NODE_GAP * (len(row) - 1) for row in rows]
    total = max(widths, default=NODE_WIDTH) + 2 * NODE_GAP + 40  # room for loops on the right
    y = 20.0
    for row, width in zip(rows, widths, strict=True):
        x = (total - 40 - width) / 2
        height = max((boxes[n].height for n in row), default=LINE_HEIGHT)
        for name in row:
            box = boxes[name]
            box.x, box.y = x, y + (height - box.height) / 2
            x += box.width + NODE_GAP
        y += height + LAYER_GAP
    return list(boxes.values()), paths, total, y - LAYER_GAP + 20


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def to_svg(fmap: FlowMap, headlines: dict[str, str | None] | None = None, title: str = "") -> str:
    """The diagram as a standalone SVG document (also inlined by the admin page)."""
    boxes, paths, width, height = layout(fmap, headlines or {})
    by_name = {b.name: b for b in boxes}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow-diagram" role="img" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" height="{height:.0f}" '
        f'font-family="sans-serif" font-size="12" data-flow="{_attr(fmap.flow_id)}">',
        f"<title>{escape(title or fmap.flow_id)}</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#555"/></marker></defs>',
    ]
    for edge, path in zip(fmap.edges, paths, strict=True):
        out.append(_edge_svg(edge.label, [by_name[n] for n in path], width))
    for box in boxes:
        if box.kind != "waypoint":
            out.append(_box_svg(box, fmap.start == box.name))
    out.append("</svg>")
    return "\n".join(out)


def _edge_svg(label: str, path: list[_Box], width: float) -> str:
    first, last = path[0], path[-1]
    if len(path) == 2 and last.y <= first.y:  # a loop back up: around the right side, dashed
        x1, y1 = first.x + first.width, first.y + first.height / 2
        x2, y2 = last.x + last.width, last.y + last.height / 2
        bend = width - 15
        d = f"M{x1:.0f},{y1:.0f} C{bend:.0f},{y1:.0f} {bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"
        text_at = (bend - 4, (y1 + y2) / 2)
        dash = ' stroke-dasharray="5,4"'
        anchor = "end"
    else:
        points = [(first.x + first.width / 2, first.y + first.height)]
        points += [(b.x + b.width / 2, b.y + b.height / 2) for b in path[1:-1]]
        points.append((last.x + last.width / 2, last.y))
        d = f"M{points[0][0]:.0f},{points[0][1]:.0f}"
        for (xa, ya), (xb, yb) in itertools.pairwise(points):
            mid = (ya + yb) / 2
            d += f" C{xa:.0f},{mid:.0f} {xb:.0f},{mid:.0f} {xb:.0f},{yb:.0f}"
        (xa, ya), (xb, yb) = points[0], points[1]
        # The label beside the arrow's first stretch, on the side it leaves to.
        anchor = "end" if xb < xa - 1 else "start"
        shift = -6 if anchor == "end" else 6
        text_at = (xa + (xb - xa) * 0.5 + shift, ya + (yb - ya) * 0.45)
        dash = ""
    parts = [
        f'<g class="edge"><path d="{d}" fill="none" stroke="#555" stroke-width="1.2"{dash} '
        'marker-end="url(#arrow)"/>'
    ]
    if label:
        parts.append(
            f'<text x="{text_at[0]:.0f}" y="{text_at[1]:.0f}" text-anchor="{anchor}" '
            f'font-size="11" fill="#333">{escape(label)}</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def _box_svg(box: _Box, is_start: bool) -> str:
    radius = 18 if box.kind == "end" else 4
    stroke = ' stroke-width="2.5"' if is_start else ' stroke-width="1"'
    parts = [
        f'<g class="node" id="node-{_attr(box.name)}" data-node="{_attr(box.name)}" '
        f'data-kind="{box.kind}">',
        f'<rect x="{box.x:.0f}" y="{box.y:.0f}" width="{box.width:.0f}" height="{box.height:.0f}" '
        f'rx="{radius}" fill="{FILLS.get(box.kind, "#fff")}" stroke="#444"{stroke}/>',
    ]
    for i, (line, bold) in enumerate(box.lines):
        y = box.y + PADDING + LINE_HEIGHT * (i + 1) - 3
        weight = ' font-weight="bold"' if bold else ""
        parts.append(f'<text x="{box.x + PADDING:.0f}" y="{y:.0f}"{weight}>{escape(line)}</text>')
    parts.append("</g>")
    return "".join(parts)


def diagram_svg(bundle: Any, flow_id: str, lang: str, _: Translate = untranslated) -> str:
    """The SVG diagram of one flow, its boxes quoting the texts in ``lang``."""
    fmap = flow_map(bundle, flow_id, _)
    headlines = {n.name: headline(n, bundle.catalog, lang) for n in fmap.nodes}
    return to_svg(fmap, headlines)
