"""Settings from the environment and .env; secrets and phone numbers never reach a log line."""

from __future__ import annotations

import logging
import os

import pytest

from bot.logs import RedactingFilter, redact, register_secret
from bot.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///fieldbot.db" and s.timezone is None
    assert s.telegram_api_url == "https://api.telegram.org" and s.telegram_token is None


def test_dotenv_file_is_read(tmp_path) -> None:
    (tmp_path / ".env").write_text("FIELDBOT_TELEGRAM_TOKEN=42:abc\nFIELDBOT_LOG_LEVEL=debug\n", encoding="utf-8")
    s = load_settings()
    assert s.telegram_token.get_secret_value() == "42:abc" and s.log_level == "DEBUG"
    assert "42:abc" not in repr(s)


def test_postgres_url_gets_the_psycopg_driver(monkeypatch) -> None:
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", "postgresql://u@db/fieldbot")
    assert load_settings().database_url == "postgresql+psycopg://u@db/fieldbot"


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("FIELDBOT_DATABASE_URL", "mysql://x"),
        ("FIELDBOT_TELEGRAM_API_URL", "ftp://x"),
        ("FIELDBOT_TIMEZONE", "Mars/Olympus"),
        ("FIELDBOT_LOG_LEVEL", "LOUD"),
        ("FIELDBOT_SMTP_URL", "http://mail"),
        ("FIELDBOT_FLOOD_LIMIT_PER_MINUTE", "-1"),
        ("FIELDBOT_SWEEP_LEASE_SECONDS", "1"),  # shorter than one delivery batch: two sweepers would overlap
        ("FIELDBOT_ROLE", "boss"),
        ("FIELDBOT_STEP_LOCK_TIMEOUT_MS", "0"),
        ("FIELDBOT_DB_POOL_SIZE", "0"),
        ("FIELDBOT_DB_MAX_OVERFLOW", "-1"),
        ("FIELDBOT_PROCESSES", "0"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert var in str(info.value) and "\n" not in str(info.value)


def test_redaction_of_tokens_urls_and_phones() -> None:
    register_secret("s3cr3t-smtp-pass")
    line = (
        "POST https://api.telegram.org/bot123456:AAH-very_secret/sendMessage for 0913860438 and +84901000002 "
        "smtp pass s3cr3t-smtp-pass"
    )
    clean = redact(line)
    assert "AAH-very_secret" not in clean and "s3cr3t-smtp-pass" not in clean
    assert "0913860438" not in clean and "+84901000002" not in clean
    assert "091****38" in clean


def test_filter_redacts_records_and_tracebacks() -> None:
    register_secret("999:TOPSECRET")
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token %s", ("999:TOPSECRET",), None)
    try:
        raise RuntimeError("failed with 999:TOPSECRET")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter().filter(record)
    assert "TOPSECRET" not in record.getMessage() and "TOPSECRET" not in record.exc_text
