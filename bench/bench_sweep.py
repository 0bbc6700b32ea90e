"""Sweep cost against table size: 10k, 100k and 1M handovers (with as many students, and schools, batches and
staff to match), the same small number of items due at every size.

The goal (issue 5): the sweep's cost grows with what is due, not with the table: at 1M no more than 3x its
time at 10k. What is due is held constant on purpose (50 handovers awaiting the sector database, half of
them late; 20 registrations waiting for review; 5 batches not handed over; 3 schools without a needs report)
so the ratio isolates the table size.

Three timings per size, medians of several runs:
- fresh: a sweep that finds and records everything due (rolled back after each run), rules without the digest;
- steady: the sweep every 5 minutes after that (everything already recorded, today's digest included);
- digest: building the district's morning digest once a day (reads the district's rows: grows with them).

    .venv/bin/python bench/bench_sweep.py [--quick] [--postgres] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlmodel import Session

from bot.settings import DEFAULT_PROGRAMME
from core.clock import FixedClock
from core.programme import load_programme
from scheduler.context import SweepContext
from scheduler.digest import build_digest
from scheduler.rules import RULES
from scheduler.sweep import run_sweep, sweep
from storage.db import create_all, make_engine
from storage.models import Batch, District, Handover, School, Staff, Student
from tests.factories import local

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = local(2021, 11, 22, 10)  # after the needs-report deadline: every rule has something due
OPEN_CSDL = 50
PENDING_REVIEW = 20
WAITING_BATCHES = 5
LATE_SCHOOLS = 3
CHUNK = 20_000


def seed(engine, n: int, programme) -> dict:
    """Bulk Core inserts (executemany), not ORM objects: 4-6x faster, and 1M rows in reasonable time."""
    schools = max(20, n // 100)
    batches = max(10, n // 20)
    made = local(2021, 11, 1, 9)
    day = date(2021, 11, 5)
    with engine.begin() as conn:
        conn.execute(District.__table__.insert(), [{"id": 1, "code": "TDM", "name": "Thành phố Thủ Dầu Một"}])
        conn.execute(
            School.__table__.insert(),
            [
                {
                    "id": i,
                    "code": f"S{i:06d}",
                    "name": f"Trường số {i}",
                    "level": "TH",
                    "district_id": 1,
                    "active": True,
                    "needs_report_submitted_at": None if i <= LATE_SCHOOLS else made,
                }
                for i in range(1, schools + 1)
            ],
        )
        staff = [
            {
                "id": 1,
                "full_name": "Lê Minh Tiến",
                "phone": "+84913860438",
                "email": "leminhtien@tptdm.edu.vn",
                "role": "district_officer",
                "district_id": 1,
                "school_id": None,
                "active": True,
                "language": "vi",
                "created_at": made,
                "updated_at": made,
            }
        ]
        for i in range(1, schools + 1):
            for k, role in ((0, "principal"), (1, "teacher")):
                staff.append(
                    {
                        "id": 1 + 2 * i - 1 + k,
                        "full_name": f"Cán bộ {i}-{k}",
                        "phone": f"+8490{2 * i + k:07d}",
                        "email": None,
                        "role": role,
                        "district_id": 1,
                        "school_id": i,
                        "active": True,
                        "language": "vi",
                        "created_at": made,
                        "updated_at": made,
                    }
                )
        conn.execute(Staff.__table__.insert(), staff)
        teacher = lambda school: 1 + 2 * school
        for lo in range(1, batches + 1, CHUNK):
            conn.execute(
                Batch.__table__.insert(),
                [
                    {
                        "id": b,
                        "school_id": 1 + b % schools,
                        "source": "programme",
                        "sponsor_id": None,
                        "received_on": day,
                        "quantity": 20,
                        "device_type": "laptop",
                        "brand_model": "Dell Latitude 3420",
                        "condition": "mới",
                        "handed_over": 20 if b > WAITING_BATCHES else 12,
                        "recorded_by": teacher(1 + b % schools) - 1,
                        "created_at": made,
                    }
                    for b in range(lo, min(batches, lo + CHUNK - 1) + 1)
                ],
            )
        total_students = n + PENDING_REVIEW
        for lo in range(1, total_students + 1, CHUNK):
            conn.execute(
                Student.__table__.insert(),
                [
                    {
                        "id": s,
                        "school_id": 1 + s % schools,
                        "code": f"{s:012d}",
                        "full_name": f"Học sinh {s}",
                        "birth_date": date(2012, 1, 1),
                        "gender": "male",
                        "class_name": "6A1",
                        "category": "poor",
                        "need": "device",
                        "status": "approved" if s <= n else "pending",
                        "late": False,
                        "registered_by": teacher(1 + s % schools),
                        "created_at": made,
                        "updated_at": made,
                    }
                    for s in range(lo, min(total_students, lo + CHUNK - 1) + 1)
                ],
            )
        due_open = programme.handover_update_due(NOW.astimezone(programme.tz).date() - timedelta(days=1))
        for lo in range(1, n + 1, CHUNK):
            rows = []
            for h in range(lo, min(n, lo + CHUNK - 1) + 1):
                open_ = h > n - OPEN_CSDL
                handed = day if not open_ else (NOW.astimezone(programme.tz).date() - timedelta(days=1 if h % 2 else 3))
                rows.append(
                    {
                        "id": h,
                        "student_id": h,
                        "batch_id": 1 + h % batches,
                        "device_id": None,
                        "school_id": 1 + h % schools,
                        "handed_over_on": handed,
                        "recorded_by": teacher(1 + h % schools),
                        "status": "active",
                        "csdl_due_at": programme.handover_update_due(handed) if open_ else due_open,
                        "csdl_updated_at": None if open_ else made,
                        "created_at": made,
                        "updated_at": made,
                    }
                )
            conn.execute(Handover.__table__.insert(), rows)
    return {"schools": schools, "batches": batches, "students": n + PENDING_REVIEW}


def timed(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def measure(engine, programme, repeat: int) -> dict:
    no_digest = tuple(r for r in RULES if r.name != "digest")

    def fresh():
        with Session(engine) as s:
            try:
                result = run_sweep(s, programme=programme, now=NOW, rules=no_digest)
                assert result.created
            finally:
                s.rollback()

    def digest():
        with Session(engine) as s:
            build_digest(SweepContext(session=s, programme=programme, now=NOW), district_id=1)

    out = {"fresh": timed(fresh, repeat), "digest": timed(digest, max(1, repeat // 3))}
    first = sweep(engine, programme=programme, now=NOW)  # records everything, today's digest too
    out["found"] = len(first.found)
    out["steady"] = timed(lambda: sweep(engine, programme=programme, now=NOW + timedelta(minutes=5)), repeat)
    return out


def engine_for(size: int, postgres: bool, workdir: Path):
    if not postgres:
        url = f"sqlite:///{workdir / f'sweep_{size}.db'}"
        return make_engine(url), None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    return make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}"), (admin, schema)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10k and 100k only")
    ap.add_argument("--postgres", action="store_true", help=f"PostgreSQL at {PG_URL} instead of SQLite")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    programme = load_programme(DEFAULT_PROGRAMME)
    FixedClock(NOW)  # the sweep is given NOW explicitly; nothing reads the wall clock
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            engine, pg = engine_for(n, args.postgres, Path(tmp))
            try:
                create_all(engine)
                t = time.perf_counter()
                counts = seed(engine, n, programme)
                seeded = time.perf_counter() - t
                if pg:
                    with engine.begin() as conn:
                        conn.execute(text("ANALYZE"))
                results[n] = measure(engine, programme, args.repeat)
                r = results[n]
                print(
                    f"{n:>9,} handovers ({counts['students']:,} students, {counts['schools']:,} schools, "
                    f"{counts['batches']:,} batches; seeded in {seeded:.1f} s): due {r['found']} | "
                    f"fresh sweep {r['fresh']:.1f} ms | steady sweep {r['steady']:.1f} ms | "
                    f"digest {r['digest']:.1f} ms",
                    flush=True,
                )
            finally:
                engine.dispose()
                if pg:
                    admin, schema = pg
                    with admin.begin() as conn:
                        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                    admin.dispose()
    small, big = results[sizes[0]], results[sizes[-1]]
    label = f"{sizes[-1] // 1000}k/{sizes[0] // 1000}k"
    db = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"\n{db} ratio {label}: fresh sweep {big['fresh'] / small['fresh']:.2f}x, steady sweep "
        f"{big['steady'] / small['steady']:.2f}x (goal <= 3x); digest {big['digest'] / small['digest']:.1f}x "
        f"(once a day, reads the district's rows)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
