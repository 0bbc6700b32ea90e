"""Web view: server time of the overview page for a district (60 schools / 10,000 pupils, aim <= 100 ms) and for a
province (1,000 schools / 200,000 pupils in 25 districts, aim <= 300 ms), on SQLite and PostgreSQL.

The page is requested through the real aiohttp application (session cookie, scope, CSP middleware, Jinja2) with
an in-process client on localhost; after seeding, the planner's statistics are refreshed as a live database has
them (PostgreSQL: autovacuum's ANALYZE, here VACUUM ANALYZE at once; SQLite: the scheduler's daily
``storage.db.refresh_statistics``); measured side by side in one run with the bare ``build_summary`` (the queries
alone) and ``/healthz`` (the HTTP round trip alone), alternating arms, medians. The chart (a second request,
matplotlib) is measured for the district too.

Run:  .venv/bin/python bench/bench_web.py [--quick] [--rounds 7] [--no-postgres]
      --quick: a district of 60 schools / 10,000 pupils and a province of 200 schools / 40,000 pupils.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2021, 12, 1, 1, 0, tzinfo=UTC)
CHUNK = 5000


def seed(engine, *, districts: int, schools_per_district: int, pupils: int, programme) -> dict:
    """Bulk Core inserts: a province, its districts and schools, a principal and a teacher per school, pupils
    (80% approved), one batch per school, a handover for half the approved pupils (a tenth of them late for the
    sector database), a flag on every 100th handover. Returns the ids the benchmark signs in as."""
    from sqlalchemy import insert

    from storage.models import Batch, District, Flag, Handover, Province, School, Staff, Student

    n_schools = districts * schools_per_district
    per_school = max(1, pupils // n_schools)
    with engine.begin() as conn:
        conn.execute(insert(Province), [{"id": 1, "code": "BD", "name": "Tỉnh Bình Dương"}])
        conn.execute(
            insert(District),
            [
                {"id": d, "code": f"D{d:02d}", "name": f"Huyện số {d}", "province_id": 1}
                for d in range(1, districts + 1)
            ],
        )
        conn.execute(
            insert(School),
            [
                {
                    "id": s,
                    "code": f"S{s:05d}",
                    "name": f"Trường {'Tiểu học' if s % 2 else 'THCS'} Số {s}",
                    "level": "TH" if s % 2 else "THCS",
                    "district_id": (s - 1) // schools_per_district + 1,
                    "active": True,
                    "needs_report_submitted_at": NOW if s % 3 else None,
                }
                for s in range(1, n_schools + 1)
            ],
        )
        staff = []
        for s in range(1, n_schools + 1):
            d = (s - 1) // schools_per_district + 1
            for k, role in ((0, "principal"), (1, "teacher")):
                staff.append(
                    {
                        "id": 2 * s - 1 + k,
                        "full_name": f"{'Hiệu trưởng' if k == 0 else 'Giáo viên'} {s}",
                        "phone": f"+8490{k}{s:06d}",
                        "role": role,
                        "district_id": d,
                        "school_id": s,
                        "province_id": None,
                        "active": True,
                        "language": "vi",
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                )
        base = 2 * n_schools
        officers = {"district": base + 1, "province": base + 1 + districts}
        for d in range(1, districts + 1):
            staff.append(
                {
                    "id": base + d,
                    "full_name": f"Chuyên viên {d}",
                    "phone": f"+84913{d:06d}",
                    "role": "district_officer",
                    "district_id": d,
                    "school_id": None,
                    "province_id": None,
                    "active": True,
                    "language": "vi",
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        staff.append(
            {
                "id": officers["province"],
                "full_name": "Chuyên viên Sở",
                "phone": "+84274000001",
                "role": "province_officer",
                "district_id": None,
                "school_id": None,
                "province_id": 1,
                "active": True,
                "language": "vi",
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
        conn.execute(insert(Staff), staff)
        conn.execute(
            insert(Batch),
            [
                {
                    "id": s,
                    "school_id": s,
                    "source": "programme",
                    "received_on": date(2021, 11, 10),
                    "quantity": per_school,
                    "device_type": "laptop",
                    "brand_model": "Dell",
                    "condition": "Mới",
                    "handed_over": per_school * 2 // 5,
                    "recorded_by": 2 * s - 1,
                    "created_at": NOW,
                }
                for s in range(1, n_schools + 1)
            ],
        )
        students, handovers, flags = [], [], []
        sid = hid = 0
        for s in range(1, n_schools + 1):
            for i in range(per_school):
                sid += 1
                status = "approved" if i % 5 else "pending"
                students.append(
                    {
                        "id": sid,
                        "school_id": s,
                        "code": f"{sid:012d}",
                        "full_name": f"Học sinh {sid}",
                        "birth_date": date(2012, 1, 1),
                        "gender": "female" if i % 2 else "male",
                        "class_name": f"{3 + i % 3}A",
                        "category": ("poor", "near_poor", "covid_orphan", "other_hardship")[i % 4],
                        "hardship_reason": "Khó khăn" if i % 4 == 3 else None,
                        "need": ("device", "internet", "both")[i % 3],
                        "status": status,
                        "late": False,
                        "registered_by": 2 * s,
                        "created_at": NOW - timedelta(days=10),
                        "updated_at": NOW - timedelta(days=10),
                    }
                )
                if status == "approved" and i % 2 == 0:
                    hid += 1
                    on = date(2021, 11, 20)
                    due = programme.handover_update_due(on)
                    handovers.append(
                        {
                            "id": hid,
                            "student_id": sid,
                            "batch_id": s,
                            "school_id": s,
                            "handed_over_on": on,
                            "recorded_by": 2 * s,
                            "status": "active",
                            "csdl_due_at": due,
                            "csdl_updated_at": None if hid % 10 == 0 else due - timedelta(hours=3),
                            "created_at": NOW,
                            "updated_at": NOW,
                        }
                    )
                    if hid % 100 == 0:
                        flags.append(
                            {
                                "handover_id": hid,
                                "school_id": s,
                                "kind": "capture_time",
                                "params": {"shot": "01/01/2020", "handed": "20/11/2021", "gap": "690", "max": "30"},
                                "created_at": NOW,
                            }
                        )
        for rows, model in ((students, Student), (handovers, Handover), (flags, Flag)):
            for i in range(0, len(rows), CHUNK):
                conn.execute(insert(model), rows[i : i + CHUNK])
    return {"district_officer": officers["district"], "province_officer": officers["province"], "pupils": sid}


async def measure(engine, programme, ids: dict, rounds: int, media: Path, *, chart: bool) -> dict:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.web import WebConfig, build_web_app
    from core.clock import FixedClock
    from reports.summary import build_summary
    from storage.db import session_scope
    from storage.models import Staff
    from storage.scope import Scope
    from storage.web import open_session

    clock = FixedClock(NOW)
    app = build_web_app(WebConfig(db=engine, programme=programme, clock=clock, media_dir=media, public_url="http://x"))
    client = TestClient(TestServer(app))
    await client.start_server()
    out: dict[str, dict[str, float]] = {}
    try:
        for who in ("district_officer", "province_officer"):
            with session_scope(engine) as s:
                cookie = open_session(s, staff_id=ids[who], via="link", now=NOW)
                scope = Scope.for_staff(s.get(Staff, ids[who]))
            client.session.cookie_jar.clear()
            client.session.cookie_jar.update_cookies({"fb_session": cookie})
            arms = {"page": [], "summary": [], "healthz": []}
            if chart and who == "district_officer":
                arms["chart"] = []

            def summary(scope: Scope = scope) -> None:
                with session_scope(engine) as s:
                    build_summary(s, scope=scope, programme=programme, now=NOW)

            assert (await client.get("/")).status == 200  # warm: templates compiled, connections pooled
            for _ in range(rounds):
                t = time.perf_counter()
                resp = await client.get("/")
                await resp.read()
                arms["page"].append(time.perf_counter() - t)
                assert resp.status == 200
                t = time.perf_counter()
                await asyncio.to_thread(summary)
                arms["summary"].append(time.perf_counter() - t)
                t = time.perf_counter()
                await (await client.get("/healthz")).read()
                arms["healthz"].append(time.perf_counter() - t)
                if "chart" in arms:
                    t = time.perf_counter()
                    await (await client.get("/chart.png")).read()
                    arms["chart"].append(time.perf_counter() - t)
            out[who] = {k: statistics.median(v) * 1000 for k, v in arms.items()}
    finally:
        await client.close()
    return out


def engine_for(postgres: bool, workdir: Path, tag: str):
    from sqlalchemy import create_engine, text

    from storage.db import create_all, make_engine

    if not postgres:
        engine = make_engine(f"sqlite:///{workdir / f'{tag}.db'}")
        create_all(engine)
        return engine, None
    schema = f"bench_web_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    create_all(engine)
    return engine, (admin, schema)


def analyze(engine) -> None:
    from sqlalchemy import text

    from storage.db import refresh_statistics

    if engine.dialect.name == "sqlite":
        refresh_statistics(engine)
        return
    from sqlmodel import SQLModel

    # This schema's tables only (the search path names it): a bare VACUUM would walk every schema of the
    # shared database, other benchmarks' millions of rows included.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in SQLModel.metadata.sorted_tables:
            conn.execute(text(f'VACUUM ANALYZE "{table.name}"'))


def drop(pg) -> None:
    from sqlalchemy import text

    if pg is None:
        return
    admin, schema = pg
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def main() -> int:
    from bot.settings import DEFAULT_PROGRAMME
    from core.programme import load_programme

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="province of 200 schools / 40,000 pupils")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = ap.parse_args()
    programme = load_programme(DEFAULT_PROGRAMME)
    cases = [
        ("district", 1, 60, 10_000, 100),
        ("province", 5, 40, 40_000, 300) if args.quick else ("province", 25, 40, 200_000, 300),
    ]
    dbs = [("SQLite", False)] + ([] if args.no_postgres else [("PostgreSQL", True)])
    print(
        f"{'case':<10} {'db':<11} {'schools':>7} {'pupils':>8} {'page ms':>8} {'queries ms':>10} "
        f"{'http ms':>8} {'chart ms':>8} {'aim ms':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, districts, per_district, pupils, aim in cases:
            for db_name, pg in dbs:
                engine, handle = engine_for(pg, Path(tmp), f"{name}")
                try:
                    t = time.perf_counter()
                    ids = seed(
                        engine,
                        districts=districts,
                        schools_per_district=per_district,
                        pupils=pupils,
                        programme=programme,
                    )
                    analyze(engine)
                    seeded = time.perf_counter() - t
                    who = "district_officer" if name == "district" else "province_officer"
                    got = asyncio.run(
                        measure(engine, programme, ids, args.rounds, Path(tmp), chart=name == "district")
                    )[who]
                    print(
                        f"{name:<10} {db_name:<11} {districts * per_district:>7,} {ids['pupils']:>8,} "
                        f"{got['page']:>8.1f} {got['summary']:>10.1f} {got['healthz']:>8.1f} "
                        f"{got.get('chart', float('nan')):>8.1f} {aim:>7}   (seeded in {seeded:.1f} s)",
                        flush=True,
                    )
                finally:
                    engine.dispose()
                    drop(handle)
    print("page: GET / as the district (province) officer; queries: build_summary alone; http: GET /healthz.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
