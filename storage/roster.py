"""The roster: districts, schools and staff from the district's spreadsheet (CSV or XLSX).

All-or-nothing: every row is checked first and a file with any bad row changes nothing, so a district never
ends up with half a roster. Re-importing updates people in place (the phone number is the key) and
deactivates, never deletes, people missing from the new file: their past entries keep their author.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from core.phones import normalize_phone
from core.vocabulary import Role, SchoolLevel
from storage.models import District, School, Staff

HEADER = (
    "district_code",
    "district_name",
    "school_code",
    "school_name",
    "school_level",
    "role",
    "full_name",
    "phone",
    "email",
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,32}$")


class RosterError(Exception):
    """The file cannot be read at all (missing, wrong type, wrong header)."""


@dataclass
class RosterRow:
    line: int
    district_code: str
    district_name: str
    school_code: str
    school_name: str
    school_level: str
    role: str
    full_name: str
    phone: str  # E.164 once validated
    email: str | None


@dataclass
class RosterProblems(Exception):
    """Every bad row, with its line number and a Vietnamese reason."""

    problems: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f"Dòng {line}: {reason}" for line, reason in self.problems)


@dataclass
class ImportResult:
    districts: int = 0
    schools: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0


def read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number as a spreadsheet shows it, row as dict) for a CSV or XLSX roster."""
    path = Path(path)
    if not path.exists():
        raise RosterError(f"Không tìm thấy tệp: {path}")
    if not path.is_file():
        raise RosterError(f"{path} không phải một tệp (là thư mục?).")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw_rows = _read_csv(path)
    elif suffix == ".xlsx":
        raw_rows = _read_xlsx(path)
    else:
        raise RosterError(f"Tệp {path.name} không phải CSV hoặc XLSX. Hãy lưu danh sách dưới dạng .csv hoặc .xlsx.")
    if not raw_rows:
        raise RosterError("Tệp trống.")
    header = [h.strip().lower() for h in raw_rows[0]]
    missing = [h for h in HEADER if h not in header]
    if missing:
        raise RosterError("Thiếu cột: " + ", ".join(missing) + ". Dòng tiêu đề phải là: " + ",".join(HEADER))
    out = []
    for offset, values in enumerate(raw_rows[1:], start=2):
        if not any((v or "").strip() for v in values):
            continue  # blank lines are common at the end of spreadsheets
        row = {h: (values[i] if i < len(values) else "") for i, h in enumerate(header)}
        out.append((offset, {k: (row.get(k) or "").strip() for k in HEADER}))
    if not out:
        raise RosterError(f"Tệp {path.name} chỉ có dòng tiêu đề, chưa có dòng dữ liệu nào (mỗi người một dòng).")
    return out


