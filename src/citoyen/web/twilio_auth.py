"""Twilio webhook signatures, checked once here for every Twilio route (SMS, voice, status).

Twilio signs each webhook with the account's auth token over the URL it called plus the POSTed
form. The service runs behind a TLS proxy, so ``request.url`` is not what Twilio called: the URL
is rebuilt from ``CITOYEN_PUBLIC_URL`` + the request's path and query string. A request that
fails the check gets 403 before the view runs, so nothing is stored (DESIGN.md section 3).

The signature covers names and values run together without separators, so a captured request
can be re-split into another that bears the same signature (``NumMedia0`` moved to the end of
``MessageSid``, ``NumMedia`` removed): a new message id that passes dedupe. Every provider id in
a signed request is therefore checked against Twilio's own format (two letters and 32 hex
digits, see :data:`PROVIDER_IDS`) and a request with one malformed gets 400 before the view.

Usage::

    from citoyen.web.twilio_auth import require_twilio_signature

    @bp.post("/twilio/voice")
    @require_twilio_signature
    def voice(): ...
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Request, Response, abort, current_app, request
from twilio.request_validator import RequestValidator

try:  # newer twilio releases name the algorithm (HMAC_SHA1 / HMAC_SHA256) in a header
    from twilio.request_validator import get_signature_algorithm
except ImportError:  # pragma: no cover - older twilio: always HMAC-SHA1, no algorithm argument
    get_signature_algorithm = None  # type: ignore[assignment]


log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"

F = TypeVar("F", bound=Callable[..., Any])

# Twilio's ids: a two-letter type prefix and 32 hex digits (Twilio's "SID" documentation).
PROVIDER_IDS: dict[str, re.Pattern[str]] = {
    "AccountSid": re.compile(r"AC[0-9a-fA-F]{32}"),
    "MessageSid": re.compile(r"(SM|MM)[0-9a-fA-F]{32}"),
    "SmsSid": re.compile(r"(SM|MM)[0-9a-fA-F]{32}"),
    "SmsMessageSid": re.compile(r"(SM|MM)[0-9a-fA-F]{32}"),
    "MessagingServiceSid": re.compile(r"MG[0-9a-fA-F]{32}"),
    "CallSid": re.compile(r"CA[0-9a-fA-F]{32}"),
    "ParentCallSid": re.compile(r"CA[0-9a-fA-F]{32}"),
    "RecordingSid": re.compile(r"RE[0-9a-fA-F]{32}"),
}


def malformed_provider_id(form: Any) -> str | None:
    """Why a provider id in ``form`` is refused (given twice, or not in Twilio's format), else
    None. Absent or empty ids are the views' business: not every webhook has each, and each
    view says "missing" for its own."""
    for name, pattern in PROVIDER_IDS.items():
        values = form.getlist(name)
        if len(values) > 1:
            return f"{name} given more than once"
        if values and values[0].strip() and not pattern.fullmatch(values[0]):
            return f"{name} is not a Twilio id"
    return None


def signed_url(public_url: str, req: Request) -> str:
    """The URL Twilio called: public base URL + path + query string (no dangling "?")."""
    full_path = req.full_path
    if full_path.endswith("?"):
        full_path = full_path[:-1]
    return public_url.rstrip("/") + full_path


def twilio_signature_valid(req: Request, auth_token: str | None, public_url: str) -> bool:
    """True when ``req`` carries a valid Twilio signature for ``public_url``.

    Returns False on a missing token, header or a mismatch, so callers can answer 403 uniformly;
    the only exception let through is werkzeug's 413 for a body over ``MAX_CONTENT_LENGTH``.
    The form is read as a multi-dict so repeated keys are checked as Twilio signs them.
    """
    if not auth_token:
        return False
    signature = req.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        return False
    validator = RequestValidator(auth_token)
    form = req.form  # outside the try: a body over MAX_CONTENT_LENGTH must stay a 413
    url = signed_url(public_url, req)
    try:
        if get_signature_algorithm is None:  # pragma: no cover - older twilio
            return bool(validator.validate(url, form, signature))
        algorithm = get_signature_algorithm(req.headers.get(SIGNATURE_SETTINGS_HEADER))
        return bool(validator.validate(url, form, signature, algorithm))
    except Exception:  # a malformed form or header must be a 403, never a 500
        log.warning("twilio signature check raised", exc_info=True)
        return False


def _refuse(reason: str) -> None:
    # The log line names the path and the reason only: never From/To or any form value.
    log.warning("twilio webhook refused (403): %s on %s", reason, request.path)
    abort(403)


def require_twilio_signature(view: F) -> F:
    """Decorator: 403 unless the request is signed by Twilio for this deployment's public URL.

    With no ``TWILIO_AUTH_TOKEN`` configured nothing can be verified, so every request is
    refused (and the reason logged) rather than trusted.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        settings = current_app.extensions["citoyen"].settings
        token = settings.twilio_auth_token
        if not token:
            _refuse("TWILIO_AUTH_TOKEN is not configured, cannot verify signatures")
        elif not request.headers.get(SIGNATURE_HEADER):
            _refuse("missing X-Twilio-Signature")
        elif not twilio_signature_valid(request, token, settings.public_url):
            _refuse("invalid X-Twilio-Signature")
        malformed = malformed_provider_id(request.form)
        if malformed is not None:
            # The reason names the field only: a value is whatever the sender typed.
            log.warning("twilio webhook refused (400): %s on %s", malformed, request.path)
            return Response(malformed, status=400, mimetype="text/plain")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


twilio_signed = require_twilio_signature
