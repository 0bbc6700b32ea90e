"""The registry: command names and form names -> ``Form`` / ``Action``.

Adding a form: write a module that defines ``FORMS = [...]`` (Forms and Actions, see ``forms/base.py``) and
add its import path to ``MODULES`` below — one line. The menu, ``/trogiup``, the Telegram command list and
the engine all read this registry.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache

from conversations.forms.base import Action, Form

MODULES: tuple[str, ...] = (
    "conversations.forms.register",
    "conversations.forms.importing",
    "conversations.forms.review",
    "conversations.forms.report",
    "conversations.forms.mine",
    "conversations.forms.stats",
    "conversations.forms.computers",
    "conversations.forms.handover",
    "conversations.forms.minutes",
    "conversations.forms.csdl",
    "conversations.forms.web",
    "conversations.forms.privacy",
    "conversations.linking",
)


@dataclass
class Registry:
    forms: dict[str, Form] = field(default_factory=dict)  # by form name (what a Conversation row stores)
    commands: dict[str, Form | Action] = field(default_factory=dict)  # by command, without the slash

    def add(self, item: Form | Action) -> None:
        if isinstance(item, Form):
            if item.name in self.forms:
                raise ValueError(f"form name {item.name!r} registered twice")
            self.forms[item.name] = item
        names = [item.command] if item.command else []
        names += list(getattr(item, "aliases", ()))
        for name in names:
            if name in self.commands:
                raise ValueError(f"command /{name} registered twice")
            self.commands[name] = item

    def primary(self) -> dict[str, Form | Action]:
        """Commands by their own name, without aliases: what menus, help and command lists show."""
        return {cmd: item for cmd, item in self.commands.items() if item.command == cmd}


def build_registry(modules: tuple[str, ...] = MODULES) -> Registry:
    registry = Registry()
    for path in modules:
        for item in importlib.import_module(path).FORMS:
            registry.add(item)
    return registry


@cache
def registry() -> Registry:
    return build_registry()
