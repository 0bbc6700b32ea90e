"""National size on PostgreSQL (issue 18): 40,000 schools in 700 districts of 63 provinces (one province of
1,000 schools in 11 districts), 2.2 million pupils in need, 1 million handovers. Measured, medians of a few
repetitions, each with its aim:

1. the sweep (``scheduler.sweep``: what one scheduler tick costs): *fresh* = the first sweep that finds and
   records what is due (rolled back after each run; rules without the digest, as in bench_sweep.py), *morning*
   = the same with the daily digests (700 districts + 63 provinces, once a day), *steady* = every 5 minutes
   after (everything already recorded, today's digests included) — aim <= 100 ms;
2. a province officer's ``/tonghop`` over its 1,000 schools: ``build_summary`` with the province ``Scope`` and
   ``format_summary`` (the text the chat sends) — aim <= 300 ms;
3. the province export (``write_export``) in a fresh subprocess: rows/s, and peak RSS against a district's
   export (aim: flat, province/district <= 1.5x);
4. the morning digest: ``build_digest`` for one district and ``build_province_digest`` for the province
   (once a day each; no aim given, reported).

What is seeded (``--scale`` multiplies every count; the calendar is the programme's, now = 22/11/2021 10:00,
two days after the needs-report deadline). Pupils are spread over schools round-robin, as registrations
arrive from every school at once, so a province's rows are scattered over the whole table, not clustered:
- 63 provinces, 700 districts (province 1: 11 districts, 1,000 schools), 40,000 schools (1% without a
  submitted needs report); a principal and a teacher per school (each principal linked on Telegram), an
  officer per district and per province;
- 2,200,000 pupils: 87% approved, 5% pending (1 in 4,000 pending for 5 days: overdue for review), rejected,
  withdrawn and withdrawal-requested ones; 10% without a recorded guardian's consent;
- 80,000 batches (two a school; 1 school in 100 has 3 computers not handed over for weeks);
- 1,000,000 handovers, one photo each (no serial numbers), dated over the 60 days before the last 10:
  1 in 1,000 still not confirmed in the sector database (late, escalated to the district), 1 in 50 confirmed
  after the deadline, 1 in 5,000 handed over yesterday and due today (reminders), 1 in 500 withdrawn, 1 in 20
  without signed minutes (1 in 4,000 of them 4 days old: a minutes reminder); a flag on 1 in 200 (a third
  resolved).

Seeding is done inside PostgreSQL (``INSERT ... SELECT generate_series``): about a minute for 2.2 million
pupils. Then ``VACUUM ANALYZE``: a real database is autovacuumed and analysed after bulk loads, so its
visibility map and statistics are current; measuring right after a bulk insert without it would time
hint-bit writes and a planner guessing row counts, which a live deployment does not have.

The seeded schema is left in place (``bench_national`` at scale 1, ``bench_national_<scale>`` otherwise) so
``--keep`` can reuse it; ``--drop`` removes it at the end. Only that schema is ever created or dropped.

In ``bench/run_all.py``: ``--quick`` (= ``--scale 0.05 --repeat 3``, dropped at the end) is a smoke run of
about 15 s (province 1 is then one district of 50 schools, so its figures say nothing about national size); the
full size seeds for about 2 minutes, needs ~3 GB and is left in place for ``--keep``.

Run:  .venv/bin/python bench/bench_national.py [--scale 1] [--keep] [--repeat 5] [--quick] [--drop]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2021, 11, 22, 3, 0, tzinfo=UTC)  # 10:00 in Asia/Ho_Chi_Minh
TODAY = date(2021, 11, 22)
TZ = "Asia/Ho_Chi_Minh"


def schema_for(scale: float) -> str:
    return "bench_national" if scale == 1 else "bench_national_" + f"{scale:g}".replace(".", "_")


def url_for(schema: str) -> str:
    return f"{PG_URL}?options=-csearch_path%3D{schema}"


def sizes(scale: float) -> dict[str, int]:
    provinces = max(3, round(63 * scale))
    districts = max(provinces + 1, round(700 * scale))
    return {
        "provinces": provinces,
        "districts": districts,
        "p1_districts": max(1, round(11 * scale)),
        "schools": round(40_000 * scale),
        "p1_schools": round(1_000 * scale),
        "students": round(2_200_000 * scale),
        "handovers": round(1_000_000 * scale),
    }


# --- seeding, inside PostgreSQL ------------------------------------------------------------------------------


def seed(engine, n: dict[str, int]) -> dict[str, float]:
    """Every table with INSERT ... SELECT generate_series; returns seconds per step."""
    from sqlalchemy import text

    P, D, P1D = n["provinces"], n["districts"], n["p1_districts"]
    N, P1S, S, H = n["schools"], n["p1_schools"], n["students"], n["handovers"]
    made = "timestamptz '2021-09-01 08:00+07'"
    now = f"timestamptz '{NOW.isoformat()}'"
    today = f"date '{TODAY.isoformat()}'"
    # district of school s; province of district d
    district_of = f"(CASE WHEN s <= {P1S} THEN 1 + (s - 1) % {P1D} ELSE {P1D} + 1 + (s - {P1S} - 1) % {D - P1D} END)"
    officer = 2 * N  # district officer of d: officer + d; province officer of p: officer + D + p
    first = "ARRAY['Nguyễn','Trần','Lê','Phạm','Hoàng','Huỳnh','Phan','Vũ','Võ','Đặng','Bùi','Đỗ']"
    middle = "ARRAY['Văn','Thị','Minh','Ngọc','Gia','Thanh','Hồng','Quốc']"
    last = (
        "ARRAY['An','Bình','Châu','Dũng','Đức','Hà','Hải','Hòa','Khánh','Lan','Linh','Mai','Nam','Ngân','Phúc',"
        "'Quân','Tâm','Thảo','Trang','Tuấn','Uyên','Vy','Yến']"
    )
    # A handover's day: 1 in 5,000 yesterday (open: due today), 1 in 4,000 four days ago (no signed minutes yet),
    # the rest spread over the 60 days before the last 10.
    day_of = (
        f"(CASE WHEN h % 5000 = 1 THEN {today} - 1 WHEN h % 4000 = 5 THEN {today} - 4 "
        f"ELSE {today} - 10 - (h * 7) % 60 END)"
    )
    due_of = f"((({day_of}) + 2)::timestamp AT TIME ZONE '{TZ}')"  # programme.handover_update_due
    steps: list[tuple[str, str]] = [
        (
            "province",
            f"INSERT INTO province (id, code, name) SELECT p, 'P' || lpad(p::text, 2, '0'), 'Tỉnh số ' || p "
            f"FROM generate_series(1, {P}) p",
        ),
        (
            "district",
            f"INSERT INTO district (id, code, name, province_id) SELECT d, 'D' || lpad(d::text, 4, '0'), "
            f"'Huyện số ' || d, CASE WHEN d <= {P1D} THEN 1 ELSE 2 + (d - {P1D} - 1) % {P - 1} END "
            f"FROM generate_series(1, {D}) d",
        ),
        (
            "school",
            f"INSERT INTO school (id, code, name, level, district_id, active, needs_report_submitted_at, "
            f"needs_report_submitted_by) SELECT s, 'S' || lpad(s::text, 6, '0'), "
            f"'Trường ' || CASE WHEN s % 2 = 1 THEN 'Tiểu học' ELSE 'THCS' END || ' Số ' || s, "
            f"CASE WHEN s % 2 = 1 THEN 'TH' ELSE 'THCS' END, {district_of}, true, "
            f"CASE WHEN s % 100 = 7 THEN NULL ELSE {made} + interval '70 days' END, "
            f"CASE WHEN s % 100 = 7 THEN NULL ELSE 2 * s - 1 END FROM generate_series(1, {N}) s",
        ),
        (
            "staff",
            f"INSERT INTO staff (id, full_name, phone, email, role, district_id, school_id, province_id, active, "
            f"language, created_at, updated_at) "
            f"SELECT 2 * s - 1 + k, CASE k WHEN 0 THEN 'Hiệu trưởng ' ELSE 'Giáo viên ' END || s, "
            f"'+849' || lpad((2 * s - 1 + k)::text, 8, '0'), NULL::text, CASE k WHEN 0 THEN 'principal' ELSE 'teacher' END, "
            f"{district_of}, s, NULL::int, true, 'vi', {made}, {made} "
            f"FROM generate_series(1, {N}) s CROSS JOIN generate_series(0, 1) k "
            f"UNION ALL SELECT {officer} + d, 'Chuyên viên Phòng ' || d, '+849' || lpad(({officer} + d)::text, 8, '0'), "
            f"'pgd' || d || '@example.edu.vn', 'district_officer', d, NULL::int, NULL::int, true, 'vi', {made}, {made} "
            f"FROM generate_series(1, {D}) d "
            f"UNION ALL SELECT {officer + D} + p, 'Chuyên viên Sở ' || p, "
            f"'+849' || lpad(({officer + D} + p)::text, 8, '0'), 'so' || p || '@example.edu.vn', 'province_officer', "
            f"NULL::int, NULL::int, p, true, 'vi', {made}, {made} FROM generate_series(1, {P}) p",
        ),
        (
            "chat_identity",
            f"INSERT INTO chat_identity (staff_id, channel, external_id, chat_id, linked_at) "
            f"SELECT id, 'telegram', (700000000 + id)::text, (700000000 + id)::text, {made} FROM staff "
            f"WHERE role <> 'teacher'",
        ),
        (
            "batch",
            f"INSERT INTO batch (id, school_id, source, received_on, quantity, device_type, brand_model, condition, "
            f"handed_over, recorded_by, created_at) "
            f"SELECT 2 * s - 1 + k, s, CASE k WHEN 0 THEN 'programme' ELSE 'other' END, "
            f"CASE k WHEN 0 THEN date '2021-09-05' ELSE date '2021-09-12' END, 0, "
            f"CASE k WHEN 0 THEN 'laptop' ELSE 'tablet' END, CASE k WHEN 0 THEN 'Dell Latitude 3420' ELSE "
            f"'Galaxy Tab A7' END, CASE k WHEN 0 THEN 'Mới' ELSE 'Đã qua sử dụng' END, 0, 2 * s - 1, {made} "
            f"FROM generate_series(1, {N}) s CROSS JOIN generate_series(0, 1) k",
        ),
        (
            "student",
            # Odd ids are approved (the handovers' pupils: 2h - 1); the other statuses are on even ids.
            f"INSERT INTO student (id, school_id, code, full_name, birth_date, gender, class_name, category, "
            f"hardship_reason, need, guardian_name, guardian_phone, status, late, consent_at, registered_by, "
            f"reviewed_by, reviewed_at, created_at, updated_at) "
            f"SELECT i, sc, lpad(i::text, 12, '0'), "
            f"({first})[1 + i % 12] || ' ' || ({middle})[1 + i % 8] || ' ' || ({last})[1 + i % 23], "
            f"date '2009-09-01' + (i % 1800), CASE WHEN i % 2 = 0 THEN 'male' ELSE 'female' END, "
            f"(1 + i % 9) || 'A' || (1 + i % 4), "
            f"(ARRAY['poor','near_poor','covid_orphan','other_hardship'])[1 + (i / 2) % 4], "
            f"CASE WHEN (i / 2) % 4 = 3 THEN 'Gia đình khó khăn do dịch bệnh' END, "
            f"(ARRAY['device','internet','both'])[1 + i % 3], "
            f"({first})[1 + (i + 3) % 12] || ' Văn Ba', '+8491' || lpad((i % 10000000)::text, 7, '0'), st, "
            f"i % 37 = 0, CASE WHEN i % 10 = 3 THEN NULL ELSE {made} + interval '30 days' END, 2 * sc, "
            f"CASE WHEN st = 'pending' THEN NULL ELSE 2 * sc - 1 END, "
            f"CASE WHEN st = 'pending' THEN NULL ELSE {made} + interval '32 days' END, cr, cr "
            f"FROM (SELECT i, 1 + ((i - 1) / 2) % {N} AS sc, "
            f"CASE WHEN i % 20 = 0 THEN 'pending' WHEN i % 20 = 10 THEN 'rejected' WHEN i % 40 = 2 THEN 'withdrawn' "
            f"WHEN i % 100 = 4 THEN 'withdrawing' ELSE 'approved' END AS st, "
            f"CASE WHEN i % 4000 = 0 THEN {now} - interval '5 days' WHEN i % 20 = 0 THEN {now} - interval '12 hours' "
            f"ELSE {made} + interval '30 days' + (i % 20) * interval '1 day' END AS cr "
            f"FROM generate_series(1, {S}) i) x",
        ),
        (
            "handover",
            f"INSERT INTO handover (id, student_id, batch_id, device_id, school_id, handed_over_on, recorded_by, "
            f"status, csdl_due_at, csdl_updated_at, csdl_confirmed_by, minutes_signed_at, created_at, updated_at) "
            f"SELECT h, 2 * h - 1, CASE WHEN (h - 1) / {N} < 15 THEN 2 * sc - 1 ELSE 2 * sc END, NULL, sc, "
            f"{day_of}, CASE WHEN h % 3 = 0 THEN 2 * sc - 1 ELSE 2 * sc END, "
            f"CASE WHEN h % 500 = 6 THEN 'withdrawn' ELSE 'active' END, {due_of}, "
            f"CASE WHEN h % 5000 = 1 OR h % 1000 = 2 THEN NULL WHEN h % 50 = 3 THEN {due_of} + interval '5 hours' "
            f"ELSE {due_of} - interval '10 hours' END, "
            f"CASE WHEN h % 5000 = 1 OR h % 1000 = 2 THEN NULL ELSE 2 * sc - 1 END, "
            f"CASE WHEN h % 20 = 4 OR h % 4000 = 5 OR h % 5000 = 1 THEN NULL "
            f"ELSE (({day_of}) + 1)::timestamp AT TIME ZONE '{TZ}' END, "
            f"({day_of})::timestamp AT TIME ZONE '{TZ}' + interval '15 hours', "
            f"({day_of})::timestamp AT TIME ZONE '{TZ}' + interval '15 hours' "
            f"FROM (SELECT h, 1 + (h - 1) % {N} AS sc FROM generate_series(1, {H}) h) x",
        ),
        ("analyze", "ANALYZE handover"),  # inside the transaction: the UPDATE below needs real row counts
        (
            "batch counts",
            "UPDATE batch b SET handed_over = c.n, quantity = c.n + CASE WHEN b.id % 2 = 0 AND b.school_id % 100 = 0 "
            "THEN 3 ELSE 0 END FROM (SELECT batch_id, count(*) AS n FROM handover WHERE status = 'active' "
            "GROUP BY batch_id) c WHERE c.batch_id = b.id",
        ),
        ("empty batches", "UPDATE batch SET quantity = 1, handed_over = 1 WHERE quantity = 0"),
        (
            "photo",
            f"INSERT INTO photo (id, sha256, dhash, path, thumb_path, width, height, size_bytes, had_location, "
            f"uploaded_by, created_at) SELECT h, lpad(to_hex(h), 64, '0'), h, "
            f"'photos/' || lpad(to_hex(h % 256), 2, '0') || '/' || lpad(to_hex(h), 64, '0') || '.jpg', "
            f"'thumbs/' || lpad(to_hex(h % 256), 2, '0') || '/' || lpad(to_hex(h), 64, '0') || '.jpg', "
            f"1600, 1200, 250000, false, NULL, {made} FROM generate_series(1, {H}) h",
        ),
        (
            "handover_photo",
            f"INSERT INTO handover_photo (id, handover_id, photo_id, kind) SELECT h, h, h, 'scene' "
            f"FROM generate_series(1, {H}) h",
        ),
        (
            "flag",
            f"INSERT INTO flag (handover_id, school_id, kind, params, related_handover_id, created_at, resolved_at) "
            f"SELECT h, 1 + (h - 1) % {N}, 'capture_time', json_build_object('shot', '01/01/2020', "
            f"'handed', to_char(handed_over_on, 'DD/MM/YYYY'), 'gap', '690', 'max', '7'), NULL, created_at, "
            f"CASE WHEN h % 600 = 0 THEN created_at + interval '1 day' END "
            f"FROM handover JOIN generate_series(200, {H}, 200) h ON handover.id = h",
        ),
    ]
    took: dict[str, float] = {}
    with engine.begin() as conn:
        for name, sql in steps:
            t = time.perf_counter()
            conn.execute(text(sql))
            took[name] = time.perf_counter() - t
            print(f"  seeded {name:<15} {took[name]:6.1f} s", flush=True)
        for table in (
            "province",
            "district",
            "school",
            "staff",
            "chat_identity",
            "batch",
            "student",
            "handover",
            "photo",
            "handover_photo",
            "flag",
        ):  # explicit ids: move the sequences past them so the code's own inserts work
            conn.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"
                )
            )
    t = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    took["vacuum analyze"] = time.perf_counter() - t
    print(f"  {'VACUUM ANALYZE':<22} {took['vacuum analyze']:6.1f} s", flush=True)
    return took


def check_seed(engine, n: dict[str, int]) -> dict[str, int]:
    """What the rules will find, and that the rows obey what the code assumes (one active handover per pupil,
    a handover's school is its pupil's and its batch's, batches never over-handed)."""
    from sqlalchemy import text

    q = {
        "schools": "SELECT count(*) FROM school",
        "province 1 schools": "SELECT count(*) FROM school JOIN district d ON d.id = school.district_id "
        "WHERE d.province_id = 1",
        "students": "SELECT count(*) FROM student",
        "handovers": "SELECT count(*) FROM handover",
        "late csdl (open)": f"SELECT count(*) FROM handover WHERE csdl_updated_at IS NULL AND status = 'active' "
        f"AND csdl_due_at <= timestamptz '{NOW.isoformat()}'",
        "flags": "SELECT count(*) FROM flag",
        "bad: pupil/school": "SELECT count(*) FROM handover h JOIN student s ON s.id = h.student_id "
        "WHERE s.school_id <> h.school_id OR s.status NOT IN ('approved', 'withdrawing')",
        "bad: batch/school": "SELECT count(*) FROM handover h JOIN batch b ON b.id = h.batch_id "
        "WHERE b.school_id <> h.school_id",
        "bad: over-handed": "SELECT count(*) FROM batch WHERE handed_over > quantity",
        "bad: pupil twice": "SELECT count(*) FROM (SELECT student_id FROM handover WHERE status = 'active' "
        "GROUP BY student_id HAVING count(*) > 1) x",
    }
    with engine.connect() as conn:
        out = {k: conn.execute(text(v)).scalar_one() for k, v in q.items()}
    bad = {k: v for k, v in out.items() if k.startswith("bad") and v}
    if bad:
        raise SystemExit(f"seeded data breaks the model's rules: {bad}")
    if out["schools"] != n["schools"] or out["students"] != n["students"]:
        raise SystemExit(f"schema holds {out['schools']} schools / {out['students']} students, expected {n}")
    return out


def prepare(scale: float, keep: bool):
    """The engine on the seeded schema; seeds it unless ``keep`` finds it already seeded at this scale."""
    from sqlalchemy import create_engine, inspect, text

    from storage.db import create_all, make_engine

    schema = schema_for(scale)
    n = sizes(scale)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = schema in inspect(conn).get_schema_names()
    engine = make_engine(url_for(schema), pool_size=2, max_overflow=2)
    if keep and exists:
        print(f"reusing schema {schema} (--keep)", flush=True)
        with engine.begin() as conn:  # a previous run's notifications: start from an empty outbox
            conn.execute(text("DELETE FROM notification"))
        admin.dispose()
        return engine, n, schema, None
    with admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    create_all(engine)
    print(f"seeding schema {schema} at scale {scale:g}: {n}", flush=True)
    t = time.perf_counter()
    seed(engine, n)
    return engine, n, schema, time.perf_counter() - t


# --- measuring --------------------------------------------------------------------------------------------------


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), times


