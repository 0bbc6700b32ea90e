"""Matching what people type against what the bot offered, with or without Vietnamese accents.

Teachers type on phones, often without a Vietnamese keyboard: ``can ngheo`` must find ``Hộ cận nghèo``,
``2`` must find the second option, and ``ngheo`` alone (which fits two options) must be asked again rather
than guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s/]", re.UNICODE)


@lru_cache(maxsize=8192)  # labels and control words are folded on every message: keep them folded
def fold(text: str) -> str:
    """Lower case, no accents (đ -> d), no punctuation or emoji, single spaces: the form used to compare."""
    text = unicodedata.normalize("NFD", text.strip().lower()).replace("đ", "d")
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = _PUNCT.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def nfc(text: str) -> str:
    """Unicode NFC with single spaces: how typed text is stored (phones send decomposed accents too)."""
    return _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()


@dataclass(frozen=True, slots=True)
class Match:
    """The outcome of matching typed text against labels: one index, several (ambiguous) or none."""

    indexes: tuple[int, ...]

    @property
    def index(self) -> int | None:
        return self.indexes[0] if len(self.indexes) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.indexes) > 1


def match_label(typed: str, labels: Sequence[str], *, by_number: bool = True) -> Match:
    """Which of ``labels`` the person meant by ``typed``.

    In order of preference: the option's number (1-based), the whole label without accents, a label that
    contains every typed word (``can ngheo`` -> ``Hộ cận nghèo`` but not ``Hộ nghèo``), a label that
    contains the typed text. Several labels at the same level -> ambiguous.
    """
    raw = typed.strip().rstrip(".)")
    if by_number and raw.isascii() and raw.isdigit():
        n = int(raw)
        return Match((n - 1,)) if 1 <= n <= len(labels) else Match(())
    q = fold(typed)
    if not q:
        return Match(())
    folded = [fold(label) for label in labels]
    exact = tuple(i for i, f in enumerate(folded) if f == q)
    if exact:
        return Match(exact)
    words = q.split()
    by_words = tuple(i for i, f in enumerate(folded) if all(w in f.split() for w in words))
    if by_words:
        return Match(by_words)
    by_prefix = tuple(i for i, f in enumerate(folded) if all(any(fw.startswith(w) for fw in f.split()) for w in words))
    if by_prefix:
        return Match(by_prefix)
    return Match(tuple(i for i, f in enumerate(folded) if q in f))


def is_word(typed: str | None, *words: str) -> bool:
    """``typed`` is one of ``words`` once folded: ``Hủy`` / ``huy`` / ``HUỶ`` all mean cancel."""
    if not typed:
        return False
    q = fold(typed)
    return any(q == fold(w) for w in words)


def fmt_int(n: int, lang: str = "vi") -> str:
    """A whole number grouped by thousands as the reader writes it: ``10.000`` in Vietnamese, ``10,000`` in
    English. Every count shown to a person goes through here."""
    grouped = f"{int(n):,}"
    return grouped.replace(",", ".") if lang == "vi" else grouped
