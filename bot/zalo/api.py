"""A small async client for the Zalo Bot Platform HTTP API (``{api_url}/bot{token}/{method}``).

The platform is modelled on Telegram's Bot API: every answer is an envelope ``{"ok": true, "result": ...}``
(``sendChatAction`` answers ``{"ok": true}`` alone) or ``{"ok": false, "error_code": ..., "description": ...}``.
This module turns the error envelope into exceptions, retries what is worth retrying with exponential
backoff through an injectable ``sleep`` (tests never wait), and keeps the token out of every log line and
exception message: URLs are logged as ``.../bot***/method``.

Documented error codes (Zalo Bot Platform): 400 bad request or unknown method, 401 token, **403 internal
server error** (not "blocked", unlike Telegram), 404 invalid access, 408 poll timeout, 429 quota exceeded.
Retried: 403, 429, 5xx, timeouts, dropped connections. A 429 is backed off exponentially (from
``rate_backoff``): the platform documents no ``retry_after``; an HTTP ``Retry-After`` header is honoured when
one comes, but never needed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://bot-api.zaloplatforms.com"
Sleep = Callable[[float], Awaitable[None]]

# Error codes the platform answers with that a later attempt may not get.
INTERNAL_ERROR = 403  # documented as "Internal server error" on this platform
RATE_LIMITED = 429  # "quota exceeded"
NO_UPDATE = 408  # getUpdates: the long poll ended without a message


class ZaloApiError(Exception):
    """The platform refused a call or could not be reached. Never carries the token."""

    def __init__(
        self, method: str, *, error_code: int | None, description: str, retry_after: float | None = None
    ) -> None:
        self.method = method
        self.error_code = error_code
        self.description = description
        self.retry_after = retry_after
        code = f" {error_code}" if error_code is not None else ""
        super().__init__(f"zalo {method}{code}: {description}")


class ZaloTransientError(ZaloApiError):
    """Rate limit, server error (403, 5xx), timeout or network failure that outlasted the retries: try again
    later."""


class ZaloRequestError(ZaloApiError):
    """The platform rejected the request itself (4xx): repeating it unchanged will not help."""


class ZaloUnauthorized(ZaloRequestError):
    """The bot token is wrong or revoked."""


class ZaloWebhookActive(ZaloRequestError):
    """``getUpdates`` is refused because a webhook is set for this bot: polling cannot work until
    ``deleteWebhook`` is called. ``url`` is the webhook's address."""

    def __init__(self, method: str, *, error_code: int | None, url: str) -> None:
        super().__init__(method, error_code=error_code, description=f"a webhook is set ({url})")
        self.url = url


def _transient_code(code: int | None) -> bool:
    return code is not None and (code in (INTERNAL_ERROR, RATE_LIMITED) or 500 <= code <= 599)


