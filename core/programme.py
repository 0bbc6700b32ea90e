"""The programme file (TOML): categories, deadlines, reminder ladder, district contacts.

The default file reproduces the district's letter 1509/PGDĐT-TCCB. A bad file stops start-up with the
field named (``ProgrammeError``), because a wrong deadline silently chasing 40 principals is worse than no
bot at all.
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time, timedelta
from functools import cached_property
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.clock import UTC


class ProgrammeError(Exception):
    pass


def parse_vn_date(value: object) -> date:
    """dd/mm/yyyy (as people write it) or a TOML date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.strptime(value.strip(), "%d/%m/%Y").date()
        except ValueError:
            raise ValueError(f"ngày không hợp lệ '{value}' (cần dd/mm/yyyy)") from None
    raise ValueError("cần một ngày dd/mm/yyyy")


def _parse_hhmm(value: str) -> time:
    try:
        return datetime.strptime(value.strip(), "%H:%M").time()
    except ValueError:
        raise ValueError(f"giờ không hợp lệ '{value}' (cần HH:MM)") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_NOTICE_VI = (
    "Nhà trường thu thập họ tên, ngày sinh, lớp, mã định danh, hoàn cảnh gia đình, ảnh bàn giao máy và "
    "họ tên, số điện thoại người giám hộ của em, chỉ để xét và bàn giao máy tính, sóng internet của chương "
    "trình. Chỉ nhà trường và Phòng GD&ĐT xem được. Dữ liệu được xóa sau khi chương trình kết thúc. Phụ "
    "huynh có quyền xem, sửa, yêu cầu xóa: liên hệ hiệu trưởng hoặc Phòng GD&ĐT."
)
DEFAULT_NOTICE_EN = (
    "The school collects the pupil's name, birth date, class, student code, family hardship, handover "
    "photos and the guardian's name and phone, only to decide on and hand over the programme's computers "
    "and internet access. Only the school and the district education office see them. The data is deleted "
    "after the programme ends. Guardians may see, correct or ask to erase it: contact the principal or the "
    "district office."
)


class ProgrammeInfo(_Strict):
    name: str = Field(min_length=1)
    letter: str = ""
    timezone: str = "Asia/Ho_Chi_Minh"
    start: date | None = None  # first day a receipt or handover can be dated (dd/mm/yyyy)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, v: object) -> date | None:
        return None if v is None else parse_vn_date(v)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"múi giờ không tồn tại: {v}") from None
        return v


class CategoryDef(_Strict):
    code: str = Field(pattern=r"^[a-z_]+$")
    label_vi: str = Field(min_length=1)
    label_en: str = Field(min_length=1)
    covered: bool = True
    reason_required: bool = False


class Deadlines(_Strict):
    needs_report: date
    handover_update_days: int = Field(default=1, ge=0, le=60)
    handover_update_grace_hours: int = Field(default=0, ge=0, le=24 * 30)
    devices_waiting_days: int = Field(default=7, ge=1, le=365)
    pending_review_days: int = Field(default=2, ge=1, le=60)
    # Handovers still without a photo of the signed minutes (biên bản) this many days after: remind the principal.
    minutes_signed_days: int = Field(default=3, ge=1, le=60)
    # A district that leaves an item late this many days escalates to the province officers (Sở GD&ĐT).
    province_escalation_days: int = Field(default=3, ge=1, le=365)

    @field_validator("needs_report", mode="before")
    @classmethod
    def _date(cls, v: object) -> date:
        return parse_vn_date(v)


