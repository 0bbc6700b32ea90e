"""Console channel: the same conversations in a terminal, for trying the bot without any account.

`fieldbot chat --phone 0901000001` talks as the roster person with that phone. Options print numbered and
are answered by number or text; `/anh PATH` sends a photo; `/tep PATH` sends a file (a class list for
/nhapds); `/thoat` (or Ctrl-D) leaves. Before each prompt the messages the outbox holds for this person (a
principal's decision, a reminder) are delivered here.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import TextIO

from core.clock import Clock, SystemClock
from core.messages import DocumentInput, Incoming, Option, Outgoing, PhotoInput, plain_text

CHANNEL = "console"
PHOTO_COMMAND = "/anh"
FILE_COMMAND = "/tep"
QUIT = ("/thoat", "/exit", "/quit")
GOODBYE = "Tạm biệt! Việc đang làm dở (nếu có) vẫn được giữ; lần sau gõ /menu để tiếp tục."
PHOTO_USAGE = "Cách gửi ảnh: /anh ĐƯỜNG_DẪN_TỆP_ẢNH (ví dụ: /anh ~/Pictures/bangiao.jpg)"


def stdin_lines() -> Iterable[str]:
    while True:
        try:
            yield input("› ")
        except EOFError:
            return


class ConsoleSender:
    """The console as a delivery channel (``core.ports.ChannelSender``): what the deliverer sends this
    terminal's person is kept until the next prompt shows it."""

    channel = CHANNEL

    def __init__(self) -> None:
        self.waiting: list[Outgoing] = []

    async def send(self, chat_id: str, message: Outgoing) -> None:
        self.waiting.append(message)

    def take(self) -> list[Outgoing]:
        out, self.waiting = self.waiting, []
        return out


Inbox = Callable[[], Awaitable[list[Outgoing]]]
INBOX_HEADER = "── Tin nhắn mới ──"


class ConsoleChannel:
    def __init__(
        self,
        handle,
        *,
        user_id: str,
        clock: Clock | None = None,
        media_dir: Path | None = None,
        inbox: Inbox | None = None,
    ) -> None:
        self.handle = handle
        self.inbox = inbox  # messages queued for this person, shown before each prompt
        self.user_id = user_id
        self.clock = clock or SystemClock()
        self.media_dir = media_dir or Path(".")
        self.options: list[Option] = []
        self._ids = itertools.count(1)

    def incoming(self, line: str) -> Incoming | str:
        """The Incoming for a typed line, or an error string to print."""
        base = dict(
            channel=CHANNEL,
            user_id=self.user_id,
            chat_id="console",
            received_at=self.clock.now(),
            message_id=f"{self.user_id}:{self.clock.now().timestamp()}:{next(self._ids)}",
        )
        text = line.strip()
        if text.lower().startswith(PHOTO_COMMAND + " ") or text.lower() == PHOTO_COMMAND:
            given = text[len(PHOTO_COMMAND) :].strip()
            if not given:
                return PHOTO_USAGE
            path = Path(given).expanduser()
            if not path.is_file():
                return f"Không tìm thấy tệp ảnh: {path}"
            data = path.read_bytes()

            async def fetch() -> bytes:
                return data

            return Incoming(
                **base, photo=PhotoInput(fetch=fetch, file_name=path.name, size=len(data), as_document=True)
            )
        if text.lower().startswith(FILE_COMMAND + " ") or text.lower() == FILE_COMMAND:
            path = Path(text[len(FILE_COMMAND) :].strip()).expanduser()
            if not path.is_file():
                return f"Không tìm thấy tệp: {path}"
            data = path.read_bytes()

            async def fetch_file() -> bytes:
                return data

            return Incoming(**base, document=DocumentInput(fetch=fetch_file, file_name=path.name, size=len(data)))
        if text.isdigit() and self.options and 1 <= int(text) <= len(self.options):
            return Incoming(**base, choice=self.options[int(text) - 1].key)
        return Incoming(**base, text=text)

    def render(self, out: Outgoing, stream: TextIO) -> None:
        if out.text:
            stream.write(plain_text(out.text) + "\n")
        if out.photo is not None:
            target = self.media_dir / "console" / f"anh-{next(self._ids)}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(out.photo.read_bytes() if isinstance(out.photo, Path) else out.photo)
            stream.write(f"[ảnh: {target}]\n")
        if out.document is not None:
            stream.write(f"[tệp: {out.document}]\n")
        if out.options:
            for i, opt in enumerate(out.options, start=1):
                stream.write(f"  {i}. {opt.label}\n")
        if out.request_contact:
            stream.write("(Gõ số điện thoại của bạn)\n")

    async def run(self, lines: Iterable[str], stream: TextIO, *, first: str | None = None) -> None:
        typed = iter(lines)
        line = first
        while True:
            await self.show_inbox(stream)  # before each prompt: a colleague's decision, a reminder
            if line is None:
                line = next(typed, None)
                if line is None:
                    break
            if line.strip().lower() in QUIT:
                stream.write(GOODBYE + "\n")
                stream.flush()
                break
            await self._one(line, stream)  # a blank line too: it gets the question again or the menu
            line = None

    async def _one(self, line: str, stream: TextIO) -> None:
        incoming = self.incoming(line)
        if isinstance(incoming, str):
            stream.write(incoming + "\n")
            return
        replies = await self.handle(incoming)
        # Numbers answer the options on screen now; after a question without options they are text.
        self.options = next((list(o.options) for o in reversed(replies) if o.options), [])
        for out in replies:
            self.render(out, stream)
        stream.flush()

    async def show_inbox(self, stream: TextIO) -> int:
        """Deliver and print what the outbox holds for this person; returns how many messages."""
        if self.inbox is None:
            return 0
        messages = await self.inbox()
        if messages:
            stream.write(INBOX_HEADER + "\n")
            for out in messages:
                self.render(out, stream)
            stream.flush()
        return len(messages)
