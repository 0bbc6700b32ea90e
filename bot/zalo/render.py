"""``Outgoing`` -> what Zalo can show: plain texts of at most 2,000 characters and photos given by URL.

Zalo has no buttons, no markup and no files: options become numbered lines ("1. Hộ nghèo") answered by
number, HTML-lite is stripped, long texts are cut at line boundaries, a chart is published under the
deployment's public media URL (``sendPhoto`` only takes a URL) or described in words when there is none,
and an export is announced with where to get it.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from core.clock import Clock
from core.i18n import T
from core.messages import Option, Outgoing, plain_text

log = logging.getLogger(__name__)

TEXT_LIMIT = 2000  # characters per text and per caption, as the platform counts them
MEDIA_NAME = re.compile(r"^[A-Za-z0-9_-]{16,64}\.(png|jpg|pdf)$")
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "pdf": "application/pdf"}
# Printable minutes hold a child's name and a guardian's phone: their links die within the day.
DOCUMENT_KEEP = timedelta(hours=12)

CHOOSE_HINT = T(vi="(Trả lời bằng số thứ tự, ví dụ: 1)", en="(Reply with the number, e.g. 1)")
TYPE_PHONE = T(vi="Gõ số điện thoại của bạn (ví dụ: 0901234567).", en="Type your phone number (e.g. 0901234567).")
NO_PICTURE = T(
    vi="(Zalo chỉ gửi được ảnh qua một đường dẫn công khai, mà hệ thống chưa được cấu hình, nên ảnh không "
    "hiển thị ở đây. Số liệu đầy đủ nằm trong tin nhắn này; muốn xem ảnh, hãy dùng bot trên Telegram.)",
    en="(Zalo only shows pictures from a public link, which this deployment has not configured, so the "
    "picture is not shown here. The figures are all in this message; use the bot on Telegram to see it.)",
)
# Exports hold children's personal data (names, household status): they are never published as a link in
# a chat app that previews and forwards links. The person gets the file where a file can be delivered.
FILE_READY = T(
    vi="📄 Tệp «{name}» đã sẵn sàng, nhưng Zalo không cho phép bot gửi tệp. Để nhận tệp: gõ lệnh /xuatfile "
    "với bot trên Telegram, hoặc nhờ chuyên viên Phòng GD&ĐT gửi qua email.",
    en="📄 The file “{name}” is ready, but Zalo does not let bots send files. To get it, use /xuatfile with "
    "the bot on Telegram, or ask the district office to email it to you.",
)

# Minutes (PDF) are the one kind of document Zalo gets as a link, and only with a public media URL.
MINUTES_LINK = T(
    vi="📄 Tải biên bản «{name}» (PDF) tại: {url}\n(Đường dẫn hết hạn sau {hours} giờ.)",
    en="📄 Download the minutes “{name}” (PDF): {url}\n(The link expires in {hours} hours.)",
)
MINUTES_ELSEWHERE = T(
    vi="📄 Biên bản «{name}» (PDF) đã sẵn sàng, nhưng Zalo không cho phép bot gửi tệp. Để in biên bản: gõ "
    "/bienban với bot trên Telegram, hoặc nhờ chuyên viên Phòng GD&ĐT in bằng lệnh «fieldbot minutes».",
    en="📄 The minutes “{name}” (PDF) are ready, but Zalo does not let bots send files. To print them, use "
    "/bienban with the bot on Telegram, or ask the district office (command “fieldbot minutes”).",
)


@dataclass(frozen=True, slots=True)
class ZaloText:
    text: str


@dataclass(frozen=True, slots=True)
class ZaloPhoto:
    url: str
    caption: str | None = None


ZaloMessage = ZaloText | ZaloPhoto


def zalo_len(text: str) -> int:
    """Length as a UTF-16 based counter sees it: an emoji counts twice. Never less than ``len``."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pages of at most ``limit``, cut at line breaks; a single overlong line is cut at a space."""
    text = text.strip("\n")
    if zalo_len(text) <= limit:
        return [text] if text else []
    pages: list[str] = []
    current = ""
    for line in text.split("\n"):
        while zalo_len(line) > limit:
            head = _cut(line, limit)
            if current:
                pages.append(current)
                current = ""
            pages.append(head.rstrip())
            line = line[len(head) :].lstrip()
        candidate = f"{current}\n{line}" if current else line
        if zalo_len(candidate) > limit:
            pages.append(current)
            current = line
        else:
            current = candidate
    if current.strip():
        pages.append(current)
    return [p for p in pages if p.strip()]


def _cut(line: str, limit: int) -> str:
    """The longest prefix within ``limit``, ending at a space when one is in the second half."""
    end = min(len(line), limit)
    while zalo_len(line[:end]) > limit:
        end -= 1
    space = line.rfind(" ", 0, end)
    return line[:space] if space > end // 2 else line[:end]


