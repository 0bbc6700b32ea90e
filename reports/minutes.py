"""Printable minutes (biên bản) as PDF: one A4 page per handover (biên bản bàn giao) or per batch received
(biên bản tiếp nhận), pre-filled, ready to print and sign.

Every sheet has the national header, the place and date line, the title, the programme and the letter it
implements, both sides, a device table, the commitments and signature blocks with the names printed under
them; its code (``BG000123`` / ``TN000012``) and a QR code of that code sit in the footer of every page, so
a signed scan can be matched to its record. The wording comes from the programme file (``[minutes]``), so a
district can adjust it without touching code; the document is always in Vietnamese (it is an official paper).

Text is set in DejaVu Sans, embedded (subset) from matplotlib's bundled fonts — no download, every
Vietnamese letter covered, and the text stays extractable with its diacritics (NFC, one code point per
letter). fpdf2 writes the PDF; segno makes the QR code.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from pathlib import Path

import matplotlib
import segno
from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from core.phones import display_phone
from core.programme import Programme
from core.vocabulary import DEVICE_TYPE_LABELS, HandoverStatus, Role, Source
from storage.models import Batch, Device, District, Handover, School, Sponsor, Staff, Student
from storage.scope import Scope

# fpdf2 subsets fonts with fontTools, which logs each step at INFO: thirty lines a PDF in the bot's log.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONTS = {"": "DejaVuSans.ttf", "B": "DejaVuSans-Bold.ttf", "I": "DejaVuSans-Oblique.ttf"}
FAMILY = "DejaVu"
# What a Vietnamese official paper needs: Latin with every Vietnamese letter (precomposed and combining
# marks), dashes, quotes, the ellipsis, the đồng sign. DejaVu has ~6,000 glyphs; parsing and subsetting all of
# them cost ~0.8 s a document, a font cut down to these ranges once per process costs a few ms.
UNICODE_RANGES = (
    (0x0020, 0x007E),
    (0x00A0, 0x024F),
    (0x0300, 0x0323),
    (0x1EA0, 0x1EF9),
    (0x2010, 0x2027),
    (0x20AB, 0x20AB),
    (0x2116, 0x2116),
)

# A4 portrait, millimetres. The footer band (code + QR) is kept free of flowing text by the page-break margin.
MARGIN_L, MARGIN_R, MARGIN_T = 20.0, 15.0, 12.0
QR_SIDE = 20.0
FOOTER_H = QR_SIDE + 10.0
BODY_PT, SMALL_PT = 11.0, 9.0
LINE = 5.6  # line height for 11 pt


class MinutesNotFound(Exception):
    """No such handover or batch in the asker's scope (one message for both: no probing other schools)."""


# --- what a sheet says ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceRow:
    kind: str
    model: str
    serial: str
    condition: str
    source: str
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class HandoverSheet:
    code: str  # BG000123
    day: date
    place: str
    district: str
    school: str
    principal: str | None
    pupil: str
    birth_date: date | None
    class_name: str
    guardian: str | None
    guardian_phone: str | None  # as people write it
    teacher: str | None  # the teacher who recorded the handover (printed as homeroom teacher)
    devices: tuple[DeviceRow, ...]


@dataclass(frozen=True, slots=True)
class ReceiptSheet:
    code: str  # TN000012
    day: date
    place: str
    district: str
    school: str
    principal: str | None
    giver: str  # the district office, or the sponsor
    giver_contact: str | None
    devices: tuple[DeviceRow, ...]
    quantity: int = 0


def handover_code(handover_id: int) -> str:
    return f"BG{handover_id:06d}"


def receipt_code(batch_id: int) -> str:
    return f"TN{batch_id:06d}"


_CODE = re.compile(r"^\s*(BG|TN)(\d{6,})\s*$")


def parse_code(text: str) -> tuple[str, int] | None:
    """``BG000123`` -> ("BG", 123), ``TN000012`` -> ("TN", 12); anything else (another QR code on the page,
    a phone number) -> None."""
    m = _CODE.match(text or "")
    return (m.group(1), int(m.group(2))) if m else None


_ADMIN_PREFIX = re.compile(r"^(thành phố|tp\.?|quận|huyện|thị xã)\s+", re.IGNORECASE)


