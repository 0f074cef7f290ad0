"""The Flask application: provider webhooks, the moderators' admin, health check.

``create_app()`` is what gunicorn serves (``citoyen.web:create_app()``). Web workers never
schedule anything: the scheduler lives in the worker process only.
"""

from __future__ import annotations

import gc
from datetime import timedelta
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from citoyen.config import get_settings
from citoyen.runtime import Runtime


def create_app(test_config: dict[str, Any] | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the app; ``test_config`` may carry ``SETTINGS`` (a Settings) and Flask options."""
    from citoyen import logredact

    logredact.install()  # gunicorn serves this: no phone number or Telegram id in any log
    test_config = dict(test_config or {})
    if runtime is None:
        settings = test_config.pop("SETTINGS", None) or get_settings()
        runtime = Runtime(settings)
    app = Flask(__name__)
    from citoyen.web.admin.prompts import UploadAwareRequest

    app.request_class = UploadAwareRequest  # prompt uploads only may exceed the 1 MB limit
    app.config.update(
        SECRET_KEY=runtime.settings.effective_secret_key(),
        MAX_CONTENT_LENGTH=1024 * 1024,  # webhooks and forms are small; refuse big bodies early
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=runtime.settings.public_url.startswith("https://"),
        # Staff sessions end after this however active (web/admin/sessions.py checks it too).
        PERMANENT_SESSION_LIFETIME=timedelta(hours=runtime.settings.session_hours),
    )
    app.config.update(test_config)
    app.extensions["citoyen"] = runtime
    if runtime.settings.trusted_proxies:
        # Behind N reverse proxies the client's address and scheme are what the Nth proxy from
        # the app saw: sign-in throttling counts per real client, not per proxy.
        n = runtime.settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n)  # type: ignore[method-assign]
    _ = runtime.router  # validate routing at start; reports made here are routed with it

    from citoyen.web import (
        admin,
        health,
        metrics,
        public,
        sms_gateway,
        telegram_webhook,
        twilio_prompts,
        twilio_sms,
        twilio_voice,
    )

    modules = (
        health,
        metrics,
        admin,
        twilio_sms,
        twilio_voice,
        twilio_prompts,
        telegram_webhook,
        sms_gateway,
    )
    for module in modules:
        module.init_app(app)
    public.init_app(app)  # last: it takes `/` only if nothing else did

    https = runtime.settings.public_url.startswith("https://")

    @app.after_request
    def security_headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault(
            "Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"
        )
        if https:
            # Browsers that saw the service over https never try plain http for a year.
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    _settle_heap()
    return app


_heap_settled = False


def _settle_heap() -> None:
    """Move what the app was built from out of the garbage collector's sight, once per process.

    The flows, texts, routing rules, ORM mappings and imported modules are some 180,000 objects
    that live as long as the process. Python's oldest-generation collection walked all of them
    every few thousand requests, and a webhook waited meanwhile. ``gc.freeze()`` after a collection
    keeps them out of every later collection; objects freed later are still freed by their
    reference counts. Once per process: a test run builds many apps, and only the first one's
    objects are kept out.
    """
    global _heap_settled
    if _heap_settled:
        return
    _heap_settled = True
    gc.collect()
    gc.freeze()


def runtime_of(app: Flask) -> Runtime:
    return app.extensions["citoyen"]