def numbered(options: Sequence[Option]) -> str:
    return "\n".join(f"{i}. {opt.label}" for i, opt in enumerate(options, start=1))


class PublicMedia:
    """Pictures for ``sendPhoto``: written under ``directory`` with unguessable names, served by the Zalo web
    server at ``GET /media/<name>``, reachable by the platform at ``base_url/<name>``.

    The operator points ``FIELDBOT_PUBLIC_MEDIA_URL`` at wherever the proxy exposes that route, e.g.
    ``https://bot.example.org/media``. Files older than ``keep`` are removed as new ones are written.
    """

    def __init__(self, *, directory: Path, base_url: str, clock: Clock, keep: timedelta = timedelta(days=7)) -> None:
        self.directory = Path(directory)
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.keep = keep
        self._last_prune = None

    @classmethod
    def from_settings(cls, settings, *, clock: Clock) -> PublicMedia | None:
        if not settings.public_media_url:
            return None
        return cls(directory=Path(settings.media_dir) / "public", base_url=settings.public_media_url, clock=clock)

    def publish(self, data: bytes) -> str:
        """Write the picture (or a PDF) and return its public URL."""
        ext = "pdf" if data[:5] == b"%PDF-" else "jpg" if data[:3] == b"\xff\xd8\xff" else "png"
        name = f"{secrets.token_urlsafe(18)}.{ext}"
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        # The file's age is the Clock's, not the disk's: pruning is then as testable as any deadline.
        stamp = self.clock.now().timestamp()
        os.utime(tmp, (stamp, stamp))
        tmp.replace(path)
        self._maybe_prune()
        return f"{self.base_url}/{name}"

    def path_for(self, name: str) -> tuple[Path, str] | None:
        """The file and content type for a requested name, or None (bad name, missing, expired)."""
        match = MEDIA_NAME.match(name)
        if match is None:
            return None
        path = self.directory / name  # the pattern has no separators or dots before the extension
        if not path.is_file():
            return None
        if path.stat().st_mtime < (self.clock.now() - self._keep(match.group(1))).timestamp():
            return None
        return path, MEDIA_TYPES[match.group(1)]

    def _keep(self, ext: str) -> timedelta:
        return min(self.keep, DOCUMENT_KEEP) if ext == "pdf" else self.keep

    def prune(self) -> int:
        removed = 0
        if not self.directory.is_dir():
            return 0
        for path in self.directory.iterdir():
            cutoff = (self.clock.now() - self._keep(path.suffix.lstrip("."))).timestamp()
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except OSError as exc:  # another process pruned it first
                log.debug("media prune skipped %s: %s", path.name, exc)
        return removed

    def _maybe_prune(self) -> None:
        now = self.clock.now()
        if self._last_prune is None or now - self._last_prune > timedelta(hours=1):
            self._last_prune = now
            removed = self.prune()
            if removed:
                log.info("removed %d expired Zalo media files", removed)


class ZaloRenderer:
    def __init__(self, *, media: PublicMedia | None = None, language: str = "vi") -> None:
        self.media = media
        self.language = language

    def render(self, out: Outgoing) -> list[ZaloMessage]:
        lang = self.language
        parts: list[str] = []
        body = unicodedata.normalize("NFC", plain_text(out.text or "")).strip()
        if body:
            parts.append(body)
        if out.options:
            parts.append(numbered(out.options) + "\n" + CHOOSE_HINT(lang))
        if out.request_contact:
            parts.append(TYPE_PHONE(lang))
        photo_url: str | None = None
        if out.photo is not None:
            if self.media is not None:
                data = out.photo.read_bytes() if isinstance(out.photo, Path) else out.photo
                photo_url = self.media.publish(data)
            else:
                parts.append(NO_PICTURE(lang))
        if out.document is not None:
            name = out.document_name or out.document.name
            if out.document.suffix.lower() != ".pdf":
                parts.append(FILE_READY(lang, name=name))
            elif self.media is not None:
                url = self.media.publish(out.document.read_bytes())
                hours = int(self.media._keep("pdf").total_seconds() // 3600)
                # The token is the secret: the log names the file and a prefix, enough to trace a complaint.
                log.info(
                    "minutes %s published for Zalo as %s…, expires in %d h", name, url.rsplit("/", 1)[-1][:6], hours
                )
                parts.append(MINUTES_LINK(lang, name=name, url=url, hours=hours))
            else:
                parts.append(MINUTES_ELSEWHERE(lang, name=name))
        text = "\n\n".join(parts)
        messages: list[ZaloMessage] = []
        if photo_url is not None:
            if text and zalo_len(text) <= TEXT_LIMIT:
                return [ZaloPhoto(photo_url, caption=text)]
            messages.append(ZaloPhoto(photo_url))
        messages.extend(ZaloText(page) for page in split_text(text))
        return messages
