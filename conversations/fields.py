"""Field kinds and the parsers behind them: what a teacher may type for a name, a date, a class, a code.
(Over 500 lines on purpose: every parser and its field constructor sit together, so a rule about what
is accepted is read and changed in one place.)

Each parser takes the typed text (and the form context, for rules that depend on the school or today's
date) and returns a clean value or raises ``Invalid`` with a Vietnamese message that says what is wrong
and what is expected, so the second try succeeds. Constructors (``text_field``, ``date_field``, ...) build
``Field`` objects with the right kind and defaults.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

from conversations.forms.base import Choice, Done, Field, FormContext, Invalid, Kind, Options, Prompt
from core.clock import fmt_date
from core.i18n import T
from core.messages import PhotoInput, esc
from core.text import fmt_int, fold, nfc

# --- parsers --------------------------------------------------------------------------------------------

_VI_BASE = set("abcdefghijklmnopqrstuvwxyzđ")
_DATE = re.compile(r"^\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})\s*[/.\-]\s*(\d{4})\s*$")
_CLASS = re.compile(r"^(\d{1,2})(?:\s*([/.\-])\s*(\d{1,2})|\s*([A-Z]{1,2}\d{0,2}))$")

NAME_HINT = T(vi="Ví dụ: Nguyễn Văn An", en="Example: Nguyễn Văn An")
NAME_EXAMPLE = "Nguyễn Văn An"
# A clearly made-up number (never a real person's, such as the district contact's) that still passes the
# phone check, so a person who copies it sees the format accepted.
PHONE_EXAMPLE = "0912 345 678"

Example = Callable[[FormContext], str] | str | None


def _example_fn(example: Example) -> Callable[[FormContext], str] | None:
    if example is None or callable(example):
        return example
    return lambda _ctx: example


def _is_vi_letter(ch: str) -> bool:
    base = unicodedata.normalize("NFD", ch.lower())[0]
    return base in _VI_BASE


def parse_person_name(text: str, _ctx: FormContext | None = None, *, min_words: int = 2, max_words: int = 7) -> str:
    """'nguyễn văn AN' -> 'Nguyễn Văn An'. Vietnamese letters only, 2-7 words."""
    name = nfc(text)
    if not name:
        raise Invalid(T(vi="Vui lòng nhập họ và tên.", en="Please type the full name."))
    bad = sorted({ch for ch in name if ch != " " and not _is_vi_letter(ch)})
    if bad:
        shown = " ".join(esc(ch) for ch in bad[:5])
        raise Invalid(
            T(
                vi="Họ tên chỉ gồm chữ cái tiếng Việt, không có số, ký hiệu hay biểu tượng "
                "(thấy: {bad}). Ví dụ: Nguyễn Văn An",
                en="A name has Vietnamese letters only, no digits, symbols or emoji (found: {bad}). "
                "Example: Nguyễn Văn An",
            ),
            bad=shown,
        )
    words = name.split(" ")
    if not min_words <= len(words) <= max_words:
        raise Invalid(
            T(
                vi="Họ tên cần từ {lo} đến {hi} chữ (họ, tên đệm, tên). Ví dụ: Nguyễn Văn An",
                en="A full name has {lo} to {hi} words. Example: Nguyễn Văn An",
            ),
            lo=min_words,
            hi=max_words,
        )
    if any(len(w) > 12 for w in words):
        raise Invalid(
            T(vi="Có một chữ quá dài; vui lòng kiểm tra lại họ tên.", en="One word is too long; please check the name.")
        )
    return " ".join(w[:1].upper() + w[1:].lower() for w in words)


def date_example(ctx: FormContext | None) -> str:
    """A date in the right shape that a past-date question accepts: yesterday (today on the first day)."""
    if ctx is None:
        return "05/09/2021"
    day = ctx.today - timedelta(days=1)
    start = ctx.programme.start_date
    return fmt_date(max(day, min(start, ctx.today)))


def parse_date(text: str, ctx: FormContext | None = None, *, example: str | None = None) -> date:
    """dd/mm/yyyy (also d/m/yyyy, with - or . as separators); a real calendar date."""
    m = _DATE.match(text or "")
    if not m:
        raise Invalid(
            T(
                vi="Ngày «{v}» chưa đúng dạng. Vui lòng gõ ngày/tháng/năm, ví dụ {ex}.",
                en="“{v}” is not a date. Please type day/month/year, e.g. {ex}.",
            ),
            v=esc(text.strip()[:30]),
            ex=example or date_example(ctx),
        )
    d, mth, y = (int(g) for g in m.groups())
    if not 1 <= mth <= 12:
        raise Invalid(
            T(
                vi="Tháng {m} không tồn tại (tháng từ 1 đến 12). Ngày gõ theo dạng dd/mm/yyyy.",
                en="There is no month {m} (1 to 12). Dates are dd/mm/yyyy.",
            ),
            m=mth,
        )
    try:
        return date(y, mth, d)
    except ValueError:
        raise Invalid(
            T(
                vi="Ngày {v} không có trên lịch (tháng {m}/{y} không có ngày {d}).",
                en="{v} is not a calendar date (month {m}/{y} has no day {d}).",
            ),
            v=esc(text.strip()),
            m=mth,
            y=y,
            d=d,
        ) from None


def parse_past_date(text: str, ctx: FormContext) -> date:
    """A date that is today or earlier (receipts, handovers)."""
    value = parse_date(text, ctx)
    if value > ctx.today:
        raise Invalid(
            T(vi="Ngày {v} ở tương lai (hôm nay là {t}).", en="{v} is in the future (today is {t})."),
            v=fmt_date(value),
            t=fmt_date(ctx.today),
        )
    return value


def parse_programme_date(text: str, ctx: FormContext) -> date:
    """A past date within the programme: not before the programme's start (the programme file's
    ``[programme] start``), so 01/01/2000 typed for a receipt is refused with the first allowed day."""
    value = parse_past_date(text, ctx)
    start = ctx.programme.start_date
    if value < start:
        raise Invalid(
            T(
                vi="Ngày {v} trước khi chương trình «{name}» bắt đầu ({s}). Vui lòng kiểm tra lại ngày "
                "(từ {s} đến hôm nay, {t}).",
                en="{v} is before the programme “{name}” started ({s}). Please check the date ({s} to today, {t}).",
            ),
            v=fmt_date(value),
            name=esc(ctx.programme.programme.name),
            s=fmt_date(start),
            t=fmt_date(ctx.today),
        )
    return value


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


# Plausible ages of pupils, by school level; wide enough for late starters and repeaters.
SCHOOL_AGES = {"TH": (5, 12), "THCS": (10, 17)}
SCHOOL_GRADES = {"TH": (1, 5), "THCS": (6, 9)}


def birth_date_example(ctx: FormContext) -> str:
    """A birth date that fits the person's school today: a pupil in the middle of the level's age range."""
    lo, hi = SCHOOL_AGES.get(ctx.school_level or "", (5, 17))
    age = (lo + hi) // 2  # age_on() may say one less before the birthday: still inside [lo, hi]
    return fmt_date(date(ctx.today.year - age, 9, 5))


def parse_birth_date(text: str, ctx: FormContext) -> date:
    value = parse_date(text, ctx, example=birth_date_example(ctx))
    if value > ctx.today:
        raise Invalid(
            T(
                vi="Ngày sinh {v} ở tương lai (hôm nay là {t}). Vui lòng kiểm tra lại.",
                en="Birth date {v} is in the future (today is {t}).",
            ),
            v=fmt_date(value),
            t=fmt_date(ctx.today),
        )
    level = ctx.school_level
    lo, hi = SCHOOL_AGES.get(level or "", (5, 17))
    age = age_on(value, ctx.today)
    if not lo <= age <= hi:
        raise Invalid(
            T(
                vi="Với ngày sinh {v}, em {a} tuổi — không phải tuổi học sinh {lvl} (khoảng {lo}–{hi} "
                "tuổi). Vui lòng kiểm tra lại năm sinh.",
                en="Born {v}, the pupil is {a} — not a {lvl} school age (about {lo}-{hi}).",
            ),
            v=fmt_date(value),
            a=age,
            lvl=level or "phổ thông",
            lo=lo,
            hi=hi,
        )
    return value


CLASS_EXAMPLES = {"TH": "3A, 4/2, 5B", "THCS": "7A1, 8/2, 9B"}


def class_example(ctx: FormContext | None) -> str:
    """Classes that exist at the person's school level (a primary school has no 6A1)."""
    level = ctx.school_level if ctx is not None else None
    return CLASS_EXAMPLES.get(level or "", "5B, 7A1, 8/2")


