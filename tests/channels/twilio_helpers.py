"""Signed Twilio requests for tests, made with the twilio library's own validator."""

from __future__ import annotations

from collections.abc import Mapping

from flask.testing import FlaskClient
from twilio.request_validator import RequestValidator

PUBLIC_URL = "https://citoyen.example.ml"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"


def sign(url: str, params: Mapping[str, str], token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, dict(params))


def signed_post(
    client: FlaskClient,
    path: str,
    params: Mapping[str, str],
    *,
    token: str = AUTH_TOKEN,
    public_url: str = PUBLIC_URL,
    signature: str | None = None,
):
    """POST form ``params`` to ``path`` as Twilio would, signed for ``public_url + path``."""
    url = public_url + path
    headers = {
        "X-Twilio-Signature": signature if signature is not None else sign(url, params, token)
    }
    return client.post(path, data=dict(params), headers=headers)