def place_name(programme: Programme, district_code: str, district_name: str) -> str:
    """The place on the date line: the programme file's word for the district, else its name without the
    administrative prefix ("Thành phố Thủ Dầu Một" -> "Thủ Dầu Một")."""
    configured = programme.minutes.places.get(district_code)
    if configured:
        return configured
    short = _ADMIN_PREFIX.sub("", district_name.strip())
    return district_name.strip() if not short or short.isdigit() else short


def date_words(day: date) -> str:
    """'ngày 25 tháng 11 năm 2021'. As official papers write it: a day below 10 and the months 1 and 2 get a
    leading zero."""
    dd = f"{day.day:02d}"
    mm = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"ngày {dd} tháng {mm} năm {day.year}"


def date_line(place: str, day: date) -> str:
    """'Thủ Dầu Một, ngày 25 tháng 11 năm 2021'."""
    return f"{place}, {date_words(day)}"


def _source_text(programme: Programme, source: str, sponsor: str | None) -> str:
    if source == Source.PROGRAMME:
        return f"Chương trình “{programme.programme.name}”"
    return f"Nhà tài trợ: {sponsor}" if sponsor else "Nhà tài trợ khác"


def _device_kind(kind: str) -> str:
    label = DEVICE_TYPE_LABELS.get(kind)
    return label("vi") if label else kind


# --- reading the records ------------------------------------------------------------------------------------


def _principals(session: Session, school_ids: Iterable[int]) -> dict[int, str]:
    """The longest-serving active principal of each school (the lowest id), as the summary shows."""
    out: dict[int, str] = {}
    for sid, name in session.execute(
        select(Staff.school_id, Staff.full_name)
        .where(Staff.school_id.in_(list(set(school_ids))), Staff.role == Role.PRINCIPAL, Staff.active)
        .order_by(Staff.school_id, Staff.id)
    ).all():
        out.setdefault(sid, name)
    return out


def handover_sheets(
    session: Session, *, programme: Programme, scope: Scope, handover_ids: Sequence[int] | None = None
) -> list[HandoverSheet]:
    """Sheets of the active handovers in ``scope`` (all of them, or those of ``handover_ids``), in one query,
    by school, day and id."""
    recorder = aliased(Staff)
    stmt = (
        select(
            Handover.id,
            Handover.handed_over_on,
            Handover.school_id,
            School.name,
            District.code,
            District.name,
            Student.full_name,
            Student.birth_date,
            Student.class_name,
            Student.guardian_name,
            Student.guardian_phone,
            recorder.full_name,
            recorder.role,
            Batch.device_type,
            Batch.brand_model,
            Batch.condition,
            Batch.source,
            Sponsor.name,
            Device.serial,
        )
        .join(Student, Student.id == Handover.student_id)
        .join(School, School.id == Handover.school_id)
        .join(District, District.id == School.district_id)
        .join(Batch, Batch.id == Handover.batch_id)
        .join(recorder, recorder.id == Handover.recorded_by)
        .outerjoin(Sponsor, Sponsor.id == Batch.sponsor_id)
        .outerjoin(Device, Device.id == Handover.device_id)
        .where(scope.filter(Handover.school_id), Handover.status == HandoverStatus.ACTIVE)
        .order_by(School.name, School.id, Handover.handed_over_on, Handover.id)
    )
    if handover_ids is not None:
        stmt = stmt.where(Handover.id.in_(list(handover_ids)))
    rows = session.execute(stmt).all()
    principals = _principals(session, {r[2] for r in rows})
    sheets = []
    for (
        hid,
        day,
        sid,
        school,
        dcode,
        dname,
        pupil,
        born,
        klass,
        guardian,
        gphone,
        rec_name,
        rec_role,
        dtype,
        model,
        condition,
        source,
        sponsor,
        serial,
    ) in rows:
        sheets.append(
            HandoverSheet(
                code=handover_code(hid),
                day=day,
                place=place_name(programme, dcode, dname),
                district=dname,
                school=school,
                principal=principals.get(sid),
                pupil=pupil,
                birth_date=born,
                class_name=klass,
                guardian=guardian,
                guardian_phone=display_phone(gphone) if gphone else None,
                teacher=rec_name if rec_role == Role.TEACHER else None,
                devices=(
                    DeviceRow(
                        kind=_device_kind(dtype),
                        model=model,
                        serial=serial or "",
                        condition=condition,
                        source=_source_text(programme, source, sponsor),
                    ),
                ),
            )
        )
    return sheets