class Reminders(_Strict):
    needs_report_days_before: list[int] = [3, 1, 0]
    morning: time = time(7, 0)
    quiet_start: time = time(21, 0)
    quiet_end: time = time(6, 30)
    sweep_minutes: int = Field(default=5, ge=1, le=24 * 60)

    @model_validator(mode="before")
    @classmethod
    def _split_quiet(cls, data: dict) -> dict:
        if isinstance(data, dict) and "quiet_hours" in data:
            data = dict(data)
            raw = str(data.pop("quiet_hours"))
            start, sep, end = raw.partition("-")
            if not sep:
                raise ValueError(f"quiet_hours: cần dạng HH:MM-HH:MM, nhận '{raw}'")
            data["quiet_start"], data["quiet_end"] = _parse_hhmm(start), _parse_hhmm(end)
        if isinstance(data, dict) and isinstance(data.get("morning"), str):
            data = dict(data)
            data["morning"] = _parse_hhmm(data["morning"])
        return data

    @field_validator("needs_report_days_before")
    @classmethod
    def _ladder(cls, v: list[int]) -> list[int]:
        if any(d < 0 or d > 60 for d in v):
            raise ValueError("số ngày nhắc trước phải từ 0 đến 60")
        return sorted(set(v), reverse=True)


class PhotoRules(_Strict):
    max_side: int = Field(default=1600, ge=320, le=8000)
    capture_max_days_before: int = Field(default=7, ge=0, le=365)
    near_duplicate_bits: int = Field(default=12, ge=0, le=32)


_MINUTES_PLACEHOLDERS = {"programme", "letter"}


class MinutesWording(_Strict):
    """The printed minutes (biên bản): what a district may reword without touching code. ``basis`` and the
    commitments may name ``{programme}`` and ``{letter}``; ``places`` maps a district code to the place written
    on the date line (default: the district's name without "Thành phố", "Quận", "Huyện", "Thị xã")."""

    nation: str = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
    motto: str = "Độc lập - Tự do - Hạnh phúc"
    title: str = Field(default="BIÊN BẢN BÀN GIAO MÁY TÍNH", min_length=1)
    receipt_title: str = Field(default="BIÊN BẢN TIẾP NHẬN MÁY TÍNH", min_length=1)
    basis: str = "Thực hiện Chương trình “{programme}” theo Công văn số {letter}."
    commitments: str = (
        "Bên nhận cam kết sử dụng máy đúng mục đích học tập, giữ gìn, bảo quản máy; không mua bán, cho, tặng, "
        "cầm cố; báo ngay cho nhà trường khi máy hư hỏng hoặc mất."
    )
    receipt_commitments: str = (
        "Nhà trường đã kiểm đếm, tiếp nhận đủ số máy nêu trên, chịu trách nhiệm quản lý và bàn giao máy cho "
        "học sinh đúng đối tượng."
    )
    places: dict[str, str] = {}

    @field_validator("basis", "commitments", "receipt_commitments")
    @classmethod
    def _placeholders(cls, v: str) -> str:
        import string

        try:
            names = {name for _, name, _, _ in string.Formatter().parse(v) if name is not None}
        except ValueError as exc:
            raise ValueError(f"dấu ngoặc {{}} sai: {exc}") from None
        unknown = names - _MINUTES_PLACEHOLDERS
        if unknown:
            raise ValueError(f"chỉ dùng được {{programme}} và {{letter}}, không có {{{sorted(unknown)[0]}}}")
        return v


class ImportRules(_Strict):
    """Class lists sent as spreadsheets (/nhapds, ``fieldbot students import``)."""

    max_rows: int = Field(default=2000, ge=1, le=100_000)
    max_bytes: int = Field(default=5 * 1024 * 1024, ge=10_000, le=50 * 1024 * 1024)


class DistrictContact(_Strict):
    district_code: str = Field(min_length=1)
    name: str = Field(min_length=1)
    phone: str
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        from core.phones import normalize_phone  # local import: storage depends on nothing here

        normalize_phone(v)  # raises ValueError with a Vietnamese reason
        return v

    @property
    def phone_e164(self) -> str:
        from core.phones import normalize_phone

        return normalize_phone(self.phone)


