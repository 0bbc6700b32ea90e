"""End-to-end harness: the real `fieldbot` executable against the fake Bot API and a local SMTP server.

Everything listens on 127.0.0.1. The bot runs as a child process exactly as an operator starts it
(`fieldbot run`, configured only through FIELDBOT_* variables), so these tests see what a district would:
start-up, migrations, long polling, retries, restarts and a kill -9.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from pathlib import Path

from tests.fakes.telegram_api import FakeTelegram, FakeUser, SentMessage

FIELDBOT = str(Path(sys.executable).with_name("fieldbot"))
ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ROSTER = ROOT / "examples" / "roster.csv"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Mailbox:
    """A local SMTP server (aiosmtpd) that keeps every message."""

    messages: list = field(default_factory=list)
    port: int = 0
    _controller: object = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                box.messages.append(message_from_bytes(envelope.original_content, policy=policy.default))
                return "250 OK"

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in str(m["To"])]


class BotProcess:
    """`fieldbot run` as a child process, its log kept for assertions."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self.log: list[str] = []
        self._reader: asyncio.Task | None = None

    async def acli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """``cli`` off the event loop, for commands that talk to the fake servers running on it."""
        return await asyncio.to_thread(self.cli, *args, check=check)

    def cli(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        out = subprocess.run(
            [FIELDBOT, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=120, input=input
        )
        self.log.extend((out.stdout + out.stderr).splitlines())
        if check and out.returncode != 0:
            raise AssertionError(f"fieldbot {' '.join(args)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
        return out

    async def start(self, *args: str, ready: str = "fieldbot is running", timeout: float = 60.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            FIELDBOT,
            "run",
            *args,
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        started = asyncio.get_running_loop().create_future()

        async def read() -> None:
            assert self.proc and self.proc.stdout
            async for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip()
                self.log.append(line)
                if ready in line and not started.done():
                    started.set_result(None)
            if not started.done():
                started.set_exception(AssertionError("fieldbot exited before it was ready:\n" + self.text))

        self._reader = asyncio.create_task(read())
        await asyncio.wait_for(started, timeout)

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader:
            await asyncio.wait_for(self._reader, timeout)
        return code

    async def kill9(self) -> None:
        await self.stop(signal.SIGKILL)

    @property
    def text(self) -> str:
        return "\n".join(self.log)


class Person:
    """One person on Telegram: types, taps, and reads replies in order (a cursor over their chat)."""

    def __init__(self, tg: FakeTelegram, user: FakeUser) -> None:
        self.tg = tg
        self.user = user
        self.cursor = 0

    @property
    def inbox(self) -> list[SentMessage]:
        return self.tg.messages_to(self.user.id)

    async def expect(self, needle: str, timeout: float = 20.0) -> SentMessage:
        """Wait for the next message whose text, file name or buttons contain ``needle`` (case-insensitive);
        move the cursor past it."""

        def found() -> int | None:
            for i, m in enumerate(self.inbox[self.cursor :], start=self.cursor):
                shown = " ".join([m.text or "", m.file_name or "", *(label for label, _ in m.buttons)])
                if needle.lower() in shown.lower():
                    return i
            return None

        try:
            await self.tg.wait_for(lambda: found() is not None, timeout, what=repr(needle))
        except TimeoutError:
            unread = [m.text for m in self.inbox[self.cursor :]]
            raise AssertionError(f"{self.user.first_name} never got {needle!r}; unread: {unread}") from None
        index = found()
        self.cursor = index + 1
        return self.inbox[index]

    async def say(self, text: str, expect: str) -> SentMessage:
        self.user.send_text(text)
        return await self.expect(expect)

    def button(self, label: str) -> str:
        """callback data of the newest button whose label contains ``label``."""
        for m in reversed(self.inbox):
            for text, data in m.buttons:
                if label.lower() in text.lower() and data:
                    return data
        raise AssertionError(f"no button {label!r} for {self.user.first_name}")

    async def tap(self, label: str, expect: str) -> SentMessage:
        self.user.tap(self.button(label))
        return await self.expect(expect)

    async def photo(self, data: bytes, expect: str) -> SentMessage:
        self.user.send_photo(data)
        return await self.expect(expect)


async def link(tg: FakeTelegram, user_id: int, name: str, phone: str) -> Person:
    """A roster person links their Telegram account: /start, then the contact button with their own number."""
    person = Person(tg, tg.user(user_id, name))
    contact_prompt = await person.say("/start", expect="số điện thoại")
    assert contact_prompt.reply_markup["keyboard"][0][0]["request_contact"] is True
    person.user.share_contact(phone)
    await person.expect(name)
    return person


def bot_env(
    tmp: Path, tg: FakeTelegram, *, smtp_port: int | None = None, db_url: str | None = None, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDBOT_")}
    env.update(
        {
            "FIELDBOT_DATABASE_URL": db_url or f"sqlite:///{tmp / 'fieldbot.db'}",
            "FIELDBOT_TELEGRAM_TOKEN": tg.token,
            "FIELDBOT_TELEGRAM_API_URL": tg.root,
            "FIELDBOT_MEDIA_DIR": str(tmp / "media"),
            "FIELDBOT_LOG_LEVEL": "INFO",
            "FIELDBOT_FLOOD_LIMIT_PER_MINUTE": "1000",  # a test taps faster than any teacher
            "PYTHONUNBUFFERED": "1",
        }
    )
    if smtp_port:
        env["FIELDBOT_SMTP_URL"] = f"smtp://127.0.0.1:{smtp_port}?from=fieldbot@truong.test"
    env.update(extra)
    return env
