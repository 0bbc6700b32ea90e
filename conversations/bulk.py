"""Class lists sent as spreadsheets: read the file safely, find the header row, check every row with the very
fields of /dangky (``conversations.forms.register.STUDENT_FIELDS``: a rule changed there changes here), and
write back the annotated copy and the template.

Used by the /nhapds form (``conversations/forms/importing.py``) and ``fieldbot students import``.

Safety: the file is at most ``programme.imports.max_bytes``; an XLSX (a ZIP of XML) is inspected with
``zipfile`` before openpyxl opens it (entry count, total uncompressed size, compression ratio: a zip bomb is
refused unread); openpyxl parses XML through defusedxml (installed as a dependency), so entity tricks
(billion laughs, external entities) raise instead of expanding; the sheet is read in read-only mode, at most
``MAX_COLS`` columns and ``max_rows`` pupils. Whatever goes wrong, the person gets one line (``FileRefused``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conversations.fields import parse_student_code
from conversations.forms.base import Choice, Field, FormContext, Invalid, Kind, Person
from core.clock import fmt_date
from core.i18n import T
from core.messages import plain_text
from core.text import fold, match_label, nfc

if TYPE_CHECKING:
    from sqlmodel import Session

    from core.programme import Programme

MAX_COLS = 40
HEADER_SCAN_ROWS = 30
MAX_SHEETS = 10
MAX_ZIP_ENTRIES = 2000
MAX_UNZIPPED_BYTES = 60 * 1024 * 1024
# The annotated copy opens the person's workbook fully (styles, comments): above this much XML it is rebuilt
# from the values already read instead, so a heavy file cannot cost a gigabyte of memory.
ANNOTATE_IN_PLACE_MAX = 15 * 1024 * 1024
MAX_RATIO = 150  # a real sheet compresses ~5-30x; a bomb compresses 1000x
RATIO_CHECK_FROM = 1024 * 1024  # small entries (styles, shared strings of 10 names) may compress well
SPREADSHEET_EXTENSIONS = (".xlsx", ".xlsm", ".csv", ".xls", ".ods", ".txt")
EXAMPLE_MARK = "Ví dụ"

# --- columns --------------------------------------------------------------------------------------------------

# Header variants people use, folded (no accents, lower case); text in parentheses is ignored ("Ngày sinh
# (dd/mm/yyyy)" is "ngay sinh").
CONSENT = "consent_on"
ALIASES: dict[str, tuple[str, ...]] = {
    "full_name": ("ho va ten", "ho ten", "ten hoc sinh", "ho va ten hoc sinh", "ho ten hoc sinh", "ho ten hs"),
    "birth_date": ("ngay sinh", "ngay thang nam sinh", "ngay sinh hoc sinh", "sinh ngay"),
    "class_name": ("lop", "lop hoc"),
    "code": ("ma dinh danh", "ma hoc sinh", "ma so", "ma hs", "ma dinh danh hoc sinh", "ma so hoc sinh", "ma ddcn"),
    "gender": ("gioi tinh", "gioi"),
    "category": ("doi tuong", "dien", "dien doi tuong", "dien hoc sinh", "doi tuong ho tro"),
    "hardship_reason": ("ly do", "ly do kho khan", "hoan canh", "hoan canh kho khan", "ly do hoan canh"),
    "need": ("nhu cau", "nhu cau ho tro", "can ho tro"),
    "guardian_name": (
        "nguoi giam ho",
        "phu huynh",
        "ho ten phu huynh",
        "ten phu huynh",
        "cha me",
        "ho ten cha me",
        "ho ten nguoi giam ho",
    ),
    "guardian_phone": (
        "sdt",
        "so dien thoai",
        "dien thoai",
        "sdt phu huynh",
        "dien thoai phu huynh",
        "sdt nguoi giam ho",
        "so dien thoai phu huynh",
        "so dien thoai nguoi giam ho",
        "dt",
    ),
    "note": ("ghi chu",),
    # Not a /dangky field: the day the guardian's consent was obtained on paper (issue 19). Optional; a blank
    # cell leaves the pupil "consent not recorded", completed later with /dongy.
    CONSENT: (
        "ngay phu huynh dong y",
        "phu huynh dong y",
        "phu huynh dong y ngay",
        "ngay dong y",
        "dong y cua phu huynh",
        "ngay dong y cua phu huynh",
        "ngay nguoi giam ho dong y",
        "nguoi giam ho dong y",
    ),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
_PARENS = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_SCI = re.compile(r"^\s*\d+(?:[.,]\d+)?\s*[eE]\s*\+?\s*\d+\s*$")

# Characters of the Latin-1 block that Vietnamese never uses, but that text typed in the old TCVN3 (ABC) and
# VNI fonts shows when read as Unicode ("NguyÔn V¨n An", "Nguyeãn Vaên An" has ã/ê but also ö ñ ø ...).
_LEGACY_CHARS = frozenset("¡¢£¤¥¦§¨©ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿ÄÅÆÇËÎÏÐÑÖ×ØÛÜÞßäåæçëîïðñö÷øûüþÿ")
# TCVN3 also maps some letters onto Vietnamese capitals: a capital after a small letter in one word ("yÔn").
_LEGACY_CAPITAL = re.compile(r"[a-zđ][ÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝĂĐƠƯ]")


_LEGACY_ANY = re.compile("[" + re.escape("".join(sorted(_LEGACY_CHARS))) + "]")


def looks_legacy(text: str) -> bool:
    """Text typed in TCVN3/VNI fonts, read as Unicode."""
    if text.isascii():
        return False
    return bool(_LEGACY_ANY.search(text) or _LEGACY_CAPITAL.search(text))


def header_field(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    key = fold(_PARENS.sub(" ", value))
    return _ALIAS_TO_FIELD.get(key)


# --- messages -------------------------------------------------------------------------------------------------


class FileRefused(Exception):
    """The whole file cannot be used: one line for the person."""

    def __init__(self, message: T, **values: object) -> None:
        self.message, self.values = message, values
        super().__init__(message("vi", **values))

    def text(self, lang: str = "vi") -> str:
        return self.message(lang, **self.values)


TOO_BIG = T(
    vi="Tệp quá lớn ({size}; tối đa {max}). Hãy chia danh sách thành nhiều tệp nhỏ hơn.",
    en="The file is too large ({size}; at most {max}). Please split the list into smaller files.",
)
OLD_XLS = T(
    vi="Tệp Excel 97–2003 (.xls) chưa đọc được. Trong Excel chọn Tệp → Lưu thành → «Excel Workbook (.xlsx)» rồi "
    "gửi lại.",
    en="Old Excel 97-2003 files (.xls) cannot be read. Save it as “Excel Workbook (.xlsx)” and send it again.",
)
NOT_A_SHEET = T(
    vi="Tệp «{name}» không phải bảng tính Excel (.xlsx) hay CSV. Vui lòng gửi danh sách dạng .xlsx "
    "(gõ /maunhap để lấy tệp mẫu).",
    en="“{name}” is not an Excel (.xlsx) or CSV file. Please send the list as .xlsx (/maunhap gives a template).",
)
HOSTILE = T(
    vi="Tệp «{name}» bị hỏng hoặc có cấu trúc bất thường nên không được mở ({why}). Không có gì được lưu. Hãy "
    "mở tệp bằng Excel, lưu lại thành .xlsx rồi gửi lại.",
    en="“{name}” is damaged or built in an unusual way, so it was not opened ({why}). Nothing was saved. Open "
    "it in Excel, save it as .xlsx and send it again.",
)
NO_HEADER = T(
    vi="Không tìm thấy dòng tiêu đề trong tệp. Cần các cột như «Họ và tên», «Ngày sinh», «Lớp», «Mã định danh»"
    ", «Giới tính», «Đối tượng», «Nhu cầu». Gõ /maunhap để lấy tệp mẫu.",
    en="No header row found. The list needs columns such as “Họ và tên”, “Ngày sinh”, “Lớp”, “Mã định danh”, "
    "“Giới tính”, “Đối tượng”, “Nhu cầu”. /maunhap gives a template.",
)
MISSING_COLUMNS = T(
    vi="Tệp thiếu cột: {cols}. Hãy thêm các cột này (tiêu đề ở dòng {row}) hoặc dùng tệp mẫu /maunhap.",
    en="Missing column(s): {cols}. Add them (headers are on row {row}) or use the /maunhap template.",
)
LEGACY = T(
    vi="Tệp dùng bảng mã cũ TCVN3 (ABC) hoặc VNI, không phải Unicode (ô {cell}: «{sample}»). Hãy chuyển sang "
    "Unicode rồi gửi lại: trong Unikey bấm Ctrl+Shift+F6 (Công cụ chuyển mã), chọn nguồn TCVN3 hoặc VNI, đích "
    "Unicode; hoặc gõ lại bằng phông Unicode (Times New Roman, Arial).",
    en="The file uses the old TCVN3 (ABC) or VNI encoding, not Unicode (cell {cell}: “{sample}”). Convert it to "
    "Unicode (Unikey: Ctrl+Shift+F6, from TCVN3 or VNI to Unicode) and send it again.",
)
TOO_MANY_ROWS = T(
    vi="Tệp có hơn {max} dòng học sinh (tối đa {max} dòng mỗi lần). Hãy chia danh sách thành nhiều tệp.",
    en="The file has more than {max} pupil rows (at most {max} at a time). Please split it.",
)
NO_ROWS = T(
    vi="Tệp có dòng tiêu đề nhưng chưa có học sinh nào (dòng ví dụ được bỏ qua).",
    en="The file has a header row but no pupils (the example row is skipped).",
)
UNREADABLE_TEXT = T(
    vi="Không đọc được chữ trong tệp CSV. Hãy lưu lại bằng «CSV UTF-8» hoặc gửi tệp .xlsx.",
    en="The CSV text could not be read. Save it as “CSV UTF-8” or send the .xlsx file.",
)

MISSING = T(vi="Thiếu {label}.", en="{label} is missing.")
MISSING_REASON_COLUMN = T(
    vi="Đối tượng «{v}» cần ghi lý do, nhưng tệp không có cột «Lý do».",
    en="Group “{v}” needs a reason, but the file has no “Lý do” column.",
)
NOT_A_CHOICE = T(
    vi="«{v}» không khớp {label} nào. Chọn một trong: {labels}.",
    en="“{v}” matches no {label}. Use one of: {labels}.",
)
CODE_SCI = T(
    vi="Mã định danh «{v}» đã bị Excel đổi thành dạng số mũ (E+) và mất các chữ số cuối. Hãy định dạng cột Mã "
    "là Văn bản (Text) rồi gõ lại mã đầy đủ.",
    en="Excel turned the student code into “{v}” (scientific notation) and lost its last digits. Format the "
    "column as Text and type the full code again.",
)
CODE_LOST_ZERO = T(
    vi="Mã định danh «{v}» chỉ có {n} chữ số: Excel coi mã là một số nên đã bỏ số 0 ở đầu (có lẽ mã là {fixed}). "
    "Hãy định dạng cột Mã là Văn bản (Text) rồi gõ lại mã có số 0 ở đầu.",
    en="The student code “{v}” has only {n} digits: Excel read it as a number and dropped the leading zero "
    "(probably {fixed}). Format the column as Text and type the code with its leading zero.",
)
CODE_TOO_LONG_NUMBER = T(
    vi="Mã định danh «{v}» là một số quá dài nên Excel đã làm tròn. Hãy định dạng cột Mã là Văn bản (Text) rồi gõ "
    "lại mã.",
    en="The student code “{v}” is a number too long for Excel, which rounded it. Format the column as Text.",
)
CLASS_AS_DATE = T(
    vi="Excel đã đổi lớp thành ngày ({v}). Hãy định dạng cột Lớp là Văn bản (Text) rồi gõ lại, ví dụ 3/2.",
    en="Excel turned the class into a date ({v}). Format the column as Text and type it again, e.g. 3/2.",
)
BAD_SERIAL = T(
    vi="Ngày sinh «{v}» là một số, không phải ngày. Gõ ngày/tháng/năm, ví dụ 05/09/2012.",
    en="Birth date “{v}” is a number, not a date. Type day/month/year, e.g. 05/09/2012.",
)
DUP_CODE_IN_FILE = T(
    vi="Mã định danh {code} trùng với dòng {row} trong tệp.", en="Student code {code} repeats row {row} of the file."
)
SAME_IN_FILE = T(
    vi="Trùng họ tên và ngày sinh với dòng {row} (mã khác). Lưu danh sách nghĩa là xác nhận đây là hai em khác nhau.",
    en="Same name and birth date as row {row} (another code). Saving confirms these are two different pupils.",
)
SAME_IN_DB = T(
    vi="Trường đã có em {name}, sinh ngày {dob}, lớp {cls}, mã {code}. Lưu danh sách nghĩa là xác nhận đây là em "
    "khác (trùng họ tên và ngày sinh).",
    en="The school already has {name}, born {dob}, class {cls}, code {code}. Saving confirms this is a different "
    "pupil with the same name and birth date.",
)


# --- reading --------------------------------------------------------------------------------------------------


@dataclass
class Sheet:
    """The rows of one sheet, as read: (row number in the sheet, cell values), header row found."""

    name: str  # the sheet's name (an XLSX) or the file's (a CSV)
    kind: str  # "xlsx" or "csv"
    header_row: int
    columns: dict[str, int]  # field name -> 1-based column
    headers: dict[int, str]  # 1-based column -> header text as written
    rows: list[tuple[int, list[Any]]]
    skipped_example: bool = False
    file_name: str = ""
    header_values: list[Any] = field(default_factory=list)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KB"


def read_sheet(data: bytes, *, file_name: str | None, max_rows: int, max_bytes: int) -> Sheet:
    """The pupils' rows of a class list (XLSX or CSV), or ``FileRefused``."""
    name = (file_name or "tệp").strip()[:80]
    if len(data) > max_bytes:
        raise FileRefused(TOO_BIG, size=_size(len(data)), max=_size(max_bytes))
    if data[:4] == b"PK\x03\x04":
        sheet = _read_xlsx(data, name=name, max_rows=max_rows)
        sheet.file_name = name
        return sheet
    if data[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        raise FileRefused(OLD_XLS)
    lower = name.lower()
    if lower.endswith((".csv", ".txt")) or (not lower.endswith(SPREADSHEET_EXTENSIONS) and _looks_text(data)):
        sheet = _read_csv(data, name=name, max_rows=max_rows)
        sheet.file_name = name
        return sheet
    raise FileRefused(NOT_A_SHEET, name=name)


def _looks_text(data: bytes) -> bool:
    head = data[:4096]
    return b"\x00" not in head and bool(head.strip())


def _check_zip(data: bytes, name: str) -> None:
    """Refuse a ZIP that would unpack to far more than it weighs, before any XML is parsed."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise FileRefused(HOSTILE, name=name, why=f"ZIP hỏng: {str(exc)[:60]}") from None
    if len(infos) > MAX_ZIP_ENTRIES:
        raise FileRefused(HOSTILE, name=name, why=f"{len(infos)} tệp con")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > RATIO_CHECK_FROM and info.file_size > MAX_RATIO * max(1, info.compress_size):
            raise FileRefused(HOSTILE, name=name, why="tỉ lệ nén bất thường — có thể là «bom ZIP»")
    if total > MAX_UNZIPPED_BYTES:
        raise FileRefused(HOSTILE, name=name, why=f"giải nén ra {_size(total)}")


def _read_xlsx(data: bytes, *, name: str, max_rows: int) -> Sheet:
    _check_zip(data, name)
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True, keep_links=False)
    except FileRefused:
        raise
    except Exception as exc:  # defusedxml's EntitiesForbidden, KeyError for a missing part, bad XML ...
        raise FileRefused(HOSTILE, name=name, why=_why(exc)) from None
    try:
        legacy: tuple[str, str] | None = None
        for ws in wb.worksheets[:MAX_SHEETS]:
            if not hasattr(ws, "iter_rows"):
                continue
            try:
                rows = ws.iter_rows(min_row=1, max_col=MAX_COLS, values_only=True)
                sheet = _from_rows(enumerate(rows, start=1), name=ws.title, kind="xlsx", max_rows=max_rows)
            except FileRefused:
                raise
            except _NoHeader as nh:
                legacy = legacy or nh.legacy
                continue
            except Exception as exc:
                raise FileRefused(HOSTILE, name=name, why=_why(exc)) from None
            return sheet
    finally:
        wb.close()
    if legacy is not None:
        raise FileRefused(LEGACY, cell=legacy[0], sample=legacy[1])
    raise FileRefused(NO_HEADER)


def _why(exc: BaseException) -> str:
    """A few words on what was wrong, from the exception chain (openpyxl wraps defusedxml's refusals)."""
    seen: BaseException | None = exc
    while seen is not None:
        name = type(seen).__name__
        if name in ("EntitiesForbidden", "DTDForbidden", "ExternalReferenceForbidden", "NotSupportedError"):
            return "có khai báo thực thể XML (DTD) — dấu hiệu tệp độc hại"
        seen = seen.__cause__ or seen.__context__
    return f"XML không hợp lệ: {type(exc).__name__}"


def _decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1258")  # "CSV" saved by Excel on a Vietnamese Windows
    except UnicodeDecodeError:
        raise FileRefused(UNREADABLE_TEXT) from None


def _read_csv(data: bytes, *, name: str, max_rows: int) -> Sheet:
    text = _decode(data)
    first = text[:4096]
    delimiter = max((";", ",", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = ([v if v != "" else None for v in row[:MAX_COLS]] for row in reader)
    try:
        return _from_rows(enumerate(rows, start=1), name=name, kind="csv", max_rows=max_rows)
    except _NoHeader as nh:
        if nh.legacy:
            raise FileRefused(LEGACY, cell=nh.legacy[0], sample=nh.legacy[1]) from None
        raise FileRefused(NO_HEADER) from None
    except csv.Error as exc:
        raise FileRefused(HOSTILE, name=name, why=str(exc)[:60]) from None


class _NoHeader(Exception):
    def __init__(self, legacy: tuple[str, str] | None) -> None:
        self.legacy = legacy


def cell_ref(row: int, col: int) -> str:
    from openpyxl.utils import get_column_letter

    return f"{get_column_letter(col)}{row}"


def _from_rows(rows: Iterator[tuple[int, Sequence[Any]]], *, name: str, kind: str, max_rows: int) -> Sheet:
    header_row, columns, headers = 0, {}, {}
    legacy: tuple[str, str] | None = None
    for number, values in rows:
        found: dict[str, int] = {}
        texts: dict[int, str] = {}
        for c, v in enumerate(values, start=1):
            f = header_field(v)
            if f is not None and f not in found:
                found[f] = c
                texts[c] = nfc(str(v))
            elif isinstance(v, str) and legacy is None and looks_legacy(v):
                legacy = (cell_ref(number, c), v.strip()[:40])
        if "full_name" in found and len(found) >= 3:
            header_row, columns, headers = number, found, texts
            header_values = [_clean(v) for v in values]
            break
        if number >= HEADER_SCAN_ROWS:
            break
    if not header_row:
        raise _NoHeader(legacy)
    out: list[tuple[int, list[Any]]] = []
    skipped_example = False
    width = max(columns.values())  # columns right of the last one we read are never looked at
    for number, values in rows:
        cells = [_clean(v) for v in values[:width]]
        if all(v is None for v in cells):
            continue
        first = cells[0] if cells else None
        if isinstance(first, str) and fold(first) == fold(EXAMPLE_MARK):
            skipped_example = True
            continue
        if len(out) >= max_rows:
            raise FileRefused(TOO_MANY_ROWS, max=max_rows)
        out.append((number, cells))
    return Sheet(
        name=name,
        kind=kind,
        header_row=header_row,
        columns=columns,
        headers=headers,
        rows=out,
        skipped_example=skipped_example,
        header_values=header_values,
    )


def _clean(value: Any) -> Any:
    """Spaces trimmed, NFD -> NFC; empty text -> None."""
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value).replace("\u200b", "").replace("\ufeff", "").strip()
        return value or None
    return value


# --- checking -------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    row: int
    col: int
    column: str  # the header as written in the file
    message: str  # plain text, in the person's language

    def line(self, lang: str = "vi") -> str:
        from openpyxl.utils import get_column_letter

        where = T(vi="Dòng {r}, cột {c} ({h})", en="Row {r}, column {c} ({h})")(
            lang, r=self.row, c=get_column_letter(self.col), h=self.column
        )
        return f"{where}: {self.message}"


@dataclass
class Checked:
    sheet: Sheet
    rows: list[dict[str, Any]] = field(default_factory=list)  # clean values of the rows without problems
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def bad_rows(self) -> int:
        return len({p.row for p in self.problems})

    @property
    def total(self) -> int:
        return len(self.sheet.rows)

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows)


def student_fields() -> list[Field]:
    """The fields of /dangky's pupil record, in order (imported late: the form module imports storage)."""
    from conversations.forms.register import STUDENT_FIELDS

    return list(STUDENT_FIELDS)


def check_context(
    *,
    session: Session,
    programme: Programme,
    now: datetime,
    school_id: int,
    school_level: str | None,
    lang: str = "vi",
) -> FormContext:
    """A form context for checking rows as if each were typed into /dangky at ``school_id``."""
    person = Person(
        id=0, full_name="", role="teacher", school_id=school_id, district_id=0, language=lang, school_level=school_level
    )
    return FormContext(
        session_factory=lambda: session,
        staff=person,
        programme=programme,
        clock=None,  # type: ignore[arg-type]  (parsers read ctx.today, never a clock)
        now=now,
        lang=lang,
        values={},
    )


def _choice_labels(f: Field, ctx: FormContext) -> tuple[list[str], list[Any], list[Choice], dict[str, Any]]:
    choices = f.choices(ctx)
    labels: list[str] = []
    values: list[Any] = []
    for c in choices:
        for text in {c.text("vi"), c.text("en"), str(c.value)}:
            labels.append(text)
            values.append(c.value)
    exact: dict[str, set[Any]] = {}
    for label, value in zip(labels, values):
        exact.setdefault(fold(label), set()).add(value)
    unique = {k: next(iter(v)) for k, v in exact.items() if len(v) == 1}  # the same answer match_label gives first
    return labels, values, choices, unique


def _as_text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return fmt_date(value.date())
    if isinstance(value, date):
        return fmt_date(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


EXCEL_EPOCH = date(1899, 12, 30)


def _birth_text(value: Any) -> str:
    if isinstance(value, bool):
        raise Invalid(BAD_SERIAL, v=str(value))
    if isinstance(value, (int, float)):
        # An Excel serial day number (dates typed into a "General" column of a CSV or a sheet read raw).
        if 3000 < value < 80000:
            return fmt_date(EXCEL_EPOCH + timedelta(days=int(value)))
        raise Invalid(BAD_SERIAL, v=_as_text(value, "birth_date"))
    return _as_text(value, "birth_date")


def _consent_day(raw: Any, ctx: FormContext) -> date:
    """The consent column: a date as the birth date is read (text, a date cell, an Excel serial), today or
    earlier and not before the programme started."""
    from conversations.fields import parse_programme_date

    return parse_programme_date(_birth_text(raw), ctx)


def _code_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and (not value.is_integer() or value >= 1e15):
            raise Invalid(CODE_TOO_LONG_NUMBER, v=repr(value))
        digits = str(int(value))
        if len(digits) in (9, 11):
            raise Invalid(CODE_LOST_ZERO, v=digits, n=len(digits), fixed="0" + digits)
        return digits
    text = str(value)
    if _SCI.match(text):
        raise Invalid(CODE_SCI, v=text.strip())
    digits = re.sub(r"[\s.\-]", "", text)
    if digits.isascii() and digits.isdigit() and len(digits) in (9, 11) and text.strip().isdigit():
        # Text, but a CSV saved from Excel after the zero was lost: the same explanation helps.
        raise Invalid(CODE_LOST_ZERO, v=digits, n=len(digits), fixed="0" + digits)
    return text


def check_sheet(sheet: Sheet, ctx: FormContext) -> Checked:
    """Every row through /dangky's parsers; duplicates in the file and against the database."""
    from conversations.refusals import refusal
    from storage import students

    lang = ctx.lang
    fields = student_fields()
    result = Checked(sheet=sheet)
    cols = sheet.columns
    missing = [f for f in fields if f.required and f.when is None and f.name not in cols]
    if missing:
        raise FileRefused(MISSING_COLUMNS, cols=", ".join(f"«{f.label('vi')}»" for f in missing), row=sheet.header_row)
    choice_cache = {f.name: _choice_labels(f, ctx) for f in fields if f.kind in (Kind.CHOICE, Kind.CONFIRM)}

    # TCVN3 / VNI text in the name-like columns: refuse the file (every name would be garbage). Free text
    # (reason, note) may hold a ° or a ± legitimately, so it is not scanned.
    scanned = [c for name, c in cols.items() if name not in ("hardship_reason", "note")]
    for number, cells in sheet.rows:
        for c in scanned:
            v = cells[c - 1] if c - 1 < len(cells) else None
            if isinstance(v, str) and looks_legacy(v):
                raise FileRefused(LEGACY, cell=cell_ref(number, c), sample=v[:40])

    columns = {f.name: sheet.headers.get(cols[f.name], "") if f.name in cols else f.label(lang) for f in fields}
    parsed: list[tuple[int, dict[str, Any]]] = []
    for number, cells in sheet.rows:
        ctx.values = {}
        row_ok = True
        for f in fields:
            c = cols.get(f.name)
            raw = cells[c - 1] if c is not None and c - 1 < len(cells) else None
            column = columns[f.name]
            if f.when is not None and not f.applies(ctx):
                continue
            if raw is None or (isinstance(raw, str) and not raw.strip()):
                if f.required:
                    if c is None:  # the reason column is absent but this group needs one
                        cat_col = cols["category"]
                        result.problems.append(
                            Problem(
                                number,
                                cat_col,
                                sheet.headers.get(cat_col, ""),
                                MISSING_REASON_COLUMN(lang, v=str(cells[cat_col - 1])),
                            )
                        )
                    else:
                        result.problems.append(Problem(number, c, column, MISSING(lang, label=f"«{f.label(lang)}»")))
                    row_ok = False
                ctx.values[f.name] = None
                continue
            assert c is not None
            try:
                value = _parse_cell(f, raw, ctx, choice_cache)
            except Invalid as exc:
                result.problems.append(Problem(number, c, column, plain_text(exc.text(lang))))
                row_ok = False
                continue
            ctx.values[f.name] = value
        consent_on = None
        c = cols.get(CONSENT)
        raw = cells[c - 1] if c is not None and c - 1 < len(cells) else None
        if c is not None and not (raw is None or (isinstance(raw, str) and not raw.strip())):
            try:
                consent_on = _consent_day(raw, ctx)
            except Invalid as exc:
                result.problems.append(Problem(number, c, sheet.headers.get(c, ""), plain_text(exc.text(lang))))
                row_ok = False
        if row_ok:
            parsed.append((number, {**{f.name: ctx.values.get(f.name) for f in fields}, CONSENT: consent_on}))
    ctx.values = {}

    # Duplicates: inside the file, then against the database (a few queries for the whole list).
    code_col = cols["code"]
    seen_code: dict[str, int] = {}
    seen_person: dict[tuple[str, date], int] = {}
    clean: list[tuple[int, dict[str, Any]]] = []
    for number, values in parsed:
        code = values["code"]
        if code in seen_code:
            result.problems.append(
                Problem(
                    number, code_col, sheet.headers[code_col], DUP_CODE_IN_FILE(lang, code=code, row=seen_code[code])
                )
            )
            continue
        seen_code[code] = number
        key = (fold(values["full_name"]), values["birth_date"])
        if key in seen_person:
            name_col = cols["full_name"]
            result.warnings.append(
                Problem(number, name_col, sheet.headers[name_col], SAME_IN_FILE(lang, row=seen_person[key]))
            )
        else:
            seen_person[key] = number
        clean.append((number, values))
    school_id = ctx.staff.school_id or 0
    owners = students.code_owners(ctx.session, codes=[v["code"] for _, v in clean])
    same = students.same_name_and_birth_many(
        ctx.session, school_id=school_id, people=[(v["full_name"], v["birth_date"]) for _, v in clean]
    )
    for number, values in clean:
        owner = owners.get(values["code"])
        if owner is not None:
            result.problems.append(
                Problem(
                    number,
                    code_col,
                    sheet.headers[code_col],
                    # Worded exactly as /dangky words it (conversations/refusals.py).
                    plain_text(
                        refusal(
                            students.DuplicateCode(code=values["code"], school_name=owner[0], registered_on=owner[1]),
                            lang,
                        )
                    ),
                )
            )
            continue
        existing = same.get((fold(values["full_name"]), values["birth_date"]))
        if existing is not None:
            name_col = cols["full_name"]
            result.warnings.append(
                Problem(
                    number,
                    name_col,
                    sheet.headers[name_col],
                    SAME_IN_DB(
                        lang,
                        name=existing.full_name,
                        dob=fmt_date(existing.birth_date),
                        cls=existing.class_name,
                        code=existing.code,
                    ),
                )
            )
        result.rows.append(values)
    result.problems.sort(key=lambda p: (p.row, p.col))
    result.warnings.sort(key=lambda p: (p.row, p.col))
    if result.problems:
        result.rows = []  # all or nothing: a list with errors is fixed and sent again, never half-saved
    return result


_NO_HIT = object()


def _parse_cell(f: Field, raw: Any, ctx: FormContext, choice_cache: dict[str, Any]) -> Any:
    if f.kind in (Kind.CHOICE, Kind.CONFIRM):
        labels, values, choices, exact = choice_cache[f.name]
        text = _as_text(raw, f.name)
        hit = exact.get(fold(text), _NO_HIT)
        if hit is not _NO_HIT:
            return hit
        m = match_label(text, labels, by_number=False)
        picked = {values[i] for i in m.indexes}
        if len(picked) == 1:
            return picked.pop()
        raise Invalid(
            NOT_A_CHOICE,
            v=text[:40],
            label=f"«{f.label(ctx.lang)}»",
            labels="; ".join(c.text(ctx.lang) for c in choices),
        )
    if f.name == "code":
        return parse_student_code(_code_text(raw), ctx)
    if f.name == "birth_date":
        text = _birth_text(raw)
    elif f.name == "class_name" and isinstance(raw, datetime | date):
        raise Invalid(CLASS_AS_DATE, v=_as_text(raw, f.name))
    else:
        text = _as_text(raw, f.name)
    return f.parse(text, ctx) if f.parse is not None else text


# --- the reply ------------------------------------------------------------------------------------------------

SUMMARY = T(
    vi="📋 Tệp «{name}»: <b>{ok} em hợp lệ, {bad} dòng có lỗi</b> (trên {total} dòng).",
    en="📋 “{name}”: <b>{ok} valid, {bad} row(s) with errors</b> (of {total}).",
)
MORE = T(vi="… và {n} lỗi khác (xem tệp đính kèm).", en="… and {n} more (see the attached file).")
FIX_AND_RESEND = T(
    vi="Các ô có lỗi được tô đỏ và có ghi chú trong tệp đính kèm. Sửa rồi gửi lại tệp vào đây; chưa có gì được lưu.",
    en="Cells with errors are red, with a comment, in the attached file. Fix them and send the file again; "
    "nothing was saved.",
)
WARNINGS_HEAD = T(vi="⚠️ Cần bạn xác nhận:", en="⚠️ Please confirm:")
EXAMPLE_SKIPPED = T(vi="(Đã bỏ qua dòng «Ví dụ» của tệp mẫu.)", en="(The template's example row was skipped.)")


def valid_count(checked: Checked) -> int:
    return checked.total - checked.bad_rows


def report_lines(checked: Checked, lang: str = "vi", *, limit: int | None = 30) -> list[str]:
    """The summary line, then one line per problem (``limit`` of them), plain text (HTML-escaped)."""
    from core.messages import esc

    lines = [
        SUMMARY(
            lang,
            name=esc(checked.sheet.file_name or checked.sheet.name),
            ok=valid_count(checked),
            bad=checked.bad_rows,
            total=checked.total,
        )
    ]
    shown = checked.problems if limit is None else checked.problems[:limit]
    lines += [f"• {esc(p.line(lang))}" for p in shown]
    if limit is not None and len(checked.problems) > limit:
        lines.append(MORE(lang, n=len(checked.problems) - limit))
    if checked.warnings and not checked.problems:
        lines.append(WARNINGS_HEAD(lang))
        shown_w = checked.warnings if limit is None else checked.warnings[:limit]
        lines += [f"• {esc(p.line(lang))}" for p in shown_w]
        if limit is not None and len(checked.warnings) > limit:
            lines.append(MORE(lang, n=len(checked.warnings) - limit))
    if checked.sheet.skipped_example:
        lines.append(EXAMPLE_SKIPPED(lang))
    return lines


# --- the annotated copy ------------------------------------------------------------------------------------------

ERROR_FILL = "FFC7CE"
WARNING_FILL = "FFEB9C"
ERRORS_COLUMN = T(vi="Lỗi cần sửa (fieldbot)", en="Errors to fix (fieldbot)")


def _unzipped_size(data: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sum(i.file_size for i in zf.infolist())


def annotate(data: bytes, checked: Checked, out: Path, *, lang: str = "vi") -> Path:
    """A copy of the person's workbook with each faulty cell red and commented (warnings yellow) and, after the
    last column, the row's errors in words (comments are hard to read on a phone). A CSV becomes an XLSX."""
    from openpyxl import Workbook, load_workbook
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill

    sheet = checked.sheet
    if sheet.kind == "xlsx" and _unzipped_size(data) <= ANNOTATE_IN_PLACE_MAX:
        wb = load_workbook(io.BytesIO(data), keep_links=False)
        ws = wb[sheet.name]
    elif sheet.kind == "xlsx":
        wb = Workbook()
        ws = wb.active
        ws.title = sheet.name[:31]
        for r, values in [(sheet.header_row, sheet.header_values), *sheet.rows]:
            for c, v in enumerate(values, start=1):
                if v is not None:
                    cell = ws.cell(r, c)
                    cell.value = v
                    if isinstance(v, str):
                        cell.data_type = "s"
    else:
        wb = Workbook()
        ws = wb.active
        ws.title = "Danh sách"
        text = _decode(data)
        delimiter = max((";", ",", "\t"), key=text[:4096].count)
        for r, row in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1):
            for c, v in enumerate(row[:MAX_COLS], start=1):
                if v != "":
                    cell = ws.cell(r, c)
                    cell.value = v
                    cell.data_type = "s"  # never a formula, whatever the text starts with
    red = PatternFill("solid", start_color=ERROR_FILL, end_color=ERROR_FILL)
    yellow = PatternFill("solid", start_color=WARNING_FILL, end_color=WARNING_FILL)
    by_row: dict[int, list[str]] = {}
    for items, fill in ((checked.warnings, yellow), (checked.problems, red)):
        for p in items:
            cell = ws.cell(p.row, p.col)
            cell.fill = fill
            old = cell.comment.text + "\n" if cell.comment is not None and cell.comment.author == "fieldbot" else ""
            comment = Comment(old + p.message, "fieldbot")
            comment.width, comment.height = 300, 120
            cell.comment = comment
            by_row.setdefault(p.row, []).append(f"{cell_ref(p.row, p.col)}: {p.message}")
    last = max([c for c in sheet.headers] + [1])
    note_col = max(ws.max_column, last) + 1
    head = ws.cell(sheet.header_row, note_col)
    head.value = ERRORS_COLUMN(lang)
    head.font = Font(bold=True, color="9C0006")
    for r, messages in by_row.items():
        cell = ws.cell(r, note_col)
        cell.value = " | ".join(messages)
        cell.data_type = "s"
    wb.save(out)
    return out


# --- the template -------------------------------------------------------------------------------------------------

TEMPLATE_TITLE = T(
    vi="DANH SÁCH HỌC SINH CẦN HỖ TRỢ — «{programme}»",
    en="PUPILS IN NEED — “{programme}”",
)
TEMPLATE_HINT = T(
    vi="Mỗi em một dòng, từ dòng {first}. Ngày sinh gõ ngày/tháng/năm (05/09/2012). Mã định danh 10 hoặc 12 chữ "
    "số (cột đã để dạng Văn bản để giữ số 0 ở đầu). Giới tính, Đối tượng, Nhu cầu: chọn trong danh sách. Dòng "
    "«Ví dụ» được bỏ qua khi nhập.",
    en="One pupil a row, from row {first}. Birth date as day/month/year (05/09/2012). Student code: 10 or 12 "
    "digits (the column is Text, so leading zeros stay). Gender, Group, Need: pick from the list. The "
    "“Ví dụ” row is skipped.",
)
TEMPLATE_HEADERS: list[tuple[str | None, str, int]] = [
    (None, "STT", 6),
    ("full_name", "Họ và tên", 24),
    ("birth_date", "Ngày sinh (dd/mm/yyyy)", 14),
    ("class_name", "Lớp", 7),
    ("code", "Mã định danh", 15),
    ("gender", "Giới tính", 9),
    ("category", "Đối tượng", 26),
    ("hardship_reason", "Lý do (bắt buộc với «Khó khăn khác»)", 30),
    ("need", "Nhu cầu", 14),
    ("guardian_name", "Người giám hộ", 22),
    ("guardian_phone", "SĐT người giám hộ", 15),
    ("note", "Ghi chú", 24),
    (CONSENT, "Ngày phụ huynh đồng ý (dd/mm/yyyy)", 16),
]
TEXT_COLUMNS = ("birth_date", "class_name", "code", "guardian_phone", CONSENT)


def example_row(ctx: FormContext) -> dict[str, str]:
    """One row that passes /dangky's checks at a school of the person's level, as text."""
    today = ctx.today
    level = ctx.school_level or "TH"
    grade = 5 if level == "TH" else 6
    birth = date(today.year - 11, 9, 5)
    fields = {f.name: f for f in student_fields()}
    first = {f: fields[f].choices(ctx)[0].text("vi") for f in ("gender", "category", "need")}
    return {
        "full_name": "Nguyễn Văn An",
        "birth_date": fmt_date(birth),
        "class_name": f"{grade}A1",
        "code": "0123456789",
        "gender": first["gender"],
        "category": first["category"],
        "hardship_reason": "",
        "need": first["need"],
        "guardian_name": "Nguyễn Văn Bình",
        "guardian_phone": "0912345678",
        "note": "",
        CONSENT: fmt_date(today),
    }


def write_template(ctx: FormContext, out: Path, *, max_rows: int) -> Path:
    """The class-list template: a title (merged) and a hint above the headers, dropdowns for the choice columns
    with the programme's labels (from a hidden sheet), text-formatted date/code/phone columns, one example row."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    wb = Workbook()
    ws = wb.active
    ws.title = "Danh sách"
    lists = wb.create_sheet("DanhMuc")
    lists.sheet_state = "hidden"
    header_row, first_row = 3, 4
    last_row = first_row + max_rows
    ncols = len(TEMPLATE_HEADERS)
    ws.cell(1, 1, TEMPLATE_TITLE(ctx.lang, programme=ctx.programme.programme.name)).font = Font(bold=True, size=13)
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=ncols)
    ws.cell(2, 1, TEMPLATE_HINT(ctx.lang, first=first_row + 1)).alignment = Alignment(wrap_text=True, vertical="top")
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=ncols)
    ws.row_dimensions[2].height = 48
    fields = {f.name: f for f in student_fields()}
    example = example_row(ctx)
    head_fill = PatternFill("solid", start_color="DDEBF7", end_color="DDEBF7")
    for c, (name, header, width) in enumerate(TEMPLATE_HEADERS, start=1):
        cell = ws.cell(header_row, c, header)
        cell.font, cell.fill = Font(bold=True), head_fill
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        letter = get_column_letter(c)
        ws.column_dimensions[letter].width = width
        if name in TEXT_COLUMNS:
            for r in range(first_row, min(last_row, first_row + 2000) + 1):
                ws.cell(r, c).number_format = "@"
        if name in fields and fields[name].kind == Kind.CHOICE:
            labels = [ch.text("vi") for ch in fields[name].choices(ctx)]
            lists.cell(1, c, header)
            for i, label in enumerate(labels, start=2):
                lists.cell(i, c, label)
            ref = f"DanhMuc!${letter}$2:${letter}${len(labels) + 1}"
            dv = DataValidation(
                type="list",
                formula1=ref,
                allow_blank=True,
                showErrorMessage=True,
                errorTitle=header,
                error="Chọn một giá trị trong danh sách.",
                promptTitle=header,
                prompt="Chọn trong danh sách",
            )
            dv.add(f"{letter}{first_row}:{letter}{last_row}")
            ws.add_data_validation(dv)
        if name == "birth_date":
            dv = DataValidation(
                type="custom",
                formula1=f'OR({letter}{first_row}="",ISNUMBER(DATEVALUE({letter}{first_row})),LEN({letter}{first_row})=10)',
                allow_blank=True,
                showInputMessage=True,
                promptTitle="Ngày sinh",
                prompt="Gõ ngày/tháng/năm, ví dụ 05/09/2012",
            )
            dv.showErrorMessage = False
            dv.add(f"{letter}{first_row}:{letter}{last_row}")
            ws.add_data_validation(dv)
        value = EXAMPLE_MARK if name is None else example.get(name, "")
        if value:
            cell = ws.cell(first_row, c, value)
            cell.data_type = "s"
            cell.font = Font(italic=True, color="808080")
    ws.freeze_panes = ws.cell(first_row, 3)
    wb.save(out)
    return out


def annotated_name(file_name: str | None) -> str:
    """'lop 5A.xlsx' -> 'lop-5a-can-sua.xlsx': our own ASCII name, never the user's text as a path."""
    stem = Path(file_name or "danh-sach").stem
    slug = re.sub(r"[^a-z0-9]+", "-", fold(stem)).strip("-")[:40] or "danh-sach"
    return f"{slug}-can-sua.xlsx"
