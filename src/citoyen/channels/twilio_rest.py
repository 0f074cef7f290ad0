"""Twilio's REST API for the services: downloading call recordings and placing outbound calls.

Both keep a protocol of :mod:`citoyen.channels.base` (:class:`~citoyen.channels.base.MediaFetcher`,
:class:`~citoyen.channels.base.CallPlacer`); the runtime builds them from the deployment's
credentials and the services receive them without knowing they talk to Twilio.
"""

from __future__ import annotations

import re
from typing import Any, BinaryIO

import requests

from citoyen.channels.base import (
    MAX_MEDIA_BYTES,
    PermanentFetchError,
    TransientFetchError,
    TransientSendError,
    copy_limited,
)

TWILIO_API = "https://api.twilio.com"
RECORDING_SID = re.compile(r"RE[0-9a-fA-F]{32}")
MESSAGE_MEDIA = re.compile(r"(?:MM|SM)[0-9a-fA-F]{32}/ME[0-9a-fA-F]{32}")
CHUNK = 64 * 1024


class TwilioRecordingFetcher:
    """Downloads a call recording as WAV with the account's credentials (HTTP basic auth).

    The URL is built from the account and the RecordingSid, never taken from a request, so
    the credentials only ever go to Twilio's API (``api_base`` is for tests).
    """

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        api_base: str = TWILIO_API,
        timeout: float = 30.0,
        max_bytes: int = MAX_MEDIA_BYTES,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout
        self.max_bytes = max_bytes

    # What provider_ref must look like (the URL is built from it and the account).
    ref_pattern = RECORDING_SID
    ref_name = "a Twilio RecordingSid"

    def url(self, recording_sid: str) -> str:
        return (
            f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Recordings/{recording_sid}.wav"
        )

    def fetch(self, attachment: Any, dest: BinaryIO) -> str | None:
        sid = attachment.provider_ref
        if not self.ref_pattern.fullmatch(sid or ""):
            raise PermanentFetchError(f"provider_ref is not {self.ref_name}")
        try:
            with requests.get(
                self.url(sid),
                auth=(self.account_sid, self.auth_token),
                stream=True,
                timeout=self.timeout,
            ) as response:
                code = response.status_code
                if code in (401, 403):
                    # Usually a configuration mistake that gets fixed: keep trying for a while.
                    raise TransientFetchError(
                        f"HTTP {code} from Twilio: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
                    )
                if code in (404, 408, 429) or code >= 500:
                    # 404 too: a recording is not downloadable until Twilio has processed it.
                    raise TransientFetchError(f"HTTP {code} from Twilio")
                if code >= 400:
                    raise PermanentFetchError(f"HTTP {code} from Twilio")
                copy_limited(response.iter_content(CHUNK), dest, self.max_bytes)
                return response.headers.get("Content-Type")
        except requests.RequestException as exc:
            raise TransientFetchError(f"network error: {type(exc).__name__}") from None


class TwilioMessageMediaFetcher(TwilioRecordingFetcher):
    """Downloads a WhatsApp voice note or photo (``provider_ref`` ``MM…/ME…``, kept by
    web/twilio_whatsapp.py) from the message's media list, with the account's credentials."""

    ref_pattern = MESSAGE_MEDIA
    ref_name = "a Twilio MessageSid/MediaSid"

    def url(self, recording_sid: str) -> str:
        message, media = recording_sid.split("/")
        return (
            f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}"
            f"/Messages/{message}/Media/{media}"
        )


class TwilioCallPlacer:
    """Twilio's Calls API with status callbacks for every state we act on."""

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_number: str,
        *,
        http_client: Any | None = None,
        timeout: float = 20.0,
        api_url: str | None = None,
    ) -> None:
        from twilio.rest import Client

        from citoyen.channels.sms import twilio_http_client

        if http_client is None:
            # Quiet, and at CITOYEN_TWILIO_API_URL when set, like the SMS client.
            http_client = twilio_http_client(api_url, timeout=timeout)
        self.client = Client(account_sid, auth_token, http_client=http_client)
        self.from_number = from_number

    def create(
        self, to: str, url: str, status_callback: str, *, machine_detection: bool = False
    ) -> str:
        """Place the call. ``machine_detection``: Twilio's answering machine detection,
        synchronous, in its ``Enable`` mode: the answer request (``url``) waits until Twilio
        has heard who picked up and carries ``AnsweredBy`` (``human``, ``machine_start``,
        ``fax`` or ``unknown``); docs/voice.md, "Answering machines"."""
        from twilio.base.exceptions import TwilioException, TwilioRestException

        from citoyen.channels.sms import map_twilio_error

        amd: dict[str, Any] = {"machine_detection": "Enable"} if machine_detection else {}
        try:
            call = self.client.calls.create(
                to=to,
                from_=self.from_number,
                url=url,
                method="POST",
                status_callback=status_callback,
                status_callback_method="POST",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                timeout=30,  # seconds of ringing before no-answer
                **amd,
            )
        except TwilioRestException as exc:
            raise map_twilio_error(exc) from None
        except TwilioException as exc:
            raise TransientSendError(f"twilio: {type(exc).__name__}") from None
        except OSError as exc:
            raise TransientSendError(f"twilio unreachable: {type(exc).__name__}") from None
        return str(call.sid)
