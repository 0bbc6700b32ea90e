"""An offline Bot API for tests and benchmarks: python-telegram-bot's own request interface, answering
from memory, recording every call. Pattern from PTB's own test suite (its OfflineRequest)."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from telegram import Bot, Update
from telegram.error import TimedOut
from telegram.request import BaseRequest, RequestData

TOKEN = "123456:OFFLINE-TEST-TOKEN"
BOT_ID = 123456
BOT_USER = {
    "id": BOT_ID,
    "is_bot": True,
    "first_name": "fieldbot",
    "username": "fieldbot_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}


class OfflineRequest(BaseRequest):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._ids = itertools.count(10_000)
        self.record = True
        self.files: dict[str, bytes] = {}  # file_id -> bytes served by getFile + download
        self.failures: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # method -> queued error answers

    def fail(
        self,
        method: str,
        status: int | str,
        *,
        times: int = 1,
        retry_after: int | None = None,
        description: str = "Internal Server Error",
    ) -> None:
        """The next ``times`` calls of ``method`` answer ``status``; ``status="timeout"``: no answer in time
        (PTB's ``TimedOut``, as HTTPXRequest raises it)."""
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        self.failures.setdefault(method, []).extend([(status, body)] * times)

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout=None,
        write_timeout=None,
        connect_timeout=None,
        pool_timeout=None,
    ) -> tuple[int, bytes]:
        if "/file/bot" in url:
            file_id = url.rsplit("/", 1)[-1].removesuffix(".jpg")
            return (
                (200, self.files[file_id])
                if file_id in self.files
                else (404, b'{"ok":false,"error_code":404,"description":"Not Found"}')
            )
        name = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data is not None else {}
        if self.failures.get(name):
            status, body = self.failures[name].pop(0)
            self.calls.append((f"{name}!{status}", params))
            if status == "timeout":
                raise TimedOut
            return status, json.dumps(body).encode()
        if self.record:
            self.calls.append((name, params))
        return 200, json.dumps({"ok": True, "result": self._result(name, params)}).encode()

    def _result(self, name: str, params: dict[str, Any]) -> Any:
        if name == "getMe":
            return BOT_USER
        if name in ("sendMessage", "sendPhoto", "sendDocument", "editMessageText"):
            chat_id = int(params.get("chat_id", 1))
            msg: dict[str, Any] = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": BOT_USER,
            }
            if "text" in params:
                msg["text"] = params["text"]
            if name == "sendPhoto":
                msg["photo"] = [{"file_id": "p", "file_unique_id": "pu", "width": 1, "height": 1}]
            if name == "sendDocument":
                msg["document"] = {"file_id": "d", "file_unique_id": "du"}
            return msg
        if name == "getFile":
            return {
                "file_id": params["file_id"],
                "file_unique_id": "u",
                "file_size": 10,
                "file_path": f"photos/{params['file_id']}.jpg",
            }
        if name == "getUpdates":
            return []
        return True

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [p for n, p in self.calls if n == method]

    def texts(self, chat_id: int | None = None) -> list[str]:
        return [
            p["text"] for n, p in self.calls if n == "sendMessage" and (chat_id is None or int(p["chat_id"]) == chat_id)
        ]


class UpdateFactory:
    """Realistic private-chat updates, as Telegram sends them."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    def _user(self, user_id: int, name: str = "Người dùng") -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": name, "language_code": "vi"}

    def _message(self, user_id: int, **fields: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "x"},
            "from": self._user(user_id),
            **fields,
        }

    def _update(self, **fields: Any) -> Update:
        return Update.de_json({"update_id": next(self._update_ids), **fields}, self.bot)

    def text(self, user_id: int, text: str, *, message_id: int | None = None) -> Update:
        fields: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            fields["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        msg = self._message(user_id, **fields)
        if message_id is not None:
            msg["message_id"] = message_id
        return self._update(message=msg)

    def contact(self, user_id: int, phone: str, *, contact_user_id: int | None = None) -> Update:
        contact = {"phone_number": phone, "first_name": "Liên hệ"}
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        return self._update(message=self._message(user_id, contact=contact))

    def photo(self, user_id: int, file_id: str = "PHOTO1", size: int = 120_000) -> Update:
        sizes = [
            {
                "file_id": f"{file_id}_s",
                "file_unique_id": f"{file_id}_su",
                "width": 90,
                "height": 67,
                "file_size": 1500,
            },
            {"file_id": file_id, "file_unique_id": f"{file_id}_u", "width": 1280, "height": 960, "file_size": size},
        ]
        return self._update(message=self._message(user_id, photo=sizes))

    def sticker(self, user_id: int) -> Update:
        return self._update(
            message=self._message(
                user_id,
                sticker={
                    "file_id": "st",
                    "file_unique_id": "stu",
                    "width": 512,
                    "height": 512,
                    "is_animated": False,
                    "is_video": False,
                    "type": "regular",
                },
            )
        )

    def tap(self, user_id: int, data: str, *, on_message_id: int = 1) -> Update:
        msg = self._message(BOT_ID, text="?")
        msg["chat"]["id"] = user_id
        msg["message_id"] = on_message_id
        msg["from"] = BOT_USER
        return self._update(
            callback_query={
                "id": str(next(self._update_ids) * 7919),
                "from": self._user(user_id),
                "chat_instance": "ci",
                "data": data,
                "message": msg,
            }
        )

    def group_text(self, user_id: int, text: str) -> Update:
        msg = self._message(user_id, text=text)
        msg["chat"] = {"id": -100123, "type": "group", "title": "Tổ giáo viên"}
        return self._update(message=msg)
