"""The workbook the district carries into the sector database (csdl.moet.gov.vn has no API: people type or
import from spreadsheets). (Over 500 lines on purpose: each sheet's columns and its streaming query sit
together, one section per sheet, so a column the ministry adds is one edit.)

Four sheets: "Nhu cầu" (a student a row), "Tiếp nhận" (a batch a row), "Bàn giao" (a handover a row) and
"Tổng hợp" (the summary table). Vietnamese headers and labels, real date cells shown dd/mm/yyyy, timestamps
in the programme's time zone, a frozen header row, an autofilter, column widths measured on the data.

Streaming, so 100,000 students cost the same memory as 1,000: XlsxWriter in ``constant_memory`` mode (each
row goes to a temporary file as soon as the next one starts; strings are written inline) and the database
read in chunks (``yield_per``: a server-side cursor on PostgreSQL). Photos for the ZIP are added while the
handover rows stream, so no list of all photos is ever held.

Text that came from people is written with ``write_string`` (never ``write``, which turns "=..." into a
formula) and, when it starts with = + - @ tab or CR, with Excel's quote prefix as well, so even a cell
edited later or a CSV saved from the workbook keeps it as text.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from zoneinfo import ZoneInfo

import xlsxwriter
from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from core.i18n import T
from core.phones import display_phone
from core.programme import Programme
from core.vocabulary import (
    DEVICE_TYPE_LABELS,
    NEED_LABELS,
    REVIEW_STATUS_LABELS,
    SOURCE_LABELS,
    FlagKind,
    Gender,
    HandoverStatus,
    PhotoKind,
    SchoolLevel,
)
from reports.summary import Summary, build_summary
from storage.models import Batch, Device, Flag, Handover, HandoverPhoto, Photo, School, Sponsor, Staff, Student
from storage.scope import Scope

log = logging.getLogger(__name__)

CHUNK = 2000  # rows per database fetch; also the batch of handover ids whose photos and flags are read at once
MAX_WIDTH = 60  # characters; longer text wraps in the cell instead of making the column a screen wide
# What a spreadsheet reads as the start of a formula (and what CSV injection relies on).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class CellKind(Enum):
    TEXT = "text"  # from people: escaped when it looks like a formula
    LABEL = "label"  # ours (enum labels, codes we made): plain string
    NUMBER = "number"
    DATE = "date"  # a calendar date: dd/mm/yyyy
    STAMP = "stamp"  # an aware UTC instant: shown local, dd/mm/yyyy hh:mm


@dataclass(frozen=True)
class Column:
    header: T
    kind: CellKind
    wrap: bool = False  # long free text: wraps in a capped-width column instead of running off the screen


@dataclass
class ExportResult:
    path: Path
    schools: int = 0
    students: int = 0
    batches: int = 0
    handovers: int = 0
    photos: int = 0  # photo files put in the ZIP
    missing_photos: int = 0  # photos in the database whose file is gone from media_dir


# --- labels ------------------------------------------------------------------------------------------------

SHEET_NEEDS = T(vi="Nhu cầu", en="Needs")
SHEET_RECEIPTS = T(vi="Tiếp nhận", en="Receipts")
SHEET_HANDOVERS = T(vi="Bàn giao", en="Handovers")
SHEET_SUMMARY = T(vi="Tổng hợp", en="Summary")

GENDER_LABELS = {Gender.MALE: T(vi="Nam", en="Male"), Gender.FEMALE: T(vi="Nữ", en="Female")}
HANDOVER_STATUS_LABELS = {
    HandoverStatus.ACTIVE: T(vi="Đã bàn giao", en="Handed over"),
    HandoverStatus.WITHDRAWN: T(vi="Đã thu hồi", en="Withdrawn"),
}
LEVEL_LABELS = {
    SchoolLevel.PRIMARY: T(vi="Tiểu học", en="Primary"),
    SchoolLevel.LOWER_SECONDARY: T(vi="THCS", en="Lower secondary"),
}
FLAG_LABELS = {
    FlagKind.PHOTO_REUSED: T(vi="Ảnh đã dùng cho bàn giao khác", en="Photo used for another handover"),
    FlagKind.PHOTO_NEAR_DUPLICATE: T(vi="Ảnh gần trùng ảnh khác", en="Photo nearly identical to another"),
    FlagKind.CAPTURE_TIME: T(vi="Thời điểm chụp bất thường", en="Unusual capture time"),
}
FLAG_RELATED = T(vi=" ({code})", en=" ({code})")
FLAG_RESOLVED = T(vi=" — đã xử lý", en=" — resolved")
PHOTO_MISSING = T(vi=" (thiếu tệp)", en=" (file missing)")
TOTAL = T(vi="Tổng cộng", en="Total")
GENERATED = T(vi="Số liệu lúc", en="Figures as of")
REPORT_NOT_SUBMITTED = T(vi="Chưa chốt", en="Not submitted")
CONSENT_NOT_RECORDED = T(vi="Chưa ghi nhận", en="Not recorded")

NEEDS_COLUMNS = [
    Column(T(vi="Mã định danh", en="Student ID"), CellKind.TEXT),
    Column(T(vi="Họ và tên", en="Full name"), CellKind.TEXT),
    Column(T(vi="Ngày sinh", en="Date of birth"), CellKind.DATE),
    Column(T(vi="Giới tính", en="Gender"), CellKind.LABEL),
    Column(T(vi="Lớp", en="Class"), CellKind.TEXT),
    Column(T(vi="Trường", en="School"), CellKind.TEXT),
    Column(T(vi="Đối tượng", en="Group"), CellKind.LABEL),
    Column(T(vi="Lý do (khó khăn khác)", en="Reason (other hardship)"), CellKind.TEXT, wrap=True),
    Column(T(vi="Nhu cầu", en="Need"), CellKind.LABEL),
    Column(T(vi="Người giám hộ", en="Guardian"), CellKind.TEXT),
    Column(T(vi="SĐT", en="Phone"), CellKind.TEXT),
    Column(T(vi="Trạng thái duyệt", en="Review status"), CellKind.LABEL),
    Column(T(vi="Ngày đăng ký", en="Registered on"), CellKind.STAMP),
    Column(T(vi="Phụ huynh đồng ý ngày", en="Parent's consent on"), CellKind.DATE),
]
RECEIPT_COLUMNS = [
    Column(T(vi="Trường", en="School"), CellKind.TEXT),
    Column(T(vi="Nguồn", en="Source"), CellKind.LABEL),
    Column(T(vi="Nhà tài trợ", en="Sponsor"), CellKind.TEXT),
    Column(T(vi="Người liên hệ", en="Contact person"), CellKind.TEXT),
    Column(T(vi="SĐT", en="Phone"), CellKind.TEXT),
    Column(T(vi="Ngày nhận", en="Received on"), CellKind.DATE),
    Column(T(vi="Số lượng", en="Quantity"), CellKind.NUMBER),
    Column(T(vi="Loại máy", en="Device type"), CellKind.LABEL),
    Column(T(vi="Hãng - model", en="Brand - model"), CellKind.TEXT),
    Column(T(vi="Tình trạng", en="Condition"), CellKind.TEXT),
    Column(T(vi="Đã bàn giao", en="Handed over"), CellKind.NUMBER),
]
HANDOVER_COLUMNS = [
    Column(T(vi="Mã bàn giao", en="Handover"), CellKind.LABEL),
    Column(T(vi="Học sinh", en="Student"), CellKind.TEXT),
    Column(T(vi="Mã định danh", en="Student ID"), CellKind.TEXT),
    Column(T(vi="Lớp", en="Class"), CellKind.TEXT),
    Column(T(vi="Trường", en="School"), CellKind.TEXT),
    Column(T(vi="Loại máy", en="Device type"), CellKind.LABEL),
    Column(T(vi="Hãng - model", en="Brand - model"), CellKind.TEXT),
    Column(T(vi="Số sê-ri", en="Serial"), CellKind.TEXT),
    Column(T(vi="Ngày bàn giao", en="Handed over on"), CellKind.DATE),
    Column(T(vi="Người ghi nhận", en="Recorded by"), CellKind.TEXT),
    Column(T(vi="Hạn cập nhật CSDL", en="Sector database due"), CellKind.DATE),
    Column(T(vi="Đã cập nhật CSDL lúc", en="Sector database confirmed at"), CellKind.STAMP),
    Column(T(vi="Trễ hạn CSDL", en="Late for the sector database"), CellKind.LABEL),
    Column(T(vi="Trạng thái", en="Status"), CellKind.LABEL),
    Column(T(vi="Ảnh (tên tệp)", en="Photos (file names)"), CellKind.TEXT, wrap=True),
    Column(T(vi="Cờ cảnh báo", en="Flags"), CellKind.TEXT, wrap=True),
    Column(T(vi="Biên bản đã ký lúc", en="Signed minutes received at"), CellKind.STAMP),
]


def _summary_columns(summary: Summary) -> list[Column]:
    cats = [
        Column(T(vi=f"Đã duyệt: {vi}", en=f"Approved: {en}"), CellKind.NUMBER)
        for vi, en in summary.category_labels.values()
    ]
    needs = [Column(T(vi=f"Nhu cầu: {t.vi}", en=f"Need: {t.en}"), CellKind.NUMBER) for t in NEED_LABELS.values()]
    return [
        Column(T(vi="Mã trường", en="School code"), CellKind.TEXT),
        Column(T(vi="Trường", en="School"), CellKind.TEXT),
        Column(T(vi="Cấp học", en="Level"), CellKind.LABEL),
        Column(T(vi="Hiệu trưởng", en="Principal"), CellKind.TEXT),
        Column(T(vi="SĐT hiệu trưởng", en="Principal's phone"), CellKind.TEXT),
        Column(T(vi="Học sinh đăng ký", en="Students registered"), CellKind.NUMBER),
        Column(T(vi="Đã duyệt", en="Approved"), CellKind.NUMBER),
        Column(T(vi="Chờ duyệt", en="Waiting for review"), CellKind.NUMBER),
        *cats,
        *needs,
        Column(T(vi="Máy nhận (chương trình)", en="Received (programme)"), CellKind.NUMBER),
        Column(T(vi="Máy nhận (nhà tài trợ khác)", en="Received (other sponsors)"), CellKind.NUMBER),
        Column(T(vi="Đã bàn giao", en="Handed over"), CellKind.NUMBER),
        Column(T(vi="Chờ bàn giao", en="Waiting"), CellKind.NUMBER),
        Column(T(vi="Trễ CSDL: chưa cập nhật", en="Late for the sector database: still open"), CellKind.NUMBER),
        Column(
            T(vi="Trễ CSDL: đã cập nhật sau hạn", en="Late for the sector database: confirmed late"), CellKind.NUMBER
        ),
        Column(T(vi="Ảnh bị gắn cờ", en="Open photo flags"), CellKind.NUMBER),
        Column(T(vi="Chưa có biên bản đã ký", en="Without signed minutes"), CellKind.NUMBER),
        Column(T(vi="Chốt báo cáo nhu cầu lúc", en="Needs report submitted at"), CellKind.STAMP),
    ]


_VN_MOBILE = re.compile(r"\+84([35789]\d{8})")


def phone_cell(e164: str | None) -> str | None:
    """'+84912345678' -> '0912 345 678' as people write it. Vietnamese mobiles (nearly every number here) take a
    fast path with the same result as ``display_phone``, which costs ~80 µs a row through phonenumbers."""
    if not e164:
        return None
    m = _VN_MOBILE.fullmatch(e164)
    if m:
        d = m.group(1)
        return f"0{d[:3]} {d[3:6]} {d[6:]}"
    return display_phone(e164)


def handover_code(handover_id: int) -> str:
    return f"BG{handover_id:06d}"


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9]+")


def photo_file_name(*, handover_id: int, student_code: str, index: int, kind: str, suffix: str) -> str:
    """'BG000123_079215000001_1.jpg' (the minutes: '..._2_bienban.jpg'): named by handover and student, built
    only from characters safe in any file system; the student code is user input and is filtered."""
    code = _UNSAFE_NAME.sub("", student_code)[:20]
    tail = "_bienban" if kind == PhotoKind.MINUTES else ""
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,5}", suffix) else ".jpg"
    return (
        f"{handover_code(handover_id)}_{code}_{index}{tail}{suffix}"
        if code
        else f"{handover_code(handover_id)}_{index}{tail}{suffix}"
    )


# --- a streaming sheet -------------------------------------------------------------------------------------


class _Sheet:
    """One worksheet written top to bottom: header, rows, then frozen header, autofilter and widths."""

    def __init__(
        self, wb: xlsxwriter.Workbook, name: str, columns: Sequence[Column], fmts: dict, *, lang: str, tz: ZoneInfo
    ) -> None:
        self.ws = wb.add_worksheet(name)
        self.kinds = [c.kind for c in columns]
        self.wraps = [c.wrap for c in columns]
        self.fmts = fmts
        # Formats are fixed per cell as it is written (constant_memory flushes rows early), so a wrapping
        # column's cells carry the wrap format themselves.
        self.text_fmts = [fmts["wrap"] if c.wrap else None for c in columns]
        self.quoted_fmts = [fmts["quoted_wrap"] if c.wrap else fmts["quoted"] for c in columns]
        self.tz = tz
        headers = [c.header(lang) for c in columns]
        self.widths = [len(h) for h in headers]
        for c, h in enumerate(headers):
            self.ws.write_string(0, c, h, fmts["header"])
        self.row = 0

    def add(self, values: Sequence[object], *, bold: bool = False) -> None:
        self.row += 1
        r, ws, widths, fmts, tz = self.row, self.ws, self.widths, self.fmts, self.tz
        for c, (kind, v) in enumerate(zip(self.kinds, values)):
            if v is None or v == "":
                continue
            if kind is CellKind.TEXT:
                v = str(v)
                if v.startswith(FORMULA_START):
                    ws.write_string(r, c, v, self.quoted_fmts[c])
                else:
                    ws.write_string(r, c, v, fmts["bold"] if bold else self.text_fmts[c])
                n = len(v)
            elif kind is CellKind.LABEL:
                ws.write_string(r, c, v, fmts["bold"] if bold else None)
                n = len(v)
            elif kind is CellKind.NUMBER:
                ws.write_number(r, c, v, fmts["bold"] if bold else None)
                n = len(str(v))
            elif kind is CellKind.DATE:
                if isinstance(v, str):  # a label in a date column ("Chưa ghi nhận")
                    ws.write_string(r, c, v)
                    n = len(v)
                else:
                    ws.write_datetime(r, c, v, fmts["date"])
                    n = 10
            else:  # CellKind.STAMP
                ws.write_datetime(r, c, v.astimezone(tz).replace(tzinfo=None), fmts["stamp"])
                n = 16
            if n > widths[c]:
                widths[c] = n

    def note(self, label: str, value: datetime) -> None:
        """A line under the table (outside the autofilter): when the figures were taken."""
        self.row += 2
        self.ws.write_string(self.row, 0, label, self.fmts["muted"])
        self.ws.write_datetime(self.row, 1, value.astimezone(self.tz).replace(tzinfo=None), self.fmts["stamp"])

    def close(self, *, filter_rows: int | None = None) -> None:
        ws = self.ws
        last_col = len(self.kinds) - 1
        ws.freeze_panes(1, 0)
        last = filter_rows if filter_rows is not None else self.row
        ws.autofilter(0, 0, max(last, 1), last_col)
        for c, w in enumerate(self.widths):
            # +2 for the autofilter's drop-down button on the header
            ws.set_column(c, c, min(w, MAX_WIDTH) + 2, self.fmts["wrap"] if self.wraps[c] else None)


def _formats(wb: xlsxwriter.Workbook) -> dict:
    return {
        "header": wb.add_format({"bold": True, "bg_color": "#DDEBF7", "border": 1, "valign": "top"}),
        "date": wb.add_format({"num_format": "dd/mm/yyyy", "align": "left"}),
        "stamp": wb.add_format({"num_format": "dd/mm/yyyy hh:mm", "align": "left"}),
        "quoted": wb.add_format({"quote_prefix": True}),
        "quoted_wrap": wb.add_format({"quote_prefix": True, "text_wrap": True, "valign": "top"}),
        "bold": wb.add_format({"bold": True}),
        "muted": wb.add_format({"italic": True, "font_color": "#666666"}),
        "wrap": wb.add_format({"text_wrap": True, "valign": "top"}),
    }


# --- the sheets ---------------------------------------------------------------------------------------------


def _stream(session: Session, stmt) -> Iterator[Sequence]:
    """Rows in chunks of CHUNK: a server-side cursor on PostgreSQL, an unbuffered cursor on SQLite."""
    result = session.connection().execute(stmt.execution_options(yield_per=CHUNK))
    try:
        for part in result.partitions():
            yield part
    finally:
        result.close()


def _write_needs(session: Session, sheet: _Sheet, *, scope: Scope, programme: Programme, lang: str) -> int:
    categories = {c.code: (c.label_en if lang == "en" else c.label_vi) for c in programme.categories}
    genders = {k: v(lang) for k, v in GENDER_LABELS.items()}
    needs = {k: v(lang) for k, v in NEED_LABELS.items()}
    statuses = {k: v(lang) for k, v in REVIEW_STATUS_LABELS.items()}
    stmt = (
        select(
            Student.code,
            Student.full_name,
            Student.birth_date,
            Student.gender,
            Student.class_name,
            School.name,
            Student.category,
            Student.hardship_reason,
            Student.need,
            Student.guardian_name,
            Student.guardian_phone,
            Student.status,
            Student.created_at,
            Student.consent_at,
        )
        .join(School, School.id == Student.school_id)
        .where(scope.filter(Student.school_id))
        .order_by(School.name, School.id, Student.class_name, Student.full_name, Student.id)
    )
    n = 0
    add = sheet.add
    tz = programme.tz
    not_recorded = CONSENT_NOT_RECORDED(lang)
    for part in _stream(session, stmt):
        for code, name, born, gender, klass, school, cat, reason, need, guardian, phone, status, created, ok in part:
            add(
                (
                    code,
                    name,
                    born,
                    genders.get(gender, gender),
                    klass,
                    school,
                    categories.get(cat, cat),
                    reason,
                    needs.get(need, need),
                    guardian,
                    phone_cell(phone),
                    statuses.get(status, status),
                    created,
                    ok.astimezone(tz).date() if ok is not None else not_recorded,
                )
            )
        n += len(part)
    return n


def _write_receipts(session: Session, sheet: _Sheet, *, scope: Scope, lang: str) -> int:
    sources = {k: v(lang) for k, v in SOURCE_LABELS.items()}
    devices = {k: v(lang) for k, v in DEVICE_TYPE_LABELS.items()}
    stmt = (
        select(
            School.name,
            Batch.source,
            Sponsor.name,
            Sponsor.contact_name,
            Sponsor.contact_phone,
            Batch.received_on,
            Batch.quantity,
            Batch.device_type,
            Batch.brand_model,
            Batch.condition,
            Batch.handed_over,
        )
        .join(School, School.id == Batch.school_id)
        .outerjoin(Sponsor, Sponsor.id == Batch.sponsor_id)
        .where(scope.filter(Batch.school_id))
        .order_by(School.name, School.id, Batch.received_on, Batch.id)
    )
    n = 0
    for part in _stream(session, stmt):
        for school, source, sponsor, contact, phone, received_on, qty, device, model, condition, handed in part:
            sheet.add(
                (
                    school,
                    sources.get(source, source),
                    sponsor,
                    contact,
                    phone_cell(phone),
                    received_on,
                    qty,
                    devices.get(device, device),
                    model,
                    condition,
                    handed,
                )
            )
        n += len(part)
    return n


@dataclass
class _PhotoSink:
    """Where the ZIP's photos go while the handover rows stream (None: the workbook alone)."""

    zf: zipfile.ZipFile
    media_dir: Path
    added: int = 0
    missing: int = 0

    def add(self, rel: str, name: str) -> bool:
        from storage.photos import PhotoStore

        try:
            src = PhotoStore(self.media_dir).open_path(rel)
        except ValueError:
            log.warning("export: refusing unsafe photo path %r", rel)
            self.missing += 1
            return False
        if not src.is_file():
            self.missing += 1
            return False
        self.zf.write(src, arcname=f"photos/{name}")
        self.added += 1
        return True


