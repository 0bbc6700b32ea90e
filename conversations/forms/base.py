"""The Form API: a form is data — ordered fields, each with a kind, a prompt, a parser and a condition — and
one ``on_complete`` that writes the record. The engine does everything else.

How to write a form (see ``conversations/forms/register.py`` for a full one)::

    from conversations.fields import choice_field, choices_from, date_field, text_field
    from conversations.forms.base import Done, Form, FormContext
    from core.i18n import T
    from core.vocabulary import DEVICE_TYPE_LABELS, Role

    def save(ctx: FormContext) -> Done:
        v = ctx.values                       # python values: date, int, str, list, bool, None (skipped)
        batch = receipts.record_batch(ctx.session, school_id=ctx.staff.school_id, by=ctx.staff.id, ...)
        return Done(T(vi="Đã lưu lô máy #{n}.", en="Saved batch #{n}."), n=batch.id)

    FORM = Form(
        name="nhanmay", command="nhanmay",
        title=T(vi="Nhận máy từ Phòng GD&ĐT", en="Computers received from the district"),
        description=T(vi="Ghi nhận máy được cấp", en="Record computers received"),
        roles=frozenset({Role.PRINCIPAL}),
        fields=[
            date_field("received_on", T(vi="Ngày nhận máy (dd/mm/yyyy)?", en="..."), T(vi="Ngày nhận", en="..."),
                       default_today=True),
            text_field("quantity", T(vi="Bao nhiêu máy?", en="..."), T(vi="Số lượng", en="..."), parse=...),
            choice_field("device_type", T(vi="Loại máy?", en="..."), T(vi="Loại máy", en="..."),
                         choices_from(DEVICE_TYPE_LABELS.items())),
        ],
        on_complete=save,
    )

Then add the form to ``FORMS`` of its module and that module to ``conversations/forms/__init__.py``.

Rules the engine guarantees, so a form never has to:
- Every answer is validated by the field's parser before it is stored: a parser raises ``Invalid(T(...))``
  with a Vietnamese message; the person sees it and the same question again.
- ``/huy`` cancels (nothing written: only ``on_complete`` writes), ``quay lại`` goes back one step, optional
  fields get "Bỏ qua", options can be tapped or typed (number, or text with or without accents).
- Before ``on_complete`` (when ``Form.summary``), a summary shows every answer with Lưu / Sửa một mục / Hủy.
- ``on_complete`` runs in the same transaction that deletes the person's in-progress form; if it raises
  ``Invalid(..., field="code")`` the person sees the message and is asked that field again.
- ``ctx.session`` is a sqlmodel Session inside the step's transaction: flush, never commit.
- Values are kept as JSON between steps: dates round-trip through the field kind; choice values must be
  JSON scalars (str, int, bool); photo values whatever JSON the field's ``accept_photo`` returns.
- Keys of ``ctx.values`` that are not field names (e.g. ``"student_id"`` set by ``Form.start``) are kept
  too, so a form can carry hidden context.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.i18n import T
from core.messages import DocumentInput, Outgoing, PhotoInput

if TYPE_CHECKING:
    from sqlmodel import Session

    from core.clock import Clock
    from core.programme import Programme
    from storage.photos import PhotoStore
    from storage.scope import Scope


class Kind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    CHOICE = "choice"
    MULTI = "multi"  # several options; tapped ones toggle, "Xong" finishes
    PHONE = "phone"
    PHOTO = "photo"
    CONFIRM = "confirm"  # Có / Không -> True / False
    DOCUMENT = "document"  # a file (a class list): ``accept_document`` turns its bytes into the value


class Invalid(Exception):
    """A parser's (or ``on_complete``'s) refusal. ``message`` is shown to the person as is (already HTML-safe:
    escape user values with ``esc``). ``field``: from ``on_complete``, the field to ask again."""

    def __init__(self, message: T | str, *, field: str | None = None, **values: object) -> None:
        self.message = message
        self.field = field
        self.values = values
        super().__init__(self.text("vi"))

    def text(self, lang: str) -> str:
        if isinstance(self.message, T):
            return self.message(lang, **self.values)
        return self.message


@dataclass(frozen=True, slots=True)
class Choice:
    """One option of a choice field: ``value`` is stored (a JSON scalar), ``label`` is shown."""

    value: str | int | bool | None
    label: T | str

    def text(self, lang: str) -> str:
        return self.label(lang) if isinstance(self.label, T) else self.label


class Done:
    """How a form (or a command) ends: what to say, and optionally which form to start next.

    ``Done(T(vi="Đã lưu {n} máy.", en="Saved {n} computers."), n=3)``: the text in the person's language.
    ``messages``: more to send (a photo, a document). ``next_form`` starts another registered form at once
    (``next_values`` pre-filled, hidden keys allowed); ``next_pick=True`` opens it at "which field do you
    want to change?" (editing an existing record).
    """

    __slots__ = ("message", "messages", "next_form", "next_values", "next_pick", "values")

    def __init__(
        self,
        message: T | str = "",
        *,
        messages: list[Outgoing] | None = None,
        next_form: str | None = None,
        next_values: dict[str, Any] | None = None,
        next_pick: bool = False,
        **values: object,
    ) -> None:
        self.message = message
        self.messages = list(messages or [])
        self.next_form = next_form
        self.next_values = next_values
        self.next_pick = next_pick
        self.values = values

    def text(self, lang: str) -> str:
        if isinstance(self.message, T):
            return self.message(lang, **self.values)
        return self.message

    def __repr__(self) -> str:
        return f"Done({self.message!r}, next_form={self.next_form!r})"


@dataclass(frozen=True, slots=True)
class Person:
    """The sender, as the engine's fast path reads them (no ORM object). ``ctx.session.get(Staff, id)`` for
    the full row."""

    id: int
    full_name: str
    role: str
    school_id: int | None
    district_id: int | None  # None for a province officer
    language: str = "vi"
    school_level: str | None = None  # TH / THCS, read with the person on the fast path
    province_id: int | None = None  # a province officer's province


Prompt = T | Callable[["FormContext"], str]
Options = Sequence[Choice] | Callable[["FormContext"], Sequence[Choice]]


@dataclass(frozen=True, slots=True)
class Field:
    """One question. Build them with the helpers in ``conversations.fields`` rather than by hand.

    - ``parse(text, ctx)`` (typed kinds) returns the value or raises ``Invalid``.
    - ``options`` (choice kinds): a list or ``ctx -> list`` evaluated when the question is asked; the chosen
      value is validated against what was offered, never trusted from the button.
    - ``when(ctx)``: ask only if true (e.g. the hardship reason only for "khó khăn khác"); answers of fields
      whose condition became false are dropped.
    - ``after(ctx, value)``: runs once the value is accepted; may set other values, raise ``Invalid`` to
      refuse it, or return ``Done`` to end the form right there (without ``on_complete``).
    - ``accept_photo(ctx, data, photo)`` (photo kind): bytes -> JSON value (e.g. a Photo id); raise Invalid.
      ``max_photos > 1`` collects several photos until the person taps "Xong" (value: a list).
    - ``accept_document(ctx, data, document)`` (document kind): bytes -> JSON value; raise Invalid to ask
      again, or return ``Done`` to end the form there (e.g. a list with errors, sent back annotated).
    - ``show(value, ctx)``: the value in the summary; a sensible default exists per kind.
    - ``default(ctx)``: a suggested answer offered as an option (e.g. "Hôm nay (17/11/2021)").
    - ``empty``: for a required choice whose options are empty: the form ends with this message.
    - ``example(ctx)``: the example answer the prompt shows as ``{example}``, computed for this person and
      today (a birth date that fits their school's ages, a class that fits its grades). Every example must
      pass ``parse`` (tests/test_examples.py feeds each one back, for both school levels, on many dates).
    """

    name: str
    kind: Kind
    prompt: Prompt
    label: T
    parse: Callable[[str, FormContext], Any] | None = None
    options: Options | None = None
    required: bool = True
    when: Callable[[FormContext], bool] | None = None
    after: Callable[[FormContext, Any], Done | None] | None = None
    show: Callable[[Any, FormContext], str] | None = None
    accept_photo: Callable[[FormContext, bytes, PhotoInput], Any] | None = None
    accept_document: Callable[[FormContext, bytes, DocumentInput], Any] | None = None
    min_photos: int = 1
    max_photos: int = 1
    default: Callable[[FormContext], tuple[Any, str] | None] | None = None
    empty: T | None = None
    editable: bool = True
    columns: int = 1
    example: Callable[[FormContext], str] | None = None
    in_summary: bool = True  # False: another field's ``show`` already includes this answer

    def prompt_text(self, ctx: FormContext) -> str:
        if not isinstance(self.prompt, T):
            return self.prompt(ctx)
        if self.example is not None:
            return self.prompt(ctx.lang, example=self.example(ctx))
        return self.prompt(ctx.lang)

    def choices(self, ctx: FormContext) -> list[Choice]:
        if self.options is None:
            return []
        return list(self.options(ctx) if callable(self.options) else self.options)

    def applies(self, ctx: FormContext) -> bool:
        return self.when is None or bool(self.when(ctx))


@dataclass(frozen=True, eq=False)
class Form:
    """A conversation the engine walks a person through.

    - ``name``: registry key, stored with the person's progress (keep it stable once deployed).
    - ``command``: the Telegram command that starts it (``/dangky``), or None for forms only reached from
      another form (``Done(next_form=...)``). ``roles``: who may start it.
    - ``start(ctx)``: runs when the form starts; may pre-fill ``ctx.values`` (hidden keys allowed) or
      return ``Done`` to refuse/end at once (e.g. "Không có đăng ký nào chờ duyệt").
    - ``summary``: show every answer with Lưu / Sửa một mục / Hủy before ``on_complete``.
    - ``args_field``: ``/maketoken 0901...``: the command's argument answers this field.
    - ``intro``: said once when the form starts, before the first question.
    - ``aliases``: other command names that start it too (kept when a command is renamed); menus, help and
      Telegram's command list show only ``command``.
    """

    name: str
    title: T
    fields: Sequence[Field]
    on_complete: Callable[[FormContext], Done]
    roles: frozenset[str]
    command: str | None = None
    description: T | None = None
    start: Callable[[FormContext], Done | None] | None = None
    summary: bool = True
    args_field: str | None = None
    intro: T | None = None
    save_label: T | None = None
    aliases: tuple[str, ...] = ()  # older command names that still start this form (``/maketoken``)
    back_to: str | None = None  # "Quay lại" at the first question opens this form (e.g. the /duyet menu)
    # A document sent outside any form starts this form with the document as its first answer (/nhapds).
    takes_documents: bool = False
    # A photo sent outside any form: this hook may recognise it (a signed minutes sheet by its QR code) and
    # return the answers it implies, the stored photo among them; the form then starts with them and asks
    # only what is left. None: not this form's photo (the menu and the usual "no photo expected" note).
    photo_start: Callable[[FormContext, bytes, PhotoInput], dict[str, Any] | None] | None = None

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if len(names) != len(set(names)):
            raise ValueError(f"form {self.name!r}: duplicate field names")
        if self.args_field is not None and self.args_field not in names:
            raise ValueError(f"form {self.name!r}: args_field {self.args_field!r} is not a field")
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def field(self, name: str) -> Field | None:
        return self._by_name.get(name)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Action:
    """A command that answers at once, without questions (``/tonghop``, ``/xuatfile``)."""

    command: str
    description: T
    roles: frozenset[str]
    run: Callable[[FormContext], Done]


class FormContext:
    """What a form sees during one step. Built by the engine; forms only read it (and ``values``)."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        staff: Person,
        programme: Programme,
        clock: Clock,
        now: datetime,
        lang: str,
        values: dict[str, Any],
        photos: PhotoStore | None = None,
        media_dir: Path | None = None,
        channel: str = "",
        web_url: str | None = None,
    ) -> None:
        self._session_factory = session_factory
        self.staff = staff
        self.programme = programme
        self.clock = clock
        self.now = now
        self.lang = lang
        self.values = values
        self.photos = photos
        self.media_dir = media_dir
        self.channel = channel
        self.web_url = web_url  # the web view's public base URL, None when it is off
        self.notifications: list[tuple[int, T | str, dict[str, object]]] = []
        self.rollback_hooks: list[Callable[[], None]] = []

    @cached_property
    def session(self) -> Session:
        """The step's ORM session (inside the step's transaction: flush, never commit)."""
        return self._session_factory()

    @cached_property
    def scope(self) -> Scope:
        from storage.scope import Scope

        return Scope.for_staff(self.staff)  # type: ignore[arg-type]  (Person has the fields Scope reads)

    @cached_property
    def school_level(self) -> str | None:
        """TH / THCS of the person's school (None for a district officer)."""
        if self.staff.school_id is None:
            return None
        if self.staff.school_level is not None:
            return self.staff.school_level
        from storage.models import School

        school = self.session.get(School, self.staff.school_id)
        return school.level if school is not None else None

    @property
    def today(self) -> date:
        return self.now.astimezone(self.programme.tz).date()

    def t(self, text: T, **values: object) -> str:
        return text(self.lang, **values)

    def notify(self, staff_id: int, message: T | str, **values: object) -> None:
        """Tell someone else (e.g. the teacher whose registration was approved), in their language and worded
        for them. Recorded in the outbox in this step's transaction; the deliverer sends it on the chat they
        last linked (or by e-mail), with retries, right after the step commits."""
        self.notifications.append((staff_id, message, values))

    def on_rollback(self, hook: Callable[[], None]) -> None:
        """Undo a side effect outside the database (a photo file written) if the step fails."""
        self.rollback_hooks.append(hook)

    def hold_photo(self, stored: Any) -> None:
        """A photo this step stored for the form (``PhotoStore.ingest``): a new file is deleted if the step's
        transaction rolls back and no committed row uses it; one already on disk (sent before) is marked fresh,
        so the orphan sweep cannot take it from the form holding it."""
        if not stored.is_new:
            self.photos.open_path(stored.path).touch()
            return
        from sqlmodel import Session

        from storage import evidence

        store, engine = self.photos, self.session.get_bind()

        def undo() -> None:
            with Session(engine) as fresh:
                evidence.discard_unreferenced(fresh, store=store, photos=[stored])

        self.on_rollback(undo)