def parse_class_name(text: str, ctx: FormContext | None = None) -> str:
    """'6a1' -> '6A1', '3/2', '10A', 'Lớp 5B' -> '5B'. A grade and a section; the grade fits the school."""
    raw = nfc(text).upper()
    raw = re.sub(r"^(LỚP|LOP)\s*", "", raw)
    m = _CLASS.match(raw)
    if not m:
        raise Invalid(
            T(
                vi="Lớp «{v}» chưa đúng dạng. Gõ khối và lớp, ví dụ: {ex}.",
                en="“{v}” is not a class. Type grade and section, e.g. {ex}.",
            ),
            v=esc(text.strip()[:20]),
            ex=class_example(ctx),
        )
    grade = int(m.group(1))
    level = ctx.school_level if ctx is not None else None
    lo, hi = SCHOOL_GRADES.get(level or "", (1, 12))
    if not lo <= grade <= hi:
        raise Invalid(
            T(
                vi="Khối {g} không có ở trường {lvl} (khối {lo}–{hi}). Ví dụ: {lo}A1.",
                en="Grade {g} is not taught at a {lvl} school (grades {lo}-{hi}).",
            ),
            g=grade,
            lvl=level or "",
            lo=lo,
            hi=hi,
        )
    if m.group(2):
        return f"{grade}/{int(m.group(3))}"
    return f"{grade}{m.group(4)}"


