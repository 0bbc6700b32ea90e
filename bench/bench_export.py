"""Export throughput and memory: 10,000 and 100,000 students, each with a handover (device, photo, some flags).

For each size a database is seeded with bulk Core inserts (40 schools of one district), then the district's
workbook is exported in a *fresh subprocess* that reports:
  - rows/s: rows written to the workbook (students + batches + handovers) per second of export;
  - peak RSS: ru_maxrss at the end, and its growth over the process after imports and a connection
    (the export's own high-water mark);
  - Python heap peak (tracemalloc), in another fresh subprocess (slower: tracing costs time).
The goal is memory that stays flat as rows grow: peak(100k) / peak(10k) <= 1.5.

Run:  .venv/bin/python bench/bench_export.py [--sizes 10000 100000] [--quick] [--url postgresql://...]
      (default: a SQLite file in a temporary directory; --url runs against an empty PostgreSQL database or
       schema URL, dropping and recreating the tables for each size)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCHOOLS = 40
CHUNK = 5000
UTC = UTC
NOW = datetime(2021, 12, 1, 1, 0, tzinfo=UTC)
FIRST = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi", "Đỗ"]
MIDDLE = ["Văn", "Thị", "Minh", "Ngọc", "Gia", "Thanh", "Hồng", "Quốc"]
LAST = [
    "An",
    "Bình",
    "Châu",
    "Dũng",
    "Đức",
    "Hà",
    "Hải",
    "Hòa",
    "Khánh",
    "Lan",
    "Linh",
    "Mai",
    "Nam",
    "Ngân",
    "Phúc",
    "Quân",
    "Tâm",
    "Thảo",
    "Trang",
    "Tuấn",
    "Uyên",
    "Vy",
    "Yến",
]
CATEGORIES = ["poor", "near_poor", "covid_orphan", "other_hardship"]
NEEDS = ["device", "internet", "both"]


def seed(url: str, n: int) -> None:
    """n students in SCHOOLS schools, each with one handover of a device from its school's batches, one photo
    per handover and a flag on every 50th. Bulk Core inserts in chunks: a few seconds for 100,000."""
    from sqlalchemy import insert

    from bot.settings import DEFAULT_PROGRAMME
    from core.programme import load_programme
    from storage.db import create_all, drop_all, make_engine
    from storage.models import (
        Batch,
        Device,
        District,
        Flag,
        Handover,
        HandoverPhoto,
        Photo,
        School,
        Staff,
        Student,
    )

    programme = load_programme(DEFAULT_PROGRAMME)
    engine = make_engine(url)
    drop_all(engine)
    create_all(engine)
    per_school = -(-n // SCHOOLS)
    with engine.begin() as conn:
        conn.execute(insert(District), [{"id": 1, "code": "TDM", "name": "Thành phố Thủ Dầu Một"}])
        conn.execute(
            insert(School),
            [
                {
                    "id": s,
                    "code": f"S{s:03d}",
                    "name": f"Trường {'Tiểu học' if s % 2 else 'THCS'} Số {s}",
                    "level": "TH" if s % 2 else "THCS",
                    "district_id": 1,
                    "active": True,
                }
                for s in range(1, SCHOOLS + 1)
            ],
        )
        conn.execute(
            insert(Staff),
            [
                {
                    "id": s,
                    "full_name": f"Giáo viên {s}",
                    "phone": f"+849010{s:05d}",
                    "role": "teacher",
                    "district_id": 1,
                    "school_id": s,
                    "active": True,
                    "language": "vi",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
                for s in range(1, SCHOOLS + 1)
            ],
        )
        # One batch per school and source, sized to the handovers it serves.
        batches = []
        for s in range(1, SCHOOLS + 1):
            count = min(per_school, n - (s - 1) * per_school)
            half = max(0, count) // 2
            batches.append(
                {
                    "id": 2 * s - 1,
                    "school_id": s,
                    "source": "programme",
                    "received_on": date(2021, 11, 10),
                    "quantity": max(1, half),
                    "device_type": "laptop",
                    "brand_model": "Dell Latitude 3420",
                    "condition": "Mới",
                    "handed_over": half,
                    "recorded_by": s,
                    "created_at": NOW,
                }
            )
            batches.append(
                {
                    "id": 2 * s,
                    "school_id": s,
                    "source": "other",
                    "received_on": date(2021, 11, 12),
                    "quantity": max(1, count - half),
                    "device_type": "tablet",
                    "brand_model": "Galaxy Tab",
                    "condition": "Đã qua sử dụng",
                    "handed_over": count - half,
                    "recorded_by": s,
                    "created_at": NOW,
                }
            )
        conn.execute(insert(Batch), batches)

    for start in range(0, n, CHUNK):
        ids = range(start + 1, min(n, start + CHUNK) + 1)
        students, devices, handovers, photos, links, flags = [], [], [], [], [], []
        for i in ids:
            school = (i - 1) // per_school + 1
            batch = 2 * school - 1 if (i - 1) % per_school < per_school // 2 else 2 * school
            on = date(2021, 11, 15) + timedelta(days=i % 10)
            name = f"{FIRST[i % 12]} {MIDDLE[i % 8]} {LAST[i % 23]}"
            students.append(
                {
                    "id": i,
                    "school_id": school,
                    "code": f"{i:012d}",
                    "full_name": name,
                    "birth_date": date(2010 + i % 5, 1 + i % 12, 1 + i % 28),
                    "gender": "male" if i % 2 else "female",
                    "class_name": f"{1 + i % 9}A",
                    "category": CATEGORIES[i % 4],
                    "hardship_reason": "Gia đình khó khăn do dịch bệnh" if i % 4 == 3 else None,
                    "need": NEEDS[i % 3],
                    "guardian_name": f"{FIRST[(i + 3) % 12]} Văn Ba",
                    "guardian_phone": f"+8491{i % 10_000_000:07d}",
                    "status": "approved",
                    "late": False,
                    "registered_by": school,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
            devices.append({"id": i, "batch_id": batch, "serial": f"SN{i:010d}"})
            handovers.append(
                {
                    "id": i,
                    "student_id": i,
                    "batch_id": batch,
                    "device_id": i,
                    "school_id": school,
                    "handed_over_on": on,
                    "recorded_by": school,
                    "status": "active",
                    "csdl_due_at": programme.handover_update_due(on),
                    "csdl_updated_at": NOW if i % 3 else None,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
            photos.append(
                {
                    "id": i,
                    "sha256": f"{i:064x}",
                    "dhash": i,
                    "path": f"photos/{i % 256:02x}/{i:064x}.jpg",
                    "thumb_path": f"thumbs/{i % 256:02x}/{i:064x}.jpg",
                    "width": 1600,
                    "height": 1200,
                    "size_bytes": 250_000,
                    "had_location": False,
                    "created_at": NOW,
                }
            )
            links.append({"id": i, "handover_id": i, "photo_id": i, "kind": "scene"})
            if i % 50 == 0:
                flags.append(
                    {
                        "handover_id": i,
                        "school_id": school,
                        "kind": "capture_time",
                        "params": {"shot": "01/01/2020", "handed": "20/11/2021", "gap": "690", "max": "30"},
                        "created_at": NOW,
                    }
                )
        with engine.begin() as conn:
            conn.execute(insert(Student), students)
            conn.execute(insert(Device), devices)
            conn.execute(insert(Handover), handovers)
            conn.execute(insert(Photo), photos)
            conn.execute(insert(HandoverPhoto), links)
            if flags:
                conn.execute(insert(Flag), flags)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:  # explicit ids above: move the sequences past them
            from sqlalchemy import text

            for table in (
                "district",
                "school",
                "staff",
                "batch",
                "student",
                "device",
                "handover",
                "photo",
                "handover_photo",
                "flag",
            ):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    )
                )
            conn.execute(text("ANALYZE"))
    engine.dispose()


def child(url: str, out: str, trace: bool) -> None:
    """Runs in a fresh interpreter: export the district once and print one JSON line."""
    import tracemalloc

    from bot.settings import DEFAULT_PROGRAMME
    from core.programme import load_programme
    from reports.export import write_export
    from storage.db import make_engine, session_scope
    from storage.scope import Scope

    programme = load_programme(DEFAULT_PROGRAMME)
    engine = make_engine(url)
    with engine.connect() as conn:  # connection pool and dialect warmed up before the baseline
        conn.exec_driver_sql("SELECT 1")
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    with session_scope(engine) as session:
        result = write_export(session, scope=Scope(district_id=1), out=Path(out), programme=programme, now=NOW)
    seconds = time.perf_counter() - t0
    heap_peak = tracemalloc.get_traced_memory()[1] if trace else None
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = result.students + result.batches + result.handovers
    print(
        json.dumps(
            {
                "rows": rows,
                "students": result.students,
                "handovers": result.handovers,
                "seconds": seconds,
                "rss_peak_mb": peak_kb / 1024,
                "rss_delta_mb": (peak_kb - base_kb) / 1024,
                "heap_peak_mb": heap_peak / 2**20 if heap_peak is not None else None,
                "file_mb": Path(out).stat().st_size / 2**20,
            }
        )
    )


def run_child(url: str, out: Path, *, trace: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", "--url", url, "--out", str(out)]
    if trace:
        cmd.append("--trace")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"export child failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--quick", action="store_true", help="2,000 and 20,000 students")
    parser.add_argument("--url", help="database URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.out, args.trace)
        return 0
    sizes = [2_000, 20_000] if args.quick else args.sizes
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for n in sizes:
            url = args.url or f"sqlite:///{Path(tmp) / f'export-{n}.db'}"
            t0 = time.perf_counter()
            seed(url, n)
            seeded = time.perf_counter() - t0
            out = Path(tmp) / f"export-{n}.xlsx"
            r = run_child(url, out, trace=False)
            if not args.no_trace:
                r["heap_peak_mb"] = run_child(url, out, trace=True)["heap_peak_mb"]
            results[n] = r
            heap = f"{r['heap_peak_mb']:.1f} MB" if r.get("heap_peak_mb") is not None else "-"
            print(
                f"{n:>7} students: seeded in {seeded:.1f} s; export {r['rows']} rows in {r['seconds']:.1f} s "
                f"= {r['rows'] / r['seconds']:,.0f} rows/s; RSS peak {r['rss_peak_mb']:.1f} MB "
                f"(+{r['rss_delta_mb']:.1f} MB during export); Python heap peak {heap}; file {r['file_mb']:.1f} MB",
                flush=True,
            )
            os.unlink(out)
    if len(sizes) >= 2:
        small, big = results[sizes[0]], results[sizes[-1]]
        ratio = big["rss_peak_mb"] / small["rss_peak_mb"]
        print(f"peak RSS ratio {sizes[-1]:,}/{sizes[0]:,}: {ratio:.2f}x (goal <= 1.5x)")
        if small.get("heap_peak_mb") and big.get("heap_peak_mb"):
            print(f"Python heap peak ratio: {big['heap_peak_mb'] / small['heap_peak_mb']:.2f}x")
        return 0 if ratio <= 1.5 else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