def _write_handovers(
    session: Session,
    sheet: _Sheet,
    *,
    scope: Scope,
    programme: Programme,
    lang: str,
    photos: _PhotoSink | None,
    now: datetime,
) -> int:
    grace = timedelta(hours=programme.deadlines.handover_update_grace_hours)
    devices = {k: v(lang) for k, v in DEVICE_TYPE_LABELS.items()}
    statuses = {k: v(lang) for k, v in HANDOVER_STATUS_LABELS.items()}
    flag_labels = {k: v(lang) for k, v in FLAG_LABELS.items()}
    resolved_txt, missing_txt = FLAG_RESOLVED(lang), PHOTO_MISSING(lang)
    recorder = aliased(Staff)
    stmt = (
        select(
            Handover.id,
            Student.full_name,
            Student.code,
            Student.class_name,
            School.name,
            Batch.device_type,
            Batch.brand_model,
            Device.serial,
            Handover.handed_over_on,
            recorder.full_name,
            Handover.csdl_due_at,
            Handover.csdl_updated_at,
            Handover.status,
            Handover.minutes_signed_at,
        )
        .join(Student, Student.id == Handover.student_id)
        .join(School, School.id == Handover.school_id)
        .join(Batch, Batch.id == Handover.batch_id)
        .join(recorder, recorder.id == Handover.recorded_by)
        .outerjoin(Device, Device.id == Handover.device_id)
        .where(scope.filter(Handover.school_id))
        .order_by(School.name, School.id, Handover.handed_over_on, Handover.id)
    )
    tz = programme.tz
    n = 0
    for part in _stream(session, stmt):
        ids = [row[0] for row in part]
        photo_rows, flag_rows = _photos_and_flags(session, ids, scope=scope)
        for hid, student, code, klass, school, device, model, serial, on, by, due, confirmed, status, signed in part:
            names = []
            for index, (rel, kind) in enumerate(photo_rows.get(hid, ()), start=1):
                # os.path, not PurePosixPath: pathlib interns every path part, which grows with the rows
                name = photo_file_name(
                    handover_id=hid, student_code=code, index=index, kind=kind, suffix=os.path.splitext(rel)[1].lower()
                )
                if photos is not None and not photos.add(rel, name):
                    name += missing_txt
                names.append(name)
            flags = "; ".join(
                flag_labels.get(kind, kind)
                + (FLAG_RELATED(lang, code=handover_code(related)) if related else "")
                + (resolved_txt if resolved else "")
                for kind, related, resolved in flag_rows.get(hid, ())
            )
            # Due is the end of a local day (midnight after it): the sheet shows that day.
            due_day = (due - timedelta(microseconds=1)).astimezone(tz).date() if due else None
            sheet.add(
                (
                    handover_code(hid),
                    student,
                    code,
                    klass,
                    school,
                    devices.get(device, device),
                    model,
                    serial,
                    on,
                    by,
                    due_day,
                    confirmed,
                    _lateness(due, confirmed, now=now, grace=grace, lang=lang)
                    if status == HandoverStatus.ACTIVE
                    else "",
                    statuses.get(status, status),
                    "; ".join(names),
                    flags,
                    signed,
                )
            )
        n += len(part)
    return n


