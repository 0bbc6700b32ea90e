"""Refusals from the record rules, typed: a code naming the rule and the values that explain it.

Every record function raises ``RecordError`` (``NotAllowed`` for role checks, ``Conflict`` when a colleague
wrote the same thing first). Storage never words them: ``conversations/refusals.py`` does, in the person's
language, so the same refusal reads the same in a form, an import report and the console.
"""

from __future__ import annotations


class RecordError(Exception):
    """A request the rules refuse: ``code`` (e.g. "serial_taken") and ``params`` (e.g. serial, day, school)."""

    def __init__(self, code: str, **params: object) -> None:
        self.code = code
        self.params = params
        super().__init__(f"{code}: {params}" if params else code)


class NotAllowed(RecordError):
    """The person's role or school does not allow this."""


class Conflict(RecordError):
    """Someone else wrote the same computer or photo at the same moment. Unlike the other refusals this one
    comes from the database after writing, so the caller's transaction is spoiled and must be rolled back;
    the person can simply try again (the checks then refuse with a precise reason)."""
