"""Printable minutes: `fieldbot minutes --school` for a school of 200 handovers, time per page.

A SQLite database in a temporary directory gets one school with 200 approved pupils, two batches (one from the
programme with 200 serials, one from a sponsor without) and 200 handovers. Measured, alternating arms, medians:
  - school PDF: ``reports.minutes.school_pdf`` (read every sheet in two queries, lay out, write): ms per page;
  - one handover's PDF (what /bangiao pays after saving): ms per document;
  - the same 200 handover pages laid out with fpdf2's own ``multi_cell`` and ``table`` (the obvious way),
    for the ratio: those re-measure the whole line for every character added.
Goal: <= 20 ms a page for the school document. CPU time is printed beside wall time: on a shared machine
the wall clock also counts other processes' turns.

Run:  .venv/bin/python bench/bench_minutes.py [--handovers 200] [--rounds 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2021, 12, 1, 1, 0, tzinfo=UTC)
FIRST = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE = ["Văn", "Thị", "Minh", "Ngọc", "Gia", "Thanh", "Hồng", "Quốc"]
LAST = ["An", "Bình", "Châu", "Dũng", "Đức", "Hà", "Hải", "Hòa", "Khánh", "Lan", "Linh", "Mai", "Nam", "Ngân"]


def seed(url: str, n: int) -> None:
    from sqlalchemy import insert

    from storage.db import create_all, make_engine
    from storage.models import Batch, Device, District, Handover, School, Sponsor, Staff, Student

    engine = make_engine(url)
    create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(District), [{"id": 1, "code": "TDM", "name": "Thành phố Thủ Dầu Một"}])
        conn.execute(
            insert(School),
            [{"id": 1, "code": "TH-PHUHOA1", "name": "Trường Tiểu học Phú Hòa 1", "level": "TH", "district_id": 1}],
        )
        staff = [("Nguyễn Thị Lan", "principal", "+84901000001"), ("Trần Văn Minh", "teacher", "+84901000002")]
        conn.execute(
            insert(Staff),
            [
                {
                    "id": i,
                    "full_name": name,
                    "phone": phone,
                    "role": role,
                    "district_id": 1,
                    "school_id": 1,
                    "active": True,
                    "language": "vi",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i, (name, role, phone) in enumerate(staff, start=1)
            ],
        )
        conn.execute(
            insert(Sponsor),
            [{"id": 1, "name": "Công ty Cổ phần Công nghệ Bình Dương", "kind": "business", "created_at": NOW}],
        )
        half = n // 2
        conn.execute(
            insert(Batch),
            [
                {
                    "id": 1,
                    "school_id": 1,
                    "source": "programme",
                    "received_on": date(2021, 11, 15),
                    "quantity": half,
                    "device_type": "laptop",
                    "brand_model": "Dell Latitude 3420 Core i5 8GB 256GB SSD",
                    "condition": "Mới",
                    "handed_over": half,
                    "recorded_by": 1,
                    "created_at": NOW,
                },
                {
                    "id": 2,
                    "school_id": 1,
                    "source": "other",
                    "sponsor_id": 1,
                    "received_on": date(2021, 11, 16),
                    "quantity": n - half,
                    "device_type": "tablet",
                    "brand_model": "Samsung Galaxy Tab A8",
                    "condition": "Đã qua sử dụng - tốt",
                    "handed_over": n - half,
                    "recorded_by": 1,
                    "created_at": NOW,
                },
            ],
        )
        conn.execute(
            insert(Device), [{"id": i, "batch_id": 1, "serial": f"DL3420-{i:06d}"} for i in range(1, half + 1)]
        )
        conn.execute(
            insert(Student),
            [
                {
                    "id": i,
                    "school_id": 1,
                    "code": f"0792{i:08d}",
                    "full_name": f"{FIRST[i % 12]} {MIDDLE[i % 8]} {LAST[i % 14]}",
                    "birth_date": date(2011, 1 + i % 12, 1 + i % 28),
                    "gender": "male",
                    "class_name": f"{1 + i % 5}A{1 + i % 3}",
                    "category": "poor",
                    "need": "device",
                    "guardian_name": f"{FIRST[(i + 3) % 12]} {MIDDLE[(i + 1) % 8]} {LAST[(i + 5) % 14]}",
                    "guardian_phone": f"+8491{i:07d}",
                    "status": "approved",
                    "registered_by": 2,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(1, n + 1)
            ],
        )
        conn.execute(
            insert(Handover),
            [
                {
                    "id": i,
                    "student_id": i,
                    "batch_id": 1 if i <= half else 2,
                    "device_id": i if i <= half else None,
                    "school_id": 1,
                    "handed_over_on": date(2021, 11, 20 + i % 8),
                    "recorded_by": 2,
                    "status": "active",
                    "csdl_due_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for i in range(1, n + 1)
            ],
        )
    engine.dispose()


def naive_pages(sheets, programme) -> bytes:
    """The same handover sheets with fpdf2's multi_cell and table: the baseline."""
    from fpdf import FPDF
    from fpdf.enums import XPos
    from fpdf.fonts import FontFace

    from reports.minutes import FAMILY, _font_files, date_line

    pdf = FPDF(format="A4")
    for style, path in _font_files().items():
        pdf.add_font(FAMILY, style, str(path))
    pdf.set_margins(20, 12, 15)
    w = programme.minutes
    for sh in sheets:
        pdf.add_page()
        pdf.set_font(FAMILY, "B", 10)
        pdf.multi_cell(78, 5, sh.school.upper(), align="C", new_x=XPos.LMARGIN)
        pdf.multi_cell(0, 5, w.nation, align="R", new_x=XPos.LMARGIN)
        pdf.set_font(FAMILY, "I", 10.5)
        pdf.multi_cell(0, 5.5, date_line(sh.place, sh.day), align="R", new_x=XPos.LMARGIN)
        pdf.set_font(FAMILY, "B", 14)
        pdf.multi_cell(0, 7, w.title, align="C", new_x=XPos.LMARGIN)
        pdf.set_font(FAMILY, "", 11)
        for line in (
            w.basis.format(programme=programme.programme.name, letter=programme.programme.letter),
            f"Đại diện: Ông/Bà {sh.principal} — Chức vụ: Hiệu trưởng",
            f"Học sinh: {sh.pupil} — Lớp: {sh.class_name}",
            f"Cha/mẹ hoặc người giám hộ: {sh.guardian} — Điện thoại: {sh.guardian_phone}",
        ):
            pdf.multi_cell(0, 5.6, line, new_x=XPos.LMARGIN)
        with pdf.table(col_widths=(10, 23, 45, 41, 22, 34), headings_style=FontFace(emphasis="BOLD")) as table:
            head = table.row()
            for h in ("STT", "Loại máy", "Hãng, model", "Số sê-ri", "Tình trạng", "Nguồn"):
                head.cell(h)
            for i, d in enumerate(sh.devices, start=1):
                row = table.row()
                for value in (str(i), d.kind, d.model, d.serial, d.condition, d.source):
                    row.cell(value)
        pdf.multi_cell(0, 5.6, w.commitments, new_x=XPos.LMARGIN)
        for title, name in (("ĐẠI DIỆN NHÀ TRƯỜNG", sh.principal), ("HỌC SINH", sh.pupil)):
            pdf.multi_cell(0, 5, f"{title}\n(Ký, ghi rõ họ tên)\n\n\n{name}", align="C", new_x=XPos.LMARGIN)
    return bytes(pdf.output())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--handovers", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="50 handovers, 2 rounds")
    args = ap.parse_args()
    if args.quick:
        args.handovers, args.rounds = min(args.handovers, 50), 2

    from bot.settings import DEFAULT_PROGRAMME
    from core.programme import load_programme
    from reports.minutes import handover_pdf, handover_sheet, handover_sheets, school_pdf
    from storage.db import make_engine, session_scope
    from storage.scope import Scope

    programme = load_programme(DEFAULT_PROGRAMME)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        seed(url, args.handovers)
        engine = make_engine(url)
        scope = Scope(district_id=1, school_id=1)
        with session_scope(engine) as s:  # warm-up: fonts cut down once per process, imports
            handover_pdf(handover_sheet(s, programme=programme, scope=scope, handover_id=1), programme=programme)
        school_ms, school_cpu, single_ms, naive_ms = [], [], [], []
        pages = 0
        for _ in range(args.rounds):
            with session_scope(engine) as s:
                t, c = time.perf_counter(), time.process_time()
                result = school_pdf(s, programme=programme, school_id=1)
                school_ms.append((time.perf_counter() - t) * 1000)
                school_cpu.append((time.process_time() - c) * 1000)
                pages = result.pages
                t = time.perf_counter()
                handover_pdf(
                    handover_sheet(s, programme=programme, scope=scope, handover_id=args.handovers // 2),
                    programme=programme,
                )
                single_ms.append((time.perf_counter() - t) * 1000)
                sheets = handover_sheets(s, programme=programme, scope=scope)
                t = time.perf_counter()
                naive_pages(sheets, programme)
                naive_ms.append((time.perf_counter() - t) * 1000 / len(sheets))
        engine.dispose()
    per_page = statistics.median(school_ms) / pages
    naive = statistics.median(naive_ms)
    print(
        f"school of {args.handovers} handovers: {pages} pages (2 receipts + {args.handovers} handovers), "
        f"{len(result.pdf) / 1024:.0f} KiB"
    )
    cpu = statistics.median(school_cpu) / pages
    print(
        f"  fieldbot minutes --school: {statistics.median(school_ms):,.0f} ms, {per_page:.1f} ms/page wall, "
        f"{cpu:.1f} ms/page CPU (goal <= 20 ms/page)"
    )
    print(f"  one handover's PDF (after /bangiao): {statistics.median(single_ms):.0f} ms")
    print(f"  fpdf2 multi_cell + table, same pages: {naive:.1f} ms/page -> ours {per_page / naive:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
