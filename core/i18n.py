"""Vietnamese first, English available: every user-facing text is a ``T`` pair kept beside the code that
sends it, so a new engineer edits a prompt where it is used."""

from __future__ import annotations

from dataclasses import dataclass

LANGUAGES = ("vi", "en")


@dataclass(frozen=True, slots=True)
class T:
    vi: str
    en: str

    def __call__(self, lang: str = "vi", /, **values: object) -> str:
        template = self.en if lang == "en" else self.vi
        return template.format(**values) if values else template