def measure_sweep(engine, programme, repeat: int) -> dict:
    from sqlalchemy import text
    from sqlmodel import Session

    from scheduler.rules import RULES
    from scheduler.sweep import run_sweep, sweep

    no_digest = tuple(r for r in RULES if r.name != "digest")
    out: dict = {}

    def rolled_back(rules, key):
        def run():
            with Session(engine) as s:
                try:
                    result = run_sweep(s, programme=programme, now=NOW, rules=rules)
                    out[key] = len(result.found)
                finally:
                    s.rollback()

        return run

    out["fresh"] = timed(rolled_back(no_digest, "found"), repeat)
    out["morning"] = timed(rolled_back(RULES, "found_morning"), max(1, repeat // 2))
    first = sweep(engine, programme=programme, now=NOW)  # records everything, today's digests too
    out["recorded"] = len(first.created)
    # A live database's autovacuum analyses the outbox after its first 4,000 rows (and cleans what earlier runs of
    # this bench deleted); this machine's PostgreSQL runs with autovacuum off, so the bench does it.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE notification"))
    # As in `fieldbot run` (bot/run.py): what start-up made is frozen out of the collector's view, so a full
    # collection during a tick scans only what ticks allocate, not every module and table definition.
    gc.collect()
    gc.freeze()
    steady_now = NOW + timedelta(minutes=5)
    out["steady"] = timed(lambda: sweep(engine, programme=programme, now=steady_now), repeat)
    out["per_rule"] = per_rule(engine, programme, steady_now, repeat)
    return out


def per_rule(engine, programme, now, repeat: int) -> dict[str, float]:
    """Each rule's finder alone, at a steady tick: where the sweep's time goes."""
    from sqlmodel import Session

    from scheduler.context import SweepContext
    from scheduler.rules import RULES, title

    out = {}
    for rule in RULES:
        if rule.find is None:
            continue

        def run(rule=rule):
            with Session(engine) as s:
                ctx = SweepContext(session=s, programme=programme, now=now, rule_title=title)
                found = list(rule.find(ctx))
                out[f"{rule.name} found"] = len(found)
                s.rollback()

        out[rule.name] = timed(run, max(3, repeat))[0]
    return out


def measure_summary(engine, programme, repeat: int, scope) -> dict:
    from reports.summary import build_summary, format_summary
    from storage.db import session_scope

    parts: dict[str, list[float]] = {"build": [], "format": [], "total": []}
    text_len = 0
    for _ in range(repeat):
        with session_scope(engine) as s:
            t0 = time.perf_counter()
            summary = build_summary(s, scope=scope, programme=programme, now=NOW)
            t1 = time.perf_counter()
            text = format_summary(summary, lang="vi")
            t2 = time.perf_counter()
        text_len = len(text)
        parts["build"].append((t1 - t0) * 1000)
        parts["format"].append((t2 - t1) * 1000)
        parts["total"].append((t2 - t0) * 1000)
    out = {k: statistics.median(v) for k, v in parts.items()}
    out["schools"] = len(summary.schools)
    out["chars"] = text_len
    out["all"] = parts["total"]
    return out


def measure_digests(engine, programme, repeat: int) -> dict:
    from sqlmodel import Session

    from scheduler.context import SweepContext
    from scheduler.digest import build_digest, build_province_digest
    from scheduler.rules import title

    def district():
        with Session(engine) as s:
            build_digest(SweepContext(session=s, programme=programme, now=NOW, rule_title=title), district_id=1)

    def province():
        with Session(engine) as s:
            build_province_digest(
                SweepContext(session=s, programme=programme, now=NOW, rule_title=title), province_id=1
            )

    return {"district": timed(district, repeat), "province": timed(province, repeat)}


def child(url: str, scope_arg: str, out: str) -> None:
    """In a fresh interpreter: one export, one JSON line (rows, seconds, peak RSS)."""
    from bot.settings import DEFAULT_PROGRAMME
    from core.programme import load_programme
    from reports.export import write_export
    from storage.db import make_engine, session_scope
    from storage.scope import Scope

    programme = load_programme(DEFAULT_PROGRAMME)
    engine = make_engine(url)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kind, _, raw = scope_arg.partition(":")
    scope = Scope(district_id=int(raw)) if kind == "district" else Scope(district_id=None, province_id=int(raw))
    t0 = time.perf_counter()
    with session_scope(engine) as session:
        result = write_export(session, scope=scope, out=Path(out), programme=programme, now=NOW)
    seconds = time.perf_counter() - t0
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "rows": result.students + result.batches + result.handovers,
                "students": result.students,
                "handovers": result.handovers,
                "schools": result.schools,
                "seconds": seconds,
                "rss_peak_mb": peak_kb / 1024,
                "rss_delta_mb": (peak_kb - base_kb) / 1024,
                "file_mb": Path(out).stat().st_size / 2**20,
            }
        )
    )