class ZaloApi:
    """One bot's API. ``client`` may be shared; the ones this class makes itself it also closes."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str = DEFAULT_API_URL,
        client: httpx.AsyncClient | None = None,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 15.0,
        rate_backoff: float = 2.0,
        max_retry_after: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not token:
            raise ValueError("Zalo bot token is empty")
        self._token = token
        self.api_url = api_url.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(connect=10.0, read=30.0, write=30.0, pool=10.0)
        )
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.rate_backoff = rate_backoff  # first pause after a 429 (quota exceeded): longer than for a fault
        # A rate limit asking for a longer pause than this is handed to the caller (RetryLater) instead of
        # holding a reply or a reminder sweep hostage.
        self.max_retry_after = max_retry_after
        self._sleep = sleep

    @property
    def client(self) -> httpx.AsyncClient:
        return self._client

    def masked_url(self, method: str) -> str:
        return f"{self.api_url}/bot***/{method}"

    def _clean(self, text: str) -> str:
        return text.replace(self._token, "***")

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def __aenter__(self) -> ZaloApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the one request path ---------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        read_timeout: float | None = None,
        retries: int | None = None,
    ) -> Any:
        """POST ``params`` as JSON; the envelope's ``result``, or a ``ZaloApiError``."""
        attempts = 1 + (self.max_retries if retries is None else retries)
        last: ZaloApiError | None = None
        for attempt in range(attempts):
            try:
                return await self._once(method, params or {}, read_timeout)
            except ZaloTransientError as exc:
                last = exc
                if attempt == attempts - 1:
                    break
                if exc.retry_after is not None and exc.retry_after > self.max_retry_after:
                    break  # a long pause is the caller's decision (the outbox retries later)
                base = self.rate_backoff if exc.error_code == RATE_LIMITED else self.backoff
                wait = min(self.max_backoff, base * (2**attempt))
                if exc.retry_after is not None:
                    wait = max(wait, exc.retry_after)
                log.warning(
                    "zalo %s failed (%s), retry %d/%d in %.1fs",
                    self.masked_url(method),
                    exc.description,
                    attempt + 1,
                    attempts - 1,
                    wait,
                )
                await self._sleep(wait)
        assert last is not None
        raise last

    async def _once(self, method: str, params: dict[str, Any], read_timeout: float | None) -> Any:
        url = f"{self.api_url}/bot{self._token}/{method}"
        timeout = None
        if read_timeout is not None:
            timeout = httpx.Timeout(connect=10.0, read=read_timeout, write=30.0, pool=10.0)
        started = time.perf_counter()
        try:
            kwargs: dict[str, Any] = {"json": params}
            if timeout is not None:
                kwargs["timeout"] = timeout
            response = await self._client.post(url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ZaloTransientError(method, error_code=None, description=f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ZaloTransientError(
                method, error_code=None, description=self._clean(f"network error ({type(exc).__name__}: {exc})")
            ) from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "ok" not in body:
            code = response.status_code
            desc = f"HTTP {code} without an API envelope"
            if _transient_code(code):
                raise ZaloTransientError(
                    method, error_code=code, description=desc, retry_after=_retry_after_header(response)
                )
            raise (ZaloUnauthorized if code == 401 else ZaloRequestError)(method, error_code=code, description=desc)
        if body.get("ok") is True:
            log.debug("zalo %s ok (%.0f ms)", self.masked_url(method), elapsed_ms)
            return body.get("result")
        code = body.get("error_code")
        code = int(code) if isinstance(code, (int, str)) and str(code).lstrip("-").isdigit() else response.status_code
        desc = self._clean(str(body.get("description") or "unknown error"))
        # No ``parameters.retry_after`` here: a Telegram convention the Zalo platform does not document.
        retry_after = _retry_after_header(response)
        if _transient_code(code) or _transient_code(response.status_code):
            raise ZaloTransientError(method, error_code=code, description=desc, retry_after=retry_after)
        if code == 401:
            raise ZaloUnauthorized(method, error_code=code, description=desc)
        raise ZaloRequestError(method, error_code=code, description=desc)

    # --- methods ----------------------------------------------------------------------------------------

    async def get_me(self) -> dict[str, Any]:
        return await self.call("getMe")

    async def get_updates(self, *, timeout: int = 30) -> list[dict[str, Any]]:
        """One long poll. The platform hands out one update per call and forgets it: there is no offset.

        An empty poll (``result`` null, or error 408) is an empty list, never an error. A refusal because a
        webhook is set (the platform's code for it is not documented: any 4xx is checked against
        ``getWebhookInfo``) is ``ZaloWebhookActive``.
        """
        try:
            result = await self.call("getUpdates", {"timeout": timeout}, read_timeout=timeout + 10.0, retries=0)
        except ZaloRequestError as exc:
            if exc.error_code == NO_UPDATE:
                return []
            if not isinstance(exc, ZaloUnauthorized):
                url = await self.webhook_url()
                if url:
                    raise ZaloWebhookActive("getUpdates", error_code=exc.error_code, url=url) from None
            raise
        if result is None:
            return []
        if isinstance(result, list):
            return [u for u in result if isinstance(u, dict)]
        return [result] if isinstance(result, dict) and result else []

    async def set_webhook(self, *, url: str, secret_token: str) -> Any:
        return await self.call("setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self) -> Any:
        return await self.call("deleteWebhook")

    async def get_webhook_info(self) -> dict[str, Any]:
        return await self.call("getWebhookInfo") or {}

    async def webhook_url(self) -> str:
        """The webhook set for this bot, "" when none (or when the platform cannot say right now)."""
        try:
            info = await self.get_webhook_info()
        except ZaloApiError as exc:
            log.warning("zalo getWebhookInfo failed: %s", exc)
            return ""
        url = info.get("url") if isinstance(info, dict) else None
        return url if isinstance(url, str) else ""

    async def send_message(self, *, chat_id: str, text: str) -> dict[str, Any]:
        return await self.call("sendMessage", {"chat_id": chat_id, "text": text})

    async def send_photo(self, *, chat_id: str, photo: str, caption: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"chat_id": chat_id, "photo": photo}
        if caption:
            params["caption"] = caption
        return await self.call("sendPhoto", params)

    async def send_chat_action(self, *, chat_id: str, action: str = "typing") -> Any:
        return await self.call("sendChatAction", {"chat_id": chat_id, "action": action}, retries=0)


def _retry_after_header(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
