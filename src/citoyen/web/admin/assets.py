"""Scripts of the admin's pages, served gzip-compressed with a long cache.

Staff often work on slow mobile connections: the vendored chart library (about 205 KB) travels
as about 70 KB compressed, once, then stays cached for a year (its URL changes with its
content). Compressed copies are made once per process and kept in memory.
"""

from __future__ import annotations

import gzip
import hashlib
from functools import lru_cache
from pathlib import Path

from flask import Response, abort, current_app, request, url_for
from flask_login import login_required
from werkzeug.security import safe_join

from citoyen.web.admin import bp

ALLOWED = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
YEAR = 365 * 24 * 3600


@lru_cache(maxsize=32)
def _load(path: str) -> tuple[bytes, bytes, str]:
    raw = Path(path).read_bytes()
    return raw, gzip.compress(raw, compresslevel=9, mtime=0), hashlib.sha256(raw).hexdigest()[:12]


def _path(name: str) -> str | None:
    joined = safe_join(current_app.static_folder or "", name)
    if joined is None or Path(joined).suffix not in ALLOWED or not Path(joined).is_file():
        return None
    return joined


def asset_url(name: str) -> str:
    """URL of a static script with its content hash, for templates."""
    path = _path(name)
    if path is None:
        raise FileNotFoundError(name)
    return url_for("admin.asset", name=name, v=_load(path)[2])


@bp.get("/assets/<path:name>")
@login_required
def asset(name: str) -> Response:
    path = _path(name)
    if path is None:
        abort(404)
    raw, packed, digest = _load(path)
    gzipped = "gzip" in (request.headers.get("Accept-Encoding") or "")
    response = Response(
        packed if gzipped else raw, mimetype=ALLOWED[Path(path).suffix].split(";")[0]
    )
    response.headers["Content-Type"] = ALLOWED[Path(path).suffix]
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["ETag"] = f'"{digest}"'
    response.headers["Cache-Control"] = f"private, max-age={YEAR}, immutable"
    return response
