"""Settings from the environment and an optional `.env` file (git-ignored), all prefixed ``FIELDBOT_``.

A bad value stops start-up with one line naming the variable (see ``load_settings``); secrets are
``SecretStr`` so they never print in a repr or a log line.
"""

from __future__ import annotations

from pathlib import Path
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
    log_level: str = "INFO"
    language: str = "vi"
    flood_limit_per_minute: int = Field(default=60, ge=1)  # a fast teacher taps ~30/min through a form
    # How long a sweeper that died (kill -9, power cut) keeps others from sweeping; renewed while it works.
    sweep_lease_seconds: int = Field(default=120, ge=5)

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