LATE_OPEN = T(vi="Trễ, chưa cập nhật", en="Late, still open")
LATE_DONE = T(vi="Trễ, đã cập nhật sau hạn", en="Late, confirmed after the deadline")


def _lateness(due: datetime | None, confirmed: datetime | None, *, now: datetime, grace: timedelta, lang: str) -> str:
    """The same rule as the summary's counts (``storage.handovers.late_open`` / ``late_confirmed``)."""
    if due is None:
        return ""
    if confirmed is None:
        return LATE_OPEN(lang) if due + grace <= now else ""
    return LATE_DONE(lang) if confirmed >= due + grace else ""


def _photos_and_flags(session: Session, ids: list[int], *, scope: Scope) -> tuple[dict, dict]:
    """The photos and flags of one chunk of handovers, in two queries keyed by handover id."""
    photos: dict[int, list[tuple[str, str]]] = defaultdict(list)
    flags: dict[int, list[tuple[str, int | None, bool]]] = defaultdict(list)
    if not ids:
        return photos, flags
    conn = session.connection()
    for hid, rel, kind in conn.execute(
        select(HandoverPhoto.handover_id, Photo.path, HandoverPhoto.kind)
        .join(Photo, Photo.id == HandoverPhoto.photo_id)
        .where(HandoverPhoto.handover_id.in_(ids))
        # scene photos first, then the minutes, each in the order they were attached
        .order_by(HandoverPhoto.handover_id, HandoverPhoto.kind.desc(), HandoverPhoto.id)
    ):
        photos[hid].append((rel, kind))
    for hid, kind, related, resolved in conn.execute(
        select(Flag.handover_id, Flag.kind, Flag.related_handover_id, Flag.resolved_at.is_not(None))
        .where(Flag.handover_id.in_(ids), scope.filter(Flag.school_id))
        .order_by(Flag.handover_id, Flag.id)
    ):
        flags[hid].append((kind, related, bool(resolved)))
    return photos, flags


