"""The fake servers every end-to-end test talks to: the Bot API and an SMTP server, on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Mailbox
from tests.fakes.telegram_api import FakeTelegram


@pytest.fixture
async def tg():
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
def mailbox():
    box = Mailbox()
    box.start()
    yield box
    box.stop()