SAVE_AS_UTF8 = "Hãy mở tệp bằng Excel và lưu lại với kiểu 'CSV UTF-8 (Comma delimited)'."
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _read_csv(path: Path) -> list[list[str]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RosterError(f"Không đọc được tệp {path.name}: {exc.strerror or exc}.") from None
    head = data[:4096]
    if head.startswith(_UTF16_BOMS) or (
        len(head) >= 4 and max(head[::2].count(0), head[1::2].count(0)) > len(head) // 4
    ):
        # Excel's "Unicode Text" and some exporters write UTF-16: every other byte is a zero.
        raise RosterError(f"Tệp {path.name} dùng bảng mã UTF-16 (Unicode), không phải UTF-8. {SAVE_AS_UTF8}")
    if b"\x00" in head:
        raise RosterError(f"Tệp {path.name} không phải tệp CSV dạng văn bản.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RosterError(f"Tệp {path.name} không dùng bảng mã UTF-8. {SAVE_AS_UTF8}") from None
    # Excel in Vietnamese locales often saves with semicolons.
    first = text.splitlines()[0] if text else ""
    delimiter = ";" if first.count(";") > first.count(",") else ","
    return [row for row in csv.reader(io.StringIO(text), delimiter=delimiter)]


def _read_xlsx(path: Path) -> list[list[str]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, KeyError, OSError):
        raise RosterError(f"Tệp {path.name} không phải tệp XLSX hợp lệ.") from None
    try:
        ws = wb.worksheets[0]
        rows = []
        for values in ws.iter_rows(values_only=True):
            rows.append([_cell_text(v) for v in values])
        return rows
    finally:
        wb.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a phone typed as a number loses its leading 0: normalize_phone copes with 913...
    return str(value)


def validate(rows: list[tuple[int, dict[str, str]]]) -> list[RosterRow]:
    """Every row checked; raises RosterProblems listing all the bad ones."""
    problems: list[tuple[int, str]] = []
    valid: list[RosterRow] = []
    phones: dict[str, int] = {}
    schools: dict[str, tuple[int, str, str, str]] = {}
    districts: dict[str, tuple[int, str]] = {}
    for line, r in rows:
        reasons: list[str] = []
        role = r["role"].lower()
        if role not in {x.value for x in Role}:
            reasons.append(f"vai trò '{r['role']}' không hợp lệ (district_officer, principal hoặc teacher)")
        if not r["district_code"] or not r["district_name"]:
            reasons.append("thiếu mã hoặc tên quận/huyện")
        elif not _CODE.match(r["district_code"]):
            reasons.append(f"mã quận/huyện '{r['district_code']}' chứa ký tự không hợp lệ")
        level = r["school_level"].upper()
        if role == Role.DISTRICT_OFFICER:
            if r["school_code"] or r["school_name"] or r["school_level"]:
                reasons.append("chuyên viên phòng GD không thuộc trường nào: để trống các cột school_*")
        else:
            if not r["school_code"] or not r["school_name"]:
                reasons.append("thiếu mã hoặc tên trường")
            elif not _CODE.match(r["school_code"]):
                reasons.append(f"mã trường '{r['school_code']}' chứa ký tự không hợp lệ")
            if level not in {x.value for x in SchoolLevel}:
                reasons.append(f"cấp học '{r['school_level']}' không hợp lệ (TH hoặc THCS)")
        name = " ".join(r["full_name"].split())
        if not name:
            reasons.append("thiếu họ và tên")
        elif len(name.split()) < 2 or any(ch.isdigit() for ch in name):
            reasons.append(f"họ và tên '{name}' không hợp lệ")
        phone = ""
        try:
            phone = normalize_phone(r["phone"])
        except ValueError as exc:
            reasons.append(str(exc))
        if phone and phone in phones:
            reasons.append(f"số điện thoại {r['phone']} trùng với dòng {phones[phone]}")
        email = r["email"] or None
        if email and not _EMAIL.match(email):
            reasons.append(f"email '{email}' không hợp lệ")
        if not reasons and r["district_code"] in districts and districts[r["district_code"]][1] != r["district_name"]:
            reasons.append(f"quận/huyện {r['district_code']} có tên khác với dòng {districts[r['district_code']][0]}")
        if not reasons and role != Role.DISTRICT_OFFICER and r["school_code"] in schools:
            first_line, s_name, s_level, s_district = schools[r["school_code"]]
            if (s_name, s_level, s_district) != (r["school_name"], level, r["district_code"]):
                reasons.append(f"trường {r['school_code']} khác tên, cấp học hoặc quận/huyện so với dòng {first_line}")
        if reasons:
            problems.append((line, "; ".join(reasons)))
            continue
        phones[phone] = line
        districts.setdefault(r["district_code"], (line, r["district_name"]))
        if role != Role.DISTRICT_OFFICER:
            schools.setdefault(r["school_code"], (line, r["school_name"], level, r["district_code"]))
        valid.append(
            RosterRow(
                line=line,
                district_code=r["district_code"],
                district_name=r["district_name"],
                school_code=r["school_code"],
                school_name=r["school_name"],
                school_level=level,
                role=role,
                full_name=name,
                phone=phone,
                email=email,
            )
        )
    principals: dict[str, int] = {}
    for row in valid:
        if row.role == Role.PRINCIPAL:
            if row.school_code in principals:
                problems.append(
                    (row.line, f"trường {row.school_code} đã có hiệu trưởng ở dòng {principals[row.school_code]}")
                )
            principals.setdefault(row.school_code, row.line)
    if problems:
        raise RosterProblems(sorted(problems))
    if not valid:
        raise RosterError("Tệp chưa có dòng dữ liệu nào (mỗi người một dòng, dưới dòng tiêu đề).")
    return valid


def apply(session: Session, *, rows: list[RosterRow], now: datetime) -> ImportResult:
    """Write a validated roster in the caller's transaction."""
    result = ImportResult()
    districts = {d.code: d for d in session.exec(select(District)).scalars()}
    for row in rows:
        d = districts.get(row.district_code)
        if d is None:
            d = District(code=row.district_code, name=row.district_name)
            session.add(d)
            districts[d.code] = d
        else:
            d.name = row.district_name
    session.flush()
    result.districts = len({r.district_code for r in rows})
    schools = {s.code: s for s in session.exec(select(School)).scalars()}
    for row in rows:
        if row.role == Role.DISTRICT_OFFICER:
            continue
        s = schools.get(row.school_code)
        did = districts[row.district_code].id
        if s is None:
            s = School(code=row.school_code, name=row.school_name, level=row.school_level, district_id=did)
            session.add(s)
            schools[s.code] = s
        else:
            s.name, s.level, s.district_id, s.active = row.school_name, row.school_level, did, True
    session.flush()
    result.schools = len({r.school_code for r in rows if r.role != Role.DISTRICT_OFFICER})
    staff_by_phone = {st.phone: st for st in session.exec(select(Staff)).scalars()}
    seen: set[str] = set()
    for row in rows:
        seen.add(row.phone)
        values = dict(
            full_name=row.full_name,
            email=row.email,
            role=row.role,
            district_id=districts[row.district_code].id,
            school_id=schools[row.school_code].id if row.role != Role.DISTRICT_OFFICER else None,
            active=True,
        )
        st = staff_by_phone.get(row.phone)
        if st is None:
            session.add(Staff(phone=row.phone, created_at=now, updated_at=now, **values))
            result.created += 1
        elif any(getattr(st, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(st, k, v)
            st.updated_at = now
            result.updated += 1
        else:
            result.unchanged += 1
    for phone, st in staff_by_phone.items():
        if phone not in seen and st.active:
            st.active = False
            st.updated_at = now
            result.deactivated += 1
    session.flush()
    return result


def import_roster(session: Session, *, path: Path, now: datetime) -> ImportResult:
    """Read, validate and apply: raises RosterError or RosterProblems before writing anything."""
    rows = validate(read_rows(path))
    return apply(session, rows=rows, now=now)