def parse_student_code(text: str, _ctx: FormContext | None = None) -> str:
    """Mã định danh: digits only, 10 or 12 of them (spaces and dots people add are ignored)."""
    code = re.sub(r"[\s.\-]", "", text or "")
    if not code.isdigit() or not code.isascii():
        raise Invalid(
            T(
                vi="Mã định danh chỉ gồm chữ số (10 hoặc 12 số), không có chữ cái. Bạn gõ: «{v}».",
                en="The student code has digits only (10 or 12). You typed “{v}”.",
            ),
            v=esc(text.strip()[:30]),
        )
    if len(code) not in (10, 12):
        raise Invalid(
            T(
                vi="Mã định danh cần 10 hoặc 12 chữ số; mã bạn gõ có {n} số.",
                en="The student code has 10 or 12 digits; yours has {n}.",
            ),
            n=len(code),
        )
    return code


def parse_phone(text: str, _ctx: FormContext | None = None) -> str:
    from core.phones import normalize_phone

    try:
        return normalize_phone(text)
    except ValueError:
        raise Invalid(
            T(
                vi="Số điện thoại «{v}» không hợp lệ. Ví dụ: {ex}.",
                en="“{v}” is not a valid phone number. Example: {ex}.",
            ),
            v=esc(text.strip()[:30]),
            ex=PHONE_EXAMPLE,
        ) from None


def int_parser(*, minimum: int = 1, maximum: int = 10_000) -> Callable[[str, FormContext], int]:
    def parse(text: str, ctx: FormContext | None = None) -> int:
        lang = ctx.lang if ctx is not None else "vi"
        raw = re.sub(r"[\s.,]", "", text or "")
        if not re.fullmatch(r"[+-]?[0-9]+", raw):
            raise Invalid(
                T(vi="Vui lòng gõ một số nguyên, ví dụ: {ex}.", en="Please type a whole number, e.g. {ex}."),
                ex=fmt_int(max(minimum, min(10, maximum)), lang),
            )
        n = int(raw)
        if n < minimum:
            raise Invalid(
                T(vi="Số phải từ {lo} trở lên (bạn gõ {n}).", en="The number must be at least {lo} (you typed {n})."),
                lo=fmt_int(minimum, lang),
                n=fmt_int(n, lang),
            )
        if n > maximum:
            raise Invalid(
                T(vi="Số {n} quá lớn (tối đa {hi}). Vui lòng kiểm tra lại.", en="{n} is too large (at most {hi})."),
                n=fmt_int(n, lang),
                hi=fmt_int(maximum, lang),
            )
        return n

    return parse