def run_export(url: str, scope_arg: str, tmp: Path) -> dict:
    out = tmp / f"{scope_arg.replace(':', '-')}.xlsx"
    cmd = [sys.executable, __file__, "--child", scope_arg, "--url", url, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"export child failed:\n{proc.stderr}")
    out.unlink(missing_ok=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def verdict(value: float, aim: float) -> str:
    return "met" if value <= aim else "NOT MET"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every count (0.1: a tenth)")
    ap.add_argument("--quick", action="store_true", help="--scale 0.05 --repeat 3 --drop (a smoke run)")
    ap.add_argument("--keep", action="store_true", help="reuse the schema already seeded at this scale")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--drop", action="store_true", help="drop the seeded schema at the end")
    ap.add_argument("--only", nargs="+", choices=["sweep", "summary", "export", "digest"], help="measure only these")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.url, args.child, args.out)
        return 0
    if args.quick:
        args.scale, args.repeat, args.drop = 0.05, min(args.repeat, 3), True

    from sqlalchemy import create_engine, text

    from bot.settings import DEFAULT_PROGRAMME
    from core.clock import FixedClock
    from core.programme import load_programme
    from storage.scope import Scope

    programme = load_programme(DEFAULT_PROGRAMME)
    FixedClock(NOW)
    only = set(args.only or ["sweep", "summary", "export", "digest"])
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores", flush=True)
    engine, n, schema, seeded = prepare(args.scale, args.keep)
    try:
        counts = check_seed(engine, n)
        if seeded is not None:
            print(f"seeded in {seeded:.0f} s", flush=True)
        print("data: " + ", ".join(f"{k} {v:,}" for k, v in counts.items() if not k.startswith("bad")), flush=True)
        results: dict = {}
        if "summary" in only:
            province = Scope(district_id=None, province_id=1)
            measure_summary(engine, programme, 1, province)  # warm: plans, caches
            s = measure_summary(engine, programme, args.repeat, province)
            d = measure_summary(engine, programme, args.repeat, Scope(district_id=1))
            results["summary"] = s
            print(
                f"/tonghop province 1 ({s['schools']:,} schools): build_summary {s['build']:.0f} ms + "
                f"format_summary {s['format']:.1f} ms = {s['total']:.0f} ms (aim <= 300 ms: "
                f"{verdict(s['total'], 300)}; runs {', '.join(f'{x:.0f}' for x in s['all'])}; "
                f"{s['chars']:,} characters) | district 1 ({d['schools']} schools): {d['total']:.0f} ms",
                flush=True,
            )
        if "digest" in only:
            g = measure_digests(engine, programme, args.repeat)
            results["digest"] = g
            print(
                f"digest: district 1 build_digest {g['district'][0]:.0f} ms; province 1 build_province_digest "
                f"{g['province'][0]:.0f} ms (once a day each)",
                flush=True,
            )
        if "sweep" in only:
            w = measure_sweep(engine, programme, args.repeat)
            results["sweep"] = w
            rules = ", ".join(f"{k} {v:.0f} ms" for k, v in w["per_rule"].items() if not k.endswith("found"))
            found = ", ".join(f"{k[:-6]} {v}" for k, v in w["per_rule"].items() if k.endswith("found"))
            print(
                f"sweep: fresh (no digest) {w['fresh'][0]:.0f} ms ({w['found']:,} due) | morning with the digests "
                f"{w['morning'][0]:.0f} ms ({w['found_morning']:,} due; the first sweep recorded {w['recorded']:,}) | steady every 5 min {w['steady'][0]:.0f} ms "
                f"(aim <= 100 ms: {verdict(w['steady'][0], 100)})\n  steady, per rule: {rules}\n  found: {found}",
                flush=True,
            )
        if "export" in only:
            with tempfile.TemporaryDirectory(prefix="bench-national-") as tmp:
                url = url_for(schema).replace("postgresql+psycopg", "postgresql")
                dist = run_export(url, "district:1", Path(tmp))
                prov = run_export(url, "province:1", Path(tmp))
            results["export"] = (dist, prov)
            for name, r in (("district 1", dist), ("province 1", prov)):
                print(
                    f"export {name}: {r['schools']:,} schools, {r['rows']:,} rows in {r['seconds']:.1f} s = "
                    f"{r['rows'] / r['seconds']:,.0f} rows/s; peak RSS {r['rss_peak_mb']:.0f} MB "
                    f"(+{r['rss_delta_mb']:.0f} MB during the export); file {r['file_mb']:.1f} MB",
                    flush=True,
                )
            ratio = prov["rss_peak_mb"] / dist["rss_peak_mb"]
            print(f"export peak RSS province/district: {ratio:.2f}x (aim <= 1.5x: {verdict(ratio, 1.5)})", flush=True)
        load = os.getloadavg()
        print(f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    finally:
        engine.dispose()
        if args.drop:
            admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
