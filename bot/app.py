"""Wiring: settings -> database, programme, clock, photo store, mailer, conversation engine.

Every entry point (run, chat, sweep, export) builds the same pieces here, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from bot.logs import register_secret
from bot.settings import Settings
from core.clock import Clock, SystemClock
from core.programme import Programme, load_programme
from storage.db import make_engine, upgrade


@dataclass
class App:
    settings: Settings
    db: Engine
    programme: Programme
    clock: Clock
    media_dir: Path

    def mailer(self):
        """The SMTP mailer, or None when no SMTP is configured."""
        if self.settings.smtp_url is None:
            return None
        from scheduler.email import SmtpMailer

        return SmtpMailer(self.settings.smtp_url.get_secret_value())

    def photo_store(self):
        from storage.photos import PhotoStore

        return PhotoStore(self.media_dir, max_side=self.programme.photos.max_side)

    def conversation_engine(self):
        from conversations.engine import ConversationEngine

        return ConversationEngine(
            db=self.db,
            programme=self.programme,
            clock=self.clock,
            photos=self.photo_store(),
            media_dir=self.media_dir,
            mailer=self.mailer(),
            flood_limit_per_minute=self.settings.flood_limit_per_minute,
            default_language=self.settings.language,
        )


def build_app(settings: Settings, *, clock: Clock | None = None, migrate: bool = True) -> App:
    """Raises ProgrammeError / DatabaseUnavailable with one clear line each."""
    for secret in (
        settings.telegram_token,
        settings.zalo_token,
        settings.smtp_url,
        settings.telegram_webhook_secret,
        settings.zalo_webhook_secret,
    ):
        if secret is not None:
            register_secret(secret.get_secret_value())
    if settings.smtp_url is not None:
        from urllib.parse import urlsplit

        register_secret(urlsplit(settings.smtp_url.get_secret_value()).password)
    programme = load_programme(settings.programme)
    if settings.timezone:  # FIELDBOT_TIMEZONE: the deployment's zone wins over the programme file's
        programme = programme.with_timezone(settings.timezone)
    db = make_engine(settings.database_url)
    if migrate:
        upgrade(db)
    media_dir = Path(settings.media_dir)
    media_dir.mkdir(parents=True, exist_ok=True)
    return App(settings=settings, db=db, programme=programme, clock=clock or SystemClock(), media_dir=media_dir)