def handover_sheet(session: Session, *, programme: Programme, scope: Scope, handover_id: int) -> HandoverSheet:
    sheets = handover_sheets(session, programme=programme, scope=scope, handover_ids=[handover_id])
    if not sheets:
        raise MinutesNotFound(handover_code(handover_id))
    return sheets[0]


def receipt_sheets(
    session: Session, *, programme: Programme, scope: Scope, batch_ids: Sequence[int] | None = None
) -> list[ReceiptSheet]:
    """Sheets of the batches received in ``scope``: one device row per serial, or one row with the quantity
    when the batch has no serials."""
    stmt = (
        select(Batch, School.name, District.code, District.name, Sponsor)
        .join(School, School.id == Batch.school_id)
        .join(District, District.id == School.district_id)
        .outerjoin(Sponsor, Sponsor.id == Batch.sponsor_id)
        .where(scope.filter(Batch.school_id))
        .order_by(School.name, School.id, Batch.received_on, Batch.id)
    )
    if batch_ids is not None:
        stmt = stmt.where(Batch.id.in_(list(batch_ids)))
    rows = session.execute(stmt).all()
    if not rows:
        return []
    serials: dict[int, list[str]] = {}
    for bid, serial in session.execute(
        select(Device.batch_id, Device.serial)
        .where(Device.batch_id.in_([r[0].id for r in rows]))
        .order_by(Device.batch_id, Device.id)
    ).all():
        serials.setdefault(bid, []).append(serial)
    principals = _principals(session, {r[0].school_id for r in rows})
    sheets = []
    for batch, school, dcode, dname, sponsor in rows:
        place = place_name(programme, dcode, dname)
        if batch.source == Source.PROGRAMME:
            giver, contact = f"Phòng Giáo dục và Đào tạo {place}", None
        else:
            giver = sponsor.name if sponsor else "Nhà tài trợ khác"
            contact = None
            if sponsor is not None and sponsor.contact_name:
                phone = f", điện thoại {display_phone(sponsor.contact_phone)}" if sponsor.contact_phone else ""
                contact = f"{sponsor.contact_name}{phone}"
        source = _source_text(programme, batch.source, sponsor.name if sponsor else None)
        common = dict(kind=_device_kind(batch.device_type), model=batch.brand_model, condition=batch.condition)
        listed = serials.get(batch.id)
        if listed:
            devices = tuple(DeviceRow(serial=s, source=source, **common) for s in listed)
        else:
            devices = (DeviceRow(serial="", source=source, quantity=batch.quantity, **common),)
        sheets.append(
            ReceiptSheet(
                code=receipt_code(batch.id),
                day=batch.received_on,
                place=place,
                district=dname,
                school=school,
                principal=principals.get(batch.school_id),
                giver=giver,
                giver_contact=contact,
                devices=devices,
                quantity=batch.quantity,
            )
        )
    return sheets


def receipt_sheet(session: Session, *, programme: Programme, scope: Scope, batch_id: int) -> ReceiptSheet:
    sheets = receipt_sheets(session, programme=programme, scope=scope, batch_ids=[batch_id])
    if not sheets:
        raise MinutesNotFound(receipt_code(batch_id))
    return sheets[0]


# --- drawing ----------------------------------------------------------------------------------------------------


@cache
def _font_files() -> dict[str, Path]:
    """DejaVu Sans cut down to ``UNICODE_RANGES``, written once per process into a private temp directory."""
    import tempfile

    from fontTools import subset
    from fontTools.ttLib import TTFont

    folder = Path(tempfile.mkdtemp(prefix="fieldbot-fonts-"))
    unicodes = [c for lo, hi in UNICODE_RANGES for c in range(lo, hi + 1)]
    out: dict[str, Path] = {}
    for style, name in FONTS.items():
        options = subset.Options()
        options.layout_features = []
        options.name_IDs = ["*"]
        options.notdef_outline = True
        options.recalc_timestamp = False
        font = TTFont(FONT_DIR / name, recalcTimestamp=False)
        if "FFTM" in font:  # FontForge timestamps: the subsetter only warns about them
            del font["FFTM"]
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=unicodes)
        subsetter.subset(font)
        path = folder / name
        font.save(path)
        out[style] = path
    return out