def _write_summary(sheet: _Sheet, summary: Summary, *, lang: str) -> None:
    levels = {k: v(lang) for k, v in LEVEL_LABELS.items()}
    cat_codes = list(summary.category_labels)
    need_codes = list(NEED_LABELS)

    def values(s, *, total: bool):
        return (
            None if total else s.code,
            TOTAL(lang) if total else s.name,
            None if total else levels.get(s.level, s.level),
            s.principal_name,
            phone_cell(s.principal_phone),
            s.registered,
            s.approved,
            s.pending,
            *(s.students_by_category.get(c, 0) for c in cat_codes),
            *(s.students_by_need.get(c, 0) for c in need_codes),
            s.received_programme,
            s.received_other,
            s.handed_over,
            s.waiting,
            s.late_csdl,
            s.late_csdl_confirmed,
            s.open_flags,
            s.unsigned_minutes,
            None if total else s.needs_report_submitted_at,
        )

    for s in summary.schools:
        sheet.add(values(s, total=False))
    filter_rows = sheet.row
    if len(summary.schools) > 1:
        sheet.add(values(summary.totals, total=True), bold=True)
    sheet.note(GENERATED(lang), summary.generated_at)
    sheet.close(filter_rows=filter_rows)


# --- the file ------------------------------------------------------------------------------------------------


