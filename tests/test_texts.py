"""Every text a person reads exists in Vietnamese and English with the same placeholders: a ``{name}`` that
only one language has would raise KeyError (or print a raw brace) for the people using the other."""

from __future__ import annotations

import gc
import importlib
import pkgutil
import string

import pytest

from core.i18n import T

PACKAGES = ("core", "storage", "reports", "scheduler", "conversations", "bot")


def _all_texts() -> list[T]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{name}."):
            if ".migrations" not in info.name:
                importlib.import_module(info.name)
    return [o for o in gc.get_objects() if isinstance(o, T)]


def _fields(template: str) -> set[str]:
    return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}


def test_there_are_texts_to_check() -> None:
    assert len(_all_texts()) > 300


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_no_text_is_blank(lang: str) -> None:
    assert [t for t in _all_texts() if not getattr(t, lang).strip()] == []


def test_vietnamese_and_english_use_the_same_placeholders() -> None:
    mismatched = [(t.vi, t.en) for t in _all_texts() if _fields(t.vi) != _fields(t.en)]
    assert mismatched == []