def printable(text: object) -> str:
    """NFC text with characters the embedded font lacks (emoji, CJK ...) replaced by '?', so no glyph goes
    missing silently on a paper people sign."""
    return _UNCOVERED.sub("?", _nfc(text))


_UNCOVERED = re.compile("[^\n" + "".join(f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in UNICODE_RANGES) + "]")


def _nfc(text: object) -> str:
    return unicodedata.normalize("NFC", str(text))


@lru_cache(maxsize=64)  # a sheet's pages share one; a long-running bot must not keep every code's
def qr_png(code: str) -> bytes:
    """The QR code of a sheet's code as a small PNG (medium error correction: survives a phone photo of a
    signed, folded sheet). 2-module quiet zone; the page margin adds the rest."""
    out = io.BytesIO()
    segno.make_qr(code, error="m", boost_error=False).save(out, kind="png", scale=6, border=2)
    return out.getvalue()


class _Pdf(FPDF):
    def __init__(self) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.code = ""  # the sheet on the current page: its footer carries that code and QR
        for style, path in _font_files().items():
            self.add_font(FAMILY, style, str(path))
        self.set_margins(MARGIN_L, MARGIN_T, MARGIN_R)
        self.set_auto_page_break(False)  # the layout below breaks pages itself
        self.set_creator("fieldbot")

    def footer(self) -> None:
        if not self.code:
            return
        y = self.h - 8 - QR_SIDE
        self.image(io.BytesIO(qr_png(self.code)), x=self.w - MARGIN_R - QR_SIDE, y=y, w=QR_SIDE, h=QR_SIDE)
        self.set_font(FAMILY, "", SMALL_PT - 1)
        self.set_text_color(90, 90, 90)
        self.text(
            MARGIN_L, y + QR_SIDE - 2, f"Mã biên bản: {self.code} · trang {self.page_no()} · quét mã QR để đối chiếu"
        )
        self.set_text_color(0, 0, 0)


_PT_MM = 25.4 / 72


