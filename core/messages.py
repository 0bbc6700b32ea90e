"""What flows between a channel adapter and the conversation engine.

Adapters turn a platform update into an ``Incoming`` and render each ``Outgoing``; nothing here knows which
platform it came from. ``Outgoing.text`` is HTML-lite (only <b>, <i>, <code>): every value a user typed is
passed through ``html.escape`` before it lands there, so Telegram can send it with parse_mode=HTML and the
text-only channels (Zalo, console) strip the tags with ``plain_text``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

CHANNELS = ("telegram", "zalo", "console")


@dataclass(frozen=True, slots=True)
class Contact:
    """A shared phone contact. ``user_id`` is the platform account the contact belongs to (None when the
    platform does not say): linking requires it to be the sender's own."""

    phone: str
    user_id: str | None = None
    first_name: str = ""


@dataclass(slots=True)
class PhotoInput:
    """A photo or image document sent by a user. Bytes are fetched lazily: only a step that wants a photo
    downloads it, and the size is known before downloading when the platform says it."""

    fetch: Callable[[], Awaitable[bytes]]
    file_name: str | None = None  # as the user's client named it; never used as a path
    mime_type: str | None = None
    size: int | None = None
    as_document: bool = False
    platform_file_id: str | None = None


@dataclass(slots=True)
class DocumentInput:
    """A file (not an image) sent by a user: a spreadsheet to import. Like ``PhotoInput``, fetched lazily and
    only when a step wants it; ``size`` (when the platform says it) is checked before downloading."""

    fetch: Callable[[], Awaitable[bytes]]
    file_name: str | None = None  # as the user's client named it; never used as a path
    mime_type: str | None = None
    size: int | None = None
    platform_file_id: str | None = None


@dataclass(slots=True)
class Incoming:
    channel: str
    user_id: str  # the platform account of the sender
    chat_id: str  # where replies go
    received_at: datetime
    message_id: str | None = None  # platform message id, for dedupe; None when the platform has none
    # The platform's order of this chat's messages (Telegram: message_id, increasing per chat), or None when
    # the platform gives none (taps, console): a message older than one already applied is not applied.
    seq: int | None = None
    text: str | None = None
    choice: str | None = None  # the data of a tapped option (callback data); never trusted
    photo: PhotoInput | None = None
    document: DocumentInput | None = None  # a spreadsheet or other non-image file
    contact: Contact | None = None
    display_name: str = ""
    unsupported: bool = False  # a sticker, voice note, file type we do not read ...
    language: str | None = None  # the client's language hint, if any

    @property
    def command(self) -> str | None:
        """``/dangky@fieldbot_bot args`` -> ``dangky``."""
        if not self.text or not self.text.startswith("/"):
            return None
        head = self.text.split(maxsplit=1)[0][1:]
        return head.split("@", 1)[0].lower() or None

    @property
    def command_args(self) -> str:
        if not self.command:
            return ""
        parts = self.text.split(maxsplit=1) if self.text else []
        return parts[1].strip() if len(parts) > 1 else ""


@dataclass(frozen=True, slots=True)
class Option:
    key: str  # short, opaque; comes back as Incoming.choice
    label: str  # plain text shown on a button or in a numbered list


@dataclass(slots=True)
class Outgoing:
    text: str = ""
    options: list[Option] = field(default_factory=list)
    columns: int = 1  # buttons per row where the channel has buttons
    request_contact: bool = False  # ask for the sender's own phone (Telegram reply keyboard)
    remove_keyboard: bool = False
    photo: bytes | Path | None = None  # a chart, a thumbnail
    document: Path | None = None  # an export
    document_name: str | None = None


def esc(value: object) -> str:
    """Escape a user-provided value for an HTML-lite text."""
    return html.escape(str(value), quote=False)


_TAG = re.compile(r"</?(?:b|i|u|code|pre)>")


def plain_text(text: str) -> str:
    """HTML-lite -> plain text for channels without markup."""
    return html.unescape(_TAG.sub("", text))