parse_quantity = int_parser(minimum=1, maximum=10_000)


def text_parser(*, min_len: int = 2, max_len: int = 500) -> Callable[[str, FormContext], str]:
    def parse(text: str, _ctx: FormContext | None = None) -> str:
        value = nfc(text or "")
        if len(value) < min_len:
            raise Invalid(
                T(vi="Câu trả lời quá ngắn (ít nhất {n} ký tự).", en="Too short (at least {n} characters)."), n=min_len
            )
        if len(value) > max_len:
            raise Invalid(
                T(
                    vi="Câu trả lời quá dài ({n} ký tự; tối đa {m}). Vui lòng viết gọn hơn.",
                    en="Too long ({n} characters; at most {m}).",
                ),
                n=len(value),
                m=max_len,
            )
        return value

    return parse


# --- constructors -------------------------------------------------------------------------------------------


def text_field(
    name: str,
    prompt: Prompt,
    label: T,
    *,
    parse: Callable[[str, FormContext], Any] | None = None,
    required: bool = True,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
    max_len: int = 500,
    show: Callable[[Any, FormContext], str] | None = None,
    editable: bool = True,
    example: Example = None,
    in_summary: bool = True,
) -> Field:
    return Field(
        in_summary=in_summary,
        example=_example_fn(example),
        name=name,
        kind=Kind.TEXT,
        prompt=prompt,
        label=label,
        parse=parse or text_parser(max_len=max_len),
        required=required,
        when=when,
        after=after,
        show=show,
        editable=editable,
    )


def number_field(
    name: str,
    prompt: Prompt,
    label: T,
    *,
    minimum: int = 1,
    maximum: int = 10_000,
    required: bool = True,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
    example: Example = None,
) -> Field:
    return Field(
        example=_example_fn(example),
        name=name,
        kind=Kind.NUMBER,
        prompt=prompt,
        label=label,
        parse=int_parser(minimum=minimum, maximum=maximum),
        required=required,
        when=when,
        after=after,
    )


def date_field(
    name: str,
    prompt: Prompt,
    label: T,
    *,
    parse: Callable[[str, FormContext], date] = parse_date,
    required: bool = True,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
    default_today: bool = False,
    example: Example = None,
) -> Field:
    default = None
    if default_today:

        def default(ctx: FormContext) -> tuple[Any, str]:
            return ctx.today, ctx.t(T(vi="Hôm nay ({d})", en="Today ({d})"), d=fmt_date(ctx.today))

    return Field(
        example=_example_fn(example),
        name=name,
        kind=Kind.DATE,
        prompt=prompt,
        label=label,
        parse=parse,
        required=required,
        when=when,
        after=after,
        default=default,
    )


def phone_field(
    name: str,
    prompt: Prompt,
    label: T,
    *,
    required: bool = True,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
    example: Example = None,
) -> Field:
    from core.phones import display_phone

    return Field(
        example=_example_fn(example),
        name=name,
        kind=Kind.PHONE,
        prompt=prompt,
        label=label,
        parse=parse_phone,
        required=required,
        when=when,
        after=after,
        show=lambda v, _ctx: display_phone(v),
    )


def choice_field(
    name: str,
    prompt: Prompt,
    label: T,
    options: Options,
    *,
    required: bool = True,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
    empty: T | None = None,
    columns: int = 1,
    editable: bool = True,
    show: Callable[[Any, FormContext], str] | None = None,
) -> Field:
    return Field(
        name=name,
        kind=Kind.CHOICE,
        prompt=prompt,
        label=label,
        options=options,
        required=required,
        when=when,
        after=after,
        empty=empty,
        columns=columns,
        editable=editable,
        show=show,
    )


def multi_field(
    name: str,
    prompt: Prompt,
    label: T,
    options: Options,
    *,
    required: bool = True,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
) -> Field:
    return Field(
        name=name,
        kind=Kind.MULTI,
        prompt=prompt,
        label=label,
        options=options,
        required=required,
        when=when,
        after=after,
    )


