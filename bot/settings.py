"""Settings from the environment and an optional `.env` file (git-ignored), all prefixed ``FIELDBOT_``.

A bad value stops start-up with one line naming the variable (see ``load_settings``); secrets are
``SecretStr`` so they never print in a repr or a log line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PROGRAMME = Path(__file__).with_name("programme.toml")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(Exception):
    """One clear line for the operator, naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FIELDBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = "sqlite:///fieldbot.db"
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_url: str | None = None  # public HTTPS URL; webhook mode when set
    telegram_webhook_secret: SecretStr | None = None
    telegram_webhook_listen: str = "127.0.0.1:8443"
    zalo_token: SecretStr | None = None
    zalo_api_url: str = "https://bot-api.zaloplatforms.com"
    zalo_webhook_url: str | None = None
    zalo_webhook_secret: SecretStr | None = None
    zalo_webhook_listen: str = "127.0.0.1:8444"
    public_media_url: str | None = None  # where charts are served for Zalo (sendPhoto takes a URL)
    media_dir: Path = Path("media")
    programme: Path = DEFAULT_PROGRAMME
    timezone: str | None = None  # overrides the programme file's zone (one zone for the whole app)
    smtp_url: SecretStr | None = None  # smtp://user:pass@host:port?from=bot@example.org (smtps:// for TLS)
    # The web view (bot/web): served by `fieldbot run` when FIELDBOT_WEB_LISTEN is set (off when unset);
    # FIELDBOT_WEB_URL is the public address sign-in links use (https:// behind a proxy: Secure cookies).
    web_listen: str | None = None  # e.g. 127.0.0.1:8080
    web_url: str | None = None
    log_level: str = "INFO"
    language: str = "vi"
    flood_limit_per_minute: int = Field(default=60, ge=1)  # a fast teacher taps ~30/min through a form
    # How long a sweeper that died (kill -9, power cut) keeps others from sweeping; renewed while it works.
    sweep_lease_seconds: int = Field(default=120, ge=5)
    # Several `fieldbot run` behind one proxy (docs/deploy.md): exactly one "primary" registers the webhook,
    # sets the bot's commands and runs the scheduler (the sweeper lease still guards against two); "worker"
    # processes only answer the updates the proxy sends them.
    role: Literal["primary", "worker"] = "primary"
    # How many processes send with this bot token (the primary, its workers, a `fieldbot sweep` cron): each
    # paces Telegram at its share of the bot's 30 messages a second, so together they stay under it.
    processes: int = Field(default=1, ge=1, le=64)
    # How long a step waits for the same person's step in another process before saying "send it again".
    step_lock_timeout_ms: int = Field(default=5000, ge=50, le=60000)
    # PostgreSQL connections per process: (pool + overflow) x processes must stay below max_connections.
    db_pool_size: int = Field(default=5, ge=1, le=200)
    db_max_overflow: int = Field(default=5, ge=0, le=200)

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str) -> str:
        scheme = urlsplit(v).scheme
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError("chỉ hỗ trợ sqlite:/// hoặc postgresql:// (only sqlite or postgresql URLs)")
        if scheme in ("postgresql", "postgres"):
            v = "postgresql+psycopg" + v[len(scheme) :]
        return v

    @field_validator("telegram_api_url", "zalo_api_url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("phải là URL http(s):// (must be an http(s) URL)")
        return v.rstrip("/")

    @field_validator("web_url")
    @classmethod
    def _web_url(cls, v: str | None) -> str | None:
        if not v:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("phải là URL http(s):// (must be an http(s) URL)")
        return v.rstrip("/")

    @field_validator("web_listen")
    @classmethod
    def _web_listen(cls, v: str | None) -> str | None:
        if not v:
            return None
        host, _, port = v.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("phải có dạng host:port, ví dụ 127.0.0.1:8080 (must be host:port)")
        return v

    @property
    def web_public_url(self) -> str | None:
        """Where sign-in links point: FIELDBOT_WEB_URL, else the listen address (a local try-out)."""
        if self.web_url:
            return self.web_url
        if self.web_listen:
            host, _, port = self.web_listen.rpartition(":")
            host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
            return f"http://{host}:{port}"
        return None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if not v:
            return None
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"múi giờ không tồn tại: {v} (unknown time zone)") from None
        return v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in LOG_LEVELS:
            raise ValueError(f"phải là một trong {', '.join(LOG_LEVELS)}")
        return v.upper()

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if v not in ("vi", "en"):
            raise ValueError("phải là vi hoặc en")
        return v

    @field_validator("smtp_url")
    @classmethod
    def _smtp(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value():
            return None
        parts = urlsplit(v.get_secret_value())
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("phải có dạng smtp://user:pass@host:port?from=... (must be smtp:// or smtps://)")
        return v


def load_settings(**overrides: object) -> Settings:
    """Settings, or a ``SettingsError`` whose message is one line naming the bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "FIELDBOT_" + str(first["loc"][0]).upper() if first.get("loc") else "FIELDBOT_*"
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        raise SettingsError(f"Cấu hình sai {name}: {msg}") from None