def export_workbook(
    session: Session,
    *,
    scope: Scope,
    out: Path,
    programme: Programme,
    now: datetime,
    with_photos: bool = False,
    media_dir: Path | None = None,
    lang: str = "vi",
) -> Path:
    """Write the workbook for ``scope`` (a .zip with ``photos/`` when ``with_photos``); returns the path."""
    return write_export(
        session,
        scope=scope,
        out=out,
        programme=programme,
        now=now,
        with_photos=with_photos,
        media_dir=media_dir,
        lang=lang,
    ).path


def write_export(
    session: Session,
    *,
    scope: Scope,
    out: Path,
    programme: Programme,
    now: datetime,
    with_photos: bool = False,
    media_dir: Path | None = None,
    lang: str = "vi",
) -> ExportResult:
    """``export_workbook`` with the row counts (for the command line). The file appears only when complete:
    it is written under a temporary name beside ``out`` and renamed."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    out = Path(out)
    if with_photos:
        if media_dir is None:
            raise ValueError("with_photos needs media_dir")
        if out.suffix.lower() != ".zip":
            out = out.with_suffix(".zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    xlsx_tmp = out.with_name(f".{out.stem}.{secrets.token_hex(4)}.xlsx.part") if with_photos else tmp
    try:
        if with_photos:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
                # JPEGs and the XLSX are compressed already: stored, not deflated again.
                result = _write_workbook(
                    session,
                    xlsx_tmp,
                    scope=scope,
                    programme=programme,
                    now=now,
                    lang=lang,
                    photos=_PhotoSink(zf=zf, media_dir=Path(media_dir)),
                )
                zf.write(xlsx_tmp, arcname=f"{out.stem}.xlsx")
        else:
            result = _write_workbook(session, tmp, scope=scope, programme=programme, now=now, lang=lang, photos=None)
        os.replace(tmp, out)
    finally:
        for leftover in {tmp, xlsx_tmp}:
            leftover.unlink(missing_ok=True)
    result.path = out
    log.info(
        "export: %s (%d schools, %d students, %d batches, %d handovers, %d photos, %d missing)",
        out.name,
        result.schools,
        result.students,
        result.batches,
        result.handovers,
        result.photos,
        result.missing_photos,
    )
    return result


def _write_workbook(
    session: Session,
    path: Path,
    *,
    scope: Scope,
    programme: Programme,
    now: datetime,
    lang: str,
    photos: _PhotoSink | None,
) -> ExportResult:
    tz = programme.tz
    summary = build_summary(session, scope=scope, programme=programme, now=now)
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "tmpdir": str(path.parent)})
    try:
        # Set explicitly: XlsxWriter would otherwise stamp the file with the wall clock.
        wb.set_properties(
            {
                "title": f"{SHEET_SUMMARY(lang)} — {summary.title}",
                "created": now.astimezone(tz).replace(tzinfo=None),
                "comments": programme.programme.name,
            }
        )
        fmts = _formats(wb)

        def sheet(name: T, columns: Sequence[Column]) -> _Sheet:
            return _Sheet(wb, name(lang), columns, fmts, lang=lang, tz=tz)

        # Added in the order people read them; each is written completely before the next.
        needs = sheet(SHEET_NEEDS, NEEDS_COLUMNS)
        receipts = sheet(SHEET_RECEIPTS, RECEIPT_COLUMNS)
        handovers = sheet(SHEET_HANDOVERS, HANDOVER_COLUMNS)
        table = sheet(SHEET_SUMMARY, _summary_columns(summary))
        result = ExportResult(path=path, schools=len(summary.schools))
        result.students = _write_needs(session, needs, scope=scope, programme=programme, lang=lang)
        needs.close()
        result.batches = _write_receipts(session, receipts, scope=scope, lang=lang)
        receipts.close()
        result.handovers = _write_handovers(
            session, handovers, scope=scope, programme=programme, lang=lang, photos=photos, now=now
        )
        handovers.close()
        _write_summary(table, summary, lang=lang)
    finally:
        wb.close()
    if photos is not None:
        result.photos, result.missing_photos = photos.added, photos.missing
    return result