def confirm_field(
    name: str,
    prompt: Prompt,
    label: T,
    *,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
    yes: T | None = None,
    no: T | None = None,
    editable: bool = False,
) -> Field:
    options = [Choice(True, yes or T(vi="Có", en="Yes")), Choice(False, no or T(vi="Không", en="No"))]
    return Field(
        name=name,
        kind=Kind.CONFIRM,
        prompt=prompt,
        label=label,
        options=options,
        when=when,
        after=after,
        columns=2,
        editable=editable,
    )


def photo_field(
    name: str,
    prompt: Prompt,
    label: T,
    *,
    accept: Callable[[FormContext, bytes, PhotoInput], Any] | None = None,
    required: bool = True,
    min_photos: int = 1,
    max_photos: int = 1,
    when: Callable[[FormContext], bool] | None = None,
    after: Callable[[FormContext, Any], Done | None] | None = None,
) -> Field:
    return Field(
        name=name,
        kind=Kind.PHOTO,
        prompt=prompt,
        label=label,
        accept_photo=accept or store_photo,
        required=required,
        min_photos=min_photos,
        max_photos=max_photos,
        when=when,
        after=after,
    )


def store_photo(ctx: FormContext, data: bytes, photo: PhotoInput) -> int:
    """Default photo acceptor: normalise and store through the photo store, reuse or insert the Photo row,
    and remove a newly written file again if the step's transaction fails. Returns the Photo id."""
    from sqlmodel import select

    from conversations.refusals import refusal
    from storage.models import Photo
    from storage.photos import PhotoRejected, PhotoStoreError

    if ctx.photos is None:
        raise Invalid(
            T(
                vi="Máy chủ chưa được cấu hình nơi lưu ảnh; vui lòng báo quản trị viên.",
                en="The server has no photo storage configured; please tell the administrator.",
            )
        )
    try:
        stored = ctx.photos.ingest(data, mime_type=photo.mime_type, file_name=photo.file_name)
    except (PhotoRejected, PhotoStoreError) as exc:
        raise Invalid(refusal(exc, ctx.lang)) from None
    row = ctx.session.exec(select(Photo).where(Photo.sha256 == stored.sha256)).first()
    if row is None:
        row = Photo(
            sha256=stored.sha256,
            dhash=stored.dhash,
            path=stored.path,
            thumb_path=stored.thumb_path,
            width=stored.width,
            height=stored.height,
            size_bytes=stored.size_bytes,
            captured_at=stored.captured_at,
            had_location=stored.had_location,
            uploaded_by=ctx.staff.id,
            created_at=ctx.now,
        )
        ctx.session.add(row)
        ctx.session.flush()
        store = ctx.photos
        ctx.on_rollback(lambda: store.discard(stored))
    return int(row.id)


# --- display ---------------------------------------------------------------------------------------------------


def show_value(field: Field, value: Any, ctx: FormContext, label: str | None = None) -> str:
    """How an answer looks in the summary (HTML-escaped)."""
    if value is None:
        return ctx.t(T(vi="(bỏ qua)", en="(skipped)"))
    if field.show is not None:
        return esc(field.show(value, ctx))
    if label is not None:
        return esc(label)
    if field.kind == Kind.CHOICE:  # a pre-filled value (editing a record): the label of the option it matches
        for c in field.choices(ctx):
            if c.value == value:
                return esc(c.text(ctx.lang))
    if isinstance(value, date):
        return fmt_date(value)
    if isinstance(value, bool):
        return ctx.t(T(vi="Có", en="Yes")) if value else ctx.t(T(vi="Không", en="No"))
    if field.kind == Kind.PHOTO:
        n = len(value) if isinstance(value, list) else 1
        return ctx.t(T(vi="{n} ảnh", en="{n} photo(s)"), n=n)
    if isinstance(value, list):
        return esc(", ".join(str(v) for v in value))
    return esc(value)


def choices_from(pairs: Sequence[tuple[Any, T | str]]) -> list[Choice]:
    return [Choice(value, label) for value, label in pairs]


def folded_contains(haystack: str, needle: str) -> bool:
    return fold(needle) in fold(haystack)
