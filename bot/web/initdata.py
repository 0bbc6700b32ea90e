"""Telegram Mini App sign-in: validate ``initData`` exactly as Telegram documents it
(core.telegram.org/bots/webapps, "Validating data received via the Mini App").

- data-check-string: every received field except ``hash``, as ``key=value`` (values URL-decoded), sorted by
  key, joined with ``\\n``;
- secret key: HMAC-SHA256 of the bot token with the constant ``"WebAppData"`` as the key;
- the hash: hex HMAC-SHA256 of the data-check-string with that secret key, compared in constant time;
- ``auth_date`` (Unix seconds) no older than ``max_age`` and not from the future (a minute of clock skew).

The user id comes only out of a validated ``user`` field: the page never tells us who it is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl

MAX_AGE = timedelta(hours=1)
SKEW = timedelta(minutes=1)


class InitDataError(Exception):
    """Not from Telegram for this bot, or too old. ``reason``: missing, hash, stale, future, user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class MiniAppUser:
    id: int
    first_name: str
    auth_date: datetime


def secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode("utf-8"), hashlib.sha256).digest()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "hash")


def sign(fields: dict[str, str], bot_token: str) -> str:
    """The hash Telegram would put in ``initData`` for these fields (tests and the demo build initData with it)."""
    return hmac.new(secret_key(bot_token), data_check_string(fields).encode("utf-8"), hashlib.sha256).hexdigest()


def validate_init_data(init_data: str, *, bot_token: str, now: datetime, max_age: timedelta = MAX_AGE) -> MiniAppUser:
    if not init_data or len(init_data) > 10_000:
        raise InitDataError("missing")
    pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=False)
    fields: dict[str, str] = {}
    for k, v in pairs:
        if k in fields:  # a repeated key is not something Telegram sends
            raise InitDataError("hash")
        fields[k] = v
    given = fields.get("hash", "")
    if not given:
        raise InitDataError("missing")
    if not hmac.compare_digest(sign(fields, bot_token), given.lower()):
        raise InitDataError("hash")
    try:
        auth_date = datetime.fromtimestamp(int(fields.get("auth_date", "")), tz=now.tzinfo)
    except (ValueError, OverflowError, OSError):
        raise InitDataError("stale") from None
    if auth_date < now - max_age:
        raise InitDataError("stale")
    if auth_date > now + SKEW:
        raise InitDataError("future")
    try:
        user = json.loads(fields.get("user", ""))
        user_id = int(user["id"])
    except (ValueError, KeyError, TypeError):
        raise InitDataError("user") from None
    return MiniAppUser(id=user_id, first_name=str(user.get("first_name", ""))[:100], auth_date=auth_date)