class MinutesDocument:
    """Sheets added one after another into one PDF (one sheet per page unless its device list is long).

    Text is laid out here rather than with fpdf2's ``multi_cell``/``table``: those re-measure the whole line
    for every character added (~90 ms a page); measuring each word once, cached, and placing lines with
    ``text()`` is several times faster for the same look.
    """

    def __init__(self, programme: Programme) -> None:
        self.programme = programme
        self.pdf = _Pdf()
        self.pages = 0  # sheets
        self._widths: dict[tuple[str, float, str], float] = {}
        self.y = MARGIN_T
        self.bottom = self.pdf.h - FOOTER_H - 6

    # --- sheets ---

    def add_handover(self, sheet: HandoverSheet) -> None:
        w = self.programme.minutes
        self._start(sheet.code, sheet.school, sheet.place, sheet.day, w.title)
        self._paragraph(f"Hôm nay, {date_words(sheet.day)}, tại {sheet.school}, chúng tôi gồm:")
        self._heading("I. BÊN GIAO (nhà trường)")
        self._field("Đơn vị", sheet.school)
        self._field("Đại diện", f"Ông/Bà {sheet.principal or BLANK} — Chức vụ: Hiệu trưởng")
        self._heading("II. BÊN NHẬN (học sinh và gia đình)")
        born = f" — Ngày sinh: {sheet.birth_date:%d/%m/%Y}" if sheet.birth_date else ""
        self._field("Học sinh", f"{sheet.pupil}{born} — Lớp: {sheet.class_name}")
        self._field(
            "Cha/mẹ hoặc người giám hộ",
            f"{sheet.guardian or BLANK} — Điện thoại: {sheet.guardian_phone or BLANK_SHORT}",
        )
        self._heading("III. THIẾT BỊ BÀN GIAO")
        self._devices(sheet.devices)
        self._heading("IV. CAM KẾT")
        self._paragraph(self._fill(w.commitments))
        self._signatures(
            [
                ("ĐẠI DIỆN NHÀ TRƯỜNG", sheet.principal),
                ("CHA/MẸ HOẶC NGƯỜI GIÁM HỘ", sheet.guardian),
                ("HỌC SINH", sheet.pupil),
                ("GIÁO VIÊN CHỦ NHIỆM", sheet.teacher),
            ]
        )

    def add_receipt(self, sheet: ReceiptSheet) -> None:
        w = self.programme.minutes
        self._start(sheet.code, sheet.school, sheet.place, sheet.day, w.receipt_title)
        self._paragraph(f"Hôm nay, {date_words(sheet.day)}, tại {sheet.school}, chúng tôi gồm:")
        self._heading("I. BÊN GIAO")
        self._field("Đơn vị", sheet.giver)
        if sheet.giver_contact:
            self._field("Người liên hệ", sheet.giver_contact)
        self._heading("II. BÊN NHẬN (nhà trường)")
        self._field("Đơn vị", sheet.school)
        self._field("Đại diện", f"Ông/Bà {sheet.principal or BLANK} — Chức vụ: Hiệu trưởng")
        self._heading(f"III. THIẾT BỊ TIẾP NHẬN (tổng số: {sheet.quantity} máy)")
        self._devices(sheet.devices)
        self._heading("IV. CAM KẾT")
        self._paragraph(self._fill(w.receipt_commitments))
        self._signatures([("ĐẠI DIỆN BÊN GIAO", None), ("ĐẠI DIỆN NHÀ TRƯỜNG", sheet.principal)])

    def output(self) -> bytes:
        if self.pages == 0:
            raise ValueError("no sheet in the document")
        return bytes(self.pdf.output())

    # --- text primitives ---

    def _font(self, style: str, size: float) -> None:
        self.pdf.set_font(FAMILY, style, size)

    def _width(self, text: str, style: str, size: float) -> float:
        key = (style, size, text)
        width = self._widths.get(key)
        if width is None:
            self._font(style, size)
            width = self._widths[key] = self.pdf.get_string_width(text)
        return width

    def _wrap(self, text: str, width: float, style: str, size: float) -> list[str]:
        """Lines of at most ``width`` mm, broken at spaces; a word longer than a line is cut."""
        lines: list[str] = []
        space = self._width(" ", style, size)
        for para in printable(text).split("\n"):
            current, used = "", 0.0
            for word in para.split():
                ww = self._width(word, style, size)
                while ww > width:  # a serial or model with no spaces, wider than its column
                    if current:
                        lines.append(current)
                        current, used = "", 0.0
                    cut = len(word) - 1
                    while cut > 1 and self._width(word[:cut], style, size) > width:
                        cut -= 1
                    lines.append(word[:cut])
                    word = word[cut:]
                    ww = self._width(word, style, size)
                if current and used + space + ww > width:
                    lines.append(current)
                    current, used = word, ww
                elif current:
                    current, used = f"{current} {word}", used + space + ww
                else:
                    current, used = word, ww
            lines.append(current)
        return lines

    def _draw(
        self, lines: Sequence[str], *, x: float, y: float, width: float, style: str, size: float, lh: float, align="L"
    ) -> float:
        """Place ``lines`` from top ``y``; returns the y under the last line."""
        self._font(style, size)
        for line in lines:
            if line:
                if align == "C":
                    lx = x + (width - self._width(line, style, size)) / 2
                else:
                    lx = x
                self.pdf.text(lx, y + lh / 2 + size * _PT_MM * 0.36, line)
            y += lh
        return y

    def _block(
        self, text: str, *, style: str = "", size: float = BODY_PT, lh: float = LINE, align="L", x=None, width=None
    ):
        x = MARGIN_L if x is None else x
        width = self.pdf.epw if width is None else width
        lines = self._wrap(text, width, style, size)
        self._room(len(lines) * lh)
        self.y = self._draw(lines, x=x, y=self.y, width=width, style=style, size=size, lh=lh, align=align)

    def _room(self, height: float) -> None:
        """A new page (same sheet, same footer code) when ``height`` does not fit under the current y."""
        if self.y + height > self.bottom:
            self.pdf.add_page()
            self.y = MARGIN_T

    # --- parts ---

    def _fill(self, template: str) -> str:
        p = self.programme.programme
        return _nfc(template.format(programme=p.name, letter=p.letter or "…"))

    def _start(self, code: str, school: str, place: str, day: date, title: str) -> None:
        pdf, w = self.pdf, self.programme.minutes
        pdf.add_page()  # draws the previous sheet's footer first
        pdf.code = code
        self.pages += 1
        top = MARGIN_T
        left_w = 78.0
        right_x, right_w = MARGIN_L + left_w, pdf.epw - left_w
        y = self._draw(
            self._wrap(f"PHÒNG GD&ĐT {place}".upper(), left_w, "", 10),
            x=MARGIN_L,
            y=top,
            width=left_w,
            style="",
            size=10,
            lh=5,
            align="C",
        )
        y = self._draw(
            self._wrap(school.upper(), left_w, "B", 10),
            x=MARGIN_L,
            y=y,
            width=left_w,
            style="B",
            size=10,
            lh=5,
            align="C",
        )
        left_end = self._draw(
            [f"Số: {code}"], x=MARGIN_L, y=y + 0.5, width=left_w, style="", size=10, lh=5.5, align="C"
        )
        y = self._draw(
            self._wrap(w.nation, right_w, "B", 10),
            x=right_x,
            y=top,
            width=right_w,
            style="B",
            size=10,
            lh=5,
            align="C",
        )
        motto = printable(w.motto)
        y = self._draw([motto], x=right_x, y=y, width=right_w, style="B", size=10.5, lh=5.5, align="C")
        # The motto is underlined by a rule as wide as its text, as official papers have it.
        mw = self._width(motto, "B", 10.5)
        x0 = right_x + (right_w - mw) / 2
        pdf.set_line_width(0.25)
        pdf.line(x0, y - 0.6, x0 + mw, y - 0.6)
        y = self._draw(
            self._wrap(date_line(place, day), right_w, "I", 10.5),
            x=right_x,
            y=y + 2,
            width=right_w,
            style="I",
            size=10.5,
            lh=5.5,
            align="C",
        )
        self.y = max(left_end, y) + 5
        self._block(title, style="B", size=14, lh=7, align="C")
        if w.basis:
            self._block(self._fill(w.basis), style="I", size=10.5, lh=5.5, align="C")
        self.y += 3

    def _heading(self, text: str) -> None:
        self.y += 1
        self._room(LINE * 2)  # never a heading alone at the foot of a page
        self._block(text, style="B")

    def _paragraph(self, text: str) -> None:
        self._block(text)

    def _field(self, label: str, value: str) -> None:
        x = MARGIN_L + 5
        label_txt = _nfc(f"{label}: ")
        lw = self._width(label_txt, "", BODY_PT)
        width = self.pdf.epw - 5 - lw
        lines = self._wrap(value, width, "B", BODY_PT)
        self._room(len(lines) * LINE)
        self._draw([label_txt], x=x, y=self.y, width=lw, style="", size=BODY_PT, lh=LINE)
        self.y = self._draw(lines, x=x + lw, y=self.y, width=width, style="B", size=BODY_PT, lh=LINE)

    _COLUMNS = (
        (10.0, "STT"),
        (23.0, "Loại máy"),
        (45.0, "Hãng, model"),
        (41.0, "Số sê-ri"),
        (22.0, "Tình trạng"),
        (34.0, "Nguồn"),
    )
    SERIALS_PER_ROW = 12

    def _devices(self, devices: Sequence[DeviceRow]) -> None:
        """Machines alike (kind, model, condition, source) share a row listing their serials, a dozen a row:
        three laptops of one model take one row, not three copies of a long model name."""
        self.y += 1
        head = [title for _, title in self._COLUMNS]
        self._row(head, style="B", fill=True)
        number = 0
        for group in _groups(devices, self.SERIALS_PER_ROW):
            first, count = group[0], sum(d.quantity for d in group)
            numbers = f"{number + 1}" if count == 1 else f"{number + 1}–{number + count}"
            number += count
            kind = first.kind if count == 1 else f"{first.kind} ({count} máy)"
            serials = "\n".join(d.serial for d in group if d.serial) or "Không ghi"
            cells = [numbers, kind, first.model, serials, first.condition, first.source]
            if self._row_height(cells, "") + self.y > self.bottom:
                self._room(self.bottom)  # the table goes on on the next page, under its header again
                self._row(head, style="B", fill=True)
            self._row(cells, style="")
        self.y += 2

    def _row_height(self, cells: Sequence[str], style: str, size: float = 9.0, lh: float = 4.4) -> float:
        pad = 1.0
        return (
            max(len(self._wrap(c, w - 2 * pad, style, size)) for c, (w, _) in zip(cells, self._COLUMNS)) * lh + 2 * pad
        )

    def _row(self, cells: Sequence[str], *, style: str, fill: bool = False, size: float = 9.0, lh: float = 4.4) -> None:
        pdf, pad = self.pdf, 1.0
        wrapped = [self._wrap(c, w - 2 * pad, style, size) for c, (w, _) in zip(cells, self._COLUMNS)]
        height = max(len(lines) for lines in wrapped) * lh + 2 * pad
        x = MARGIN_L
        pdf.set_line_width(0.2)
        if fill:
            pdf.set_fill_color(235, 235, 235)
        for (w, _), lines in zip(self._COLUMNS, wrapped):
            pdf.rect(x, self.y, w, height, style="DF" if fill else "D")
            self._draw(
                lines,
                x=x + pad,
                y=self.y + pad,
                width=w - 2 * pad,
                style=style,
                size=size,
                lh=lh,
                align="C" if fill or w < 10 else "L",
            )
            x += w
        self.y += height

    def _signatures(self, blocks: Sequence[tuple[str, str | None]]) -> None:
        col = self.pdf.epw / len(blocks)
        titles = [self._wrap(t, col - 2, "B", 9.5) for t, _ in blocks]
        names = [self._wrap(n, col - 2, "B", 10) if n else [] for _, n in blocks]
        head = max(len(t) for t in titles) * 4.6 + 4.6
        height = 2 + head + 20 + max((len(n) for n in names), default=0) * 5
        self._room(height)  # the whole block on one page
        top = self.y + 2
        for i, (t_lines, n_lines) in enumerate(zip(titles, names)):
            x = MARGIN_L + i * col + 1
            y = self._draw(t_lines, x=x, y=top, width=col - 2, style="B", size=9.5, lh=4.6, align="C")
            self._draw(["(Ký, ghi rõ họ tên)"], x=x, y=y, width=col - 2, style="I", size=9, lh=4.6, align="C")
            self._draw(n_lines, x=x, y=top + head + 20, width=col - 2, style="B", size=10, lh=5, align="C")
        self.y = top + height


