"""Erasure of one pupil and the retention purge as the data grows (SQLite; --postgres adds PostgreSQL).

Erasure scans the outbox, the forms in progress and the handover audit events for the pupil's name and code,
so it grows with those tables; this prints its time at a small and a large size side by side (ratio), and the
purge's rate (registrations per second). `--quick`: 1,000 vs 10,000 pupils; default 5,000 vs 50,000.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, select, text

from storage import erasure
from storage.db import create_all, make_engine, session_scope
from storage.models import AuditEvent, Batch, Handover, Notification, Student
from storage.purge import purge

NOW = datetime(2021, 11, 17, 1, 0, tzinfo=UTC)
PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def seed(engine, n: int) -> None:
    from tests.factories import seed_world

    w = seed_world(engine, now=NOW)
    with session_scope(engine) as s:
        s.execute(
            insert(Batch),
            [dict(school_id=w.school_a, source="programme", received_on=date(2021, 11, 1), quantity=n,
                  device_type="laptop", brand_model="X", condition="mới", handed_over=n // 4,
                  recorded_by=w.principal_a, created_at=NOW)],
        )  # fmt: skip
        batch = s.scalar(select(Batch.id))
        rows = [
            dict(school_id=w.school_a, code=f"{7900000000 + i}", full_name=f"Nguyễn Văn Số {i}",
                 birth_date=date(2012, 1, 1), gender="male", class_name="4A", category="poor", need="device",
                 guardian_name="Trần Thị Mẹ", guardian_phone="+84912345678", status="approved", late=False,
                 registered_by=w.teacher_a, created_at=NOW, updated_at=NOW)
            for i in range(n)
        ]  # fmt: skip
        s.execute(insert(Student), rows)
        ids = list(s.scalars(select(Student.id).order_by(Student.id)))
        s.execute(
            insert(Handover),
            [dict(student_id=sid, batch_id=batch, school_id=w.school_a, handed_over_on=date(2021, 11, 10),
                  recorded_by=w.teacher_a, status="active", csdl_due_at=NOW, created_at=NOW, updated_at=NOW)
             for sid in ids[: n // 4]],
        )  # fmt: skip
        hids = list(s.scalars(select(Handover.id)))
        s.execute(
            insert(AuditEvent),
            [dict(at=NOW, actor_id=w.teacher_a, action="create", entity="student", entity_id=sid,
                  after={"full_name": f"Nguyễn Văn Số {i}"}) for i, sid in enumerate(ids)]
            + [dict(at=NOW, actor_id=w.teacher_a, action="create", entity="handover", entity_id=h,
                    after={"student_id": h}) for h in hids],
        )  # fmt: skip
        s.execute(
            insert(Notification),
            [dict(key=f"k{i}", rule="new", subject="s", stage="1", recipient_id=w.principal_a,
                  text=f"🆕 em <b>Nguyễn Văn Số {i}</b>", status="sent", attempts=1, next_attempt_at=NOW,
                  created_at=NOW) for i in range(n // 2)],
        )  # fmt: skip


def measure(url: str, n: int, media: Path) -> tuple[float, float]:
    engine = make_engine(url)
    create_all(engine)
    seed(engine, n)
    times = []
    for i in (1, 2, 3):  # pupils with a handover, audit events and a notification
        t = time.perf_counter()
        with session_scope(engine) as s:
            st = erasure.find_student(s, actor="cli:bench", code=f"{7900000000 + i}")
            erasure.erase(s, actor="cli:bench", role="operator", student_id=st.id, now=NOW, media_dir=media)
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    with session_scope(engine) as s:
        report = purge(s, before=NOW + timedelta(days=1), now=NOW + timedelta(days=2), media_dir=media, dry_run=False)
    purge_rate = len(report.plan.students) / (time.perf_counter() - t)
    engine.dispose()
    return statistics.median(times) * 1000, purge_rate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--postgres", action="store_true")
    args = ap.parse_args()
    small, large = (1_000, 10_000) if args.quick else (5_000, 50_000)
    with tempfile.TemporaryDirectory() as tmp:
        media = Path(tmp) / "media"
        backends = [("SQLite", lambda n: f"sqlite:///{tmp}/b{n}.db", None)]
        if args.postgres:
            backends.append(("PostgreSQL", None, PG))
        print(f"{'database':<11} {'pupils':>7} {'erase one (ms)':>15} {'purge (rows/s)':>15}")
        for name, sqlite_url, pg in backends:
            results = []
            for n in (small, large):
                if pg:
                    schema = f"bench_{uuid.uuid4().hex[:8]}"
                    admin = create_engine(pg)
                    with admin.begin() as c:
                        c.execute(text(f'CREATE SCHEMA "{schema}"'))
                    url = f"{pg}?options=-csearch_path%3D{schema}"
                else:
                    url = sqlite_url(n)
                try:
                    ms, rate = measure(url, n, media)
                finally:
                    if pg:
                        with admin.begin() as c:
                            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                        admin.dispose()
                results.append(ms)
                print(f"{name:<11} {n:>7,} {ms:>15.1f} {rate:>15,.0f}", flush=True)
            print(f"{name:<11} erase {large:,} vs {small:,}: {results[1] / results[0]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