class Privacy(_Strict):
    """[privacy]: what the guardian is told before a child is registered, and how long data is kept.

    ``notice_vi``/``notice_en``: the consent notice /dangky shows (what is collected, why, who sees it, how
    long it is kept, whom to contact). ``closes``: the day the programme ends (dd/mm/yyyy, optional);
    ``keep_days_after_close``: how long pupil data is kept after that (then `fieldbot purge`);
    ``export_keep_days``: export files under media/exports are deleted by the daily job after this many days.
    """

    notice_vi: str = Field(default=DEFAULT_NOTICE_VI, min_length=20, max_length=3000)
    notice_en: str = Field(default=DEFAULT_NOTICE_EN, min_length=20, max_length=3000)
    closes: date | None = None
    keep_days_after_close: int = Field(default=365, ge=0, le=3650)
    export_keep_days: int = Field(default=7, ge=1, le=365)

    @field_validator("closes", mode="before")
    @classmethod
    def _date(cls, v: object) -> date | None:
        return None if v in (None, "") else parse_vn_date(v)

    @property
    def keep_until(self) -> date | None:
        """The last day pupil data may be kept (None: the programme file names no closing day)."""
        return None if self.closes is None else self.closes + timedelta(days=self.keep_days_after_close)


class Programme(_Strict):
    programme: ProgrammeInfo
    categories: list[CategoryDef] = Field(min_length=1)
    deadlines: Deadlines
    reminders: Reminders = Reminders()
    photos: PhotoRules = PhotoRules()
    minutes: MinutesWording = MinutesWording()
    imports: ImportRules = ImportRules()
    contacts: list[DistrictContact] = Field(min_length=1)
    privacy: Privacy = Privacy()

    @field_validator("categories")
    @classmethod
    def _unique_codes(cls, v: list[CategoryDef]) -> list[CategoryDef]:
        codes = [c.code for c in v]
        if len(codes) != len(set(codes)):
            raise ValueError("mã đối tượng bị trùng")
        return v

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    @cached_property
    def tz(self) -> ZoneInfo:
        """The one zone the app shows and counts days in (``FIELDBOT_TIMEZONE`` may override the file's)."""
        return ZoneInfo(self.programme.timezone)

    def with_timezone(self, zone: str) -> Programme:
        data = self.model_dump()
        data["programme"]["timezone"] = zone
        return type(self).model_validate(data)  # validated anew: no cached value of the old zone survives

    def category(self, code: str) -> CategoryDef | None:
        return next((c for c in self.categories if c.code == code), None)

    def contact_for(self, district_code: str) -> DistrictContact | None:
        return next((c for c in self.contacts if c.district_code == district_code), self.contacts[0])

    @property
    def start_date(self) -> date:
        """The programme's first day: ``[programme] start``, or the first of the month a year before the
        needs-report deadline when the file does not say."""
        if self.programme.start is not None:
            return self.programme.start
        deadline = self.deadlines.needs_report
        return date(deadline.year - 1, deadline.month, 1)

    @property
    def needs_report_due(self) -> datetime:
        """End of the deadline day, local time, as UTC."""
        end = datetime.combine(self.deadlines.needs_report + timedelta(days=1), time.min, tzinfo=self.tz)
        return end.astimezone(UTC)

    def handover_update_due(self, handed_over_on: date) -> datetime:
        """End of the day ``handover_update_days`` after the handover, local time, as UTC."""
        day = handed_over_on + timedelta(days=self.deadlines.handover_update_days + 1)
        return datetime.combine(day, time.min, tzinfo=self.tz).astimezone(UTC)


def load_programme(path: Path) -> Programme:
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProgrammeError(f"Không tìm thấy tệp chương trình: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProgrammeError(f"Tệp chương trình {path} sai cú pháp TOML: {exc}") from None
    try:
        return Programme.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "(gốc)"
        msg = str(err.get("msg", "")).removeprefix("Value error, ")
        raise ProgrammeError(f"Tệp chương trình {path}: trường '{where}' sai: {msg}") from None