def _groups(devices: Sequence[DeviceRow], size: int) -> list[list[DeviceRow]]:
    groups: list[list[DeviceRow]] = []
    for d in devices:
        last = groups[-1] if groups else None
        if (
            last is not None
            and len(last) < size
            and (last[0].kind, last[0].model, last[0].condition, last[0].source)
            == (d.kind, d.model, d.condition, d.source)
            and d.serial
            and last[0].serial
        ):
            last.append(d)
        else:
            groups.append([d])
    return groups


BLANK = "…………………………"
BLANK_SHORT = "……………"


def handover_pdf(sheet: HandoverSheet, *, programme: Programme) -> bytes:
    doc = MinutesDocument(programme)
    doc.add_handover(sheet)
    return doc.output()


def receipt_pdf(sheet: ReceiptSheet, *, programme: Programme) -> bytes:
    doc = MinutesDocument(programme)
    doc.add_receipt(sheet)
    return doc.output()


@dataclass(frozen=True, slots=True)
class SchoolMinutes:
    pdf: bytes
    handovers: int
    receipts: int
    pages: int


def school_pdf(session: Session, *, programme: Programme, school_id: int) -> SchoolMinutes:
    """Every batch minutes and every handover minutes of a school, one sheet per page, in one PDF."""
    school = session.get(School, school_id)
    if school is None:
        raise MinutesNotFound(str(school_id))
    scope = Scope(district_id=school.district_id, school_id=school.id)
    receipts = receipt_sheets(session, programme=programme, scope=scope)
    handovers = handover_sheets(session, programme=programme, scope=scope)
    if not receipts and not handovers:
        raise MinutesNotFound(school.code)
    doc = MinutesDocument(programme)
    for r in receipts:
        doc.add_receipt(r)
    for h in handovers:
        doc.add_handover(h)
    data = doc.output()
    return SchoolMinutes(pdf=data, handovers=len(handovers), receipts=len(receipts), pages=doc.pdf.page_no())


def write_pdf(data: bytes, out: Path) -> Path:
    """Write atomically (a half-written PDF never sits under the final name)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out


def prune_files(folder: Path, *, older_than: float) -> int:
    """Remove minutes PDFs written for a chat (``<media>/minutes/*.pdf``) last modified before ``older_than``
    (a timestamp): they are sent at once and can be made again from the records. Returns how many went."""
    removed = 0
    for path in Path(folder).glob("*.pdf"):
        try:
            if path.stat().st_mtime < older_than:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
