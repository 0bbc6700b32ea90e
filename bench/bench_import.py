"""Class-list import: N pupils in one XLSX, read + checked with /dangky's fields + saved in one transaction.

Two arms, each in a fresh subprocess per size so peak memory is the run's own:
  - direct: conversations.bulk.read_sheet + check_sheet, then storage.students.import_students (the CLI's path);
  - chat:   the engine — the file sent to /nhapds (read, checked, rows kept in the form state), then «Lưu».
For each: seconds from bytes to committed rows, and peak RSS growth over the process after imports.
The goal: 2,000 rows checked and saved in ≤ 5 s; memory flat apart from the checked rows themselves (they are
held until «Lưu» so the save is all or nothing: a few KB a row, bounded by the row limit) — the workbook is
streamed (openpyxl read-only), never loaded whole.

Run:  .venv/bin/python bench/bench_import.py [--sizes 200 2000] [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _file(n: int) -> bytes:
    from tests.import_files import good_row, names, xlsx

    classes = ["1A1", "2A2", "3A3", "4A4", "5A5"]
    rows = [
        good_row(i + 1, B=name, D=classes[i % 5], E=f"{i + 1:010d}", G=["Hộ nghèo", "Hộ cận nghèo"][i % 2])
        for i, name in enumerate(names(n))
    ]
    return xlsx(rows)


def child(arm: str, n: int, workdir: Path) -> dict:
    import asyncio
    from datetime import datetime

    from sqlmodel import Session

    from bot.settings import DEFAULT_PROGRAMME
    from core.clock import LOCAL_TZ, FixedClock
    from core.programme import load_programme
    from storage.db import make_engine, upgrade
    from tests.factories import seed_world

    data = _file(n)
    programme = load_programme(DEFAULT_PROGRAMME)
    clock = FixedClock(datetime(2021, 11, 17, 8, 0, tzinfo=LOCAL_TZ))
    db = make_engine(f"sqlite:///{workdir / f'{arm}-{n}.db'}")
    upgrade(db)
    world = seed_world(db, now=clock.now())
    # A running bot has these loaded: time the work, not the first import of openpyxl and the forms.
    import openpyxl  # noqa: F401

    from conversations.forms import registry

    registry()
    base = _rss_mb()
    if arm == "direct":
        from conversations import bulk
        from storage import students
        from storage.models import Staff

        started = time.perf_counter()
        with Session(db) as s:
            ctx = bulk.check_context(
                session=s, programme=programme, now=clock.now(), school_id=world.school_a, school_level="TH"
            )
            sheet = bulk.read_sheet(data, file_name="lop.xlsx", max_rows=n, max_bytes=50 * 1024 * 1024)
            checked = bulk.check_sheet(sheet, ctx)
            assert checked.ok and len(checked.rows) == n, checked.problems[:3]
            t_check = time.perf_counter() - started
            students.import_students(
                s,
                actor=s.get(Staff, world.teacher_a),
                school_id=world.school_a,
                rows=checked.rows,
                file_name="lop.xlsx",
                sha256=bulk.sha256_of(data),
                now=clock.now(),
            )
            s.commit()
        total = time.perf_counter() - started
    else:
        from tests.engine_helpers import Chat
        from tests.engine_helpers import make_engine as make_conv_engine

        media = workdir / f"media-{n}"
        media.mkdir(exist_ok=True)
        eng = make_conv_engine(
            db,
            programme.model_copy(update={"imports": programme.imports.model_copy(update={"max_rows": n})}),
            clock,
            media_dir=media,
        )

        async def run() -> tuple[float, float]:
            teacher = await Chat.linked(eng, world.phones["teacher_a"])
            started = time.perf_counter()
            await teacher.document(data, "lop.xlsx")
            assert f"{n} em hợp lệ" in teacher.text, teacher.text[:300]
            t_check = time.perf_counter() - started
            await teacher.tap("Lưu")
            assert f"Đã lưu {n} em" in teacher.text, teacher.text[:300]
            return t_check, time.perf_counter() - started

        t_check, total = asyncio.run(run())
    with Session(db) as s:
        from sqlalchemy import func, select

        from storage.models import Student

        saved = s.execute(select(func.count()).select_from(Student)).scalar_one()
    assert saved == n
    return {"check_s": t_check, "total_s": total, "peak_growth_mb": _rss_mb() - base, "bytes": len(data)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--child", nargs=3, metavar=("ARM", "N", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        arm, n, d = args.child
        print(json.dumps(child(arm, int(n), Path(d))))
        return 0
    rounds = 1 if args.quick else args.rounds
    results: dict[tuple[str, int], list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for n in args.sizes:
                for arm in ("direct", "chat") if r % 2 == 0 else ("chat", "direct"):  # alternate arms
                    d = Path(tmp) / f"r{r}"
                    d.mkdir(exist_ok=True)
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", arm, str(n), str(d)],
                        capture_output=True,
                        text=True,
                        cwd=ROOT,
                    )
                    if out.returncode != 0:
                        print(out.stderr[-2000:], file=sys.stderr)
                        return 1
                    results.setdefault((arm, n), []).append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(items: list[dict], key: str) -> float:
        values = sorted(i[key] for i in items)
        return values[len(values) // 2]

    print(f"{'arm':8} {'rows':>6} {'file':>8} {'checked s':>10} {'saved s':>9} {'rows/s':>8} {'peak +MB':>9}")
    for (arm, n), items in sorted(results.items()):
        total = med(items, "total_s")
        print(
            f"{arm:8} {n:>6} {items[0]['bytes'] // 1024:>6}KB {med(items, 'check_s'):>10.2f} {total:>9.2f} "
            f"{n / total:>8.0f} {med(items, 'peak_growth_mb'):>9.1f}"
        )
    lo, hi = min(args.sizes), max(args.sizes)
    for arm in ("direct", "chat"):
        if (arm, lo) in results and (arm, hi) in results:
            a, b = med(results[(arm, lo)], "peak_growth_mb"), med(results[(arm, hi)], "peak_growth_mb")
            t = med(results[(arm, hi)], "total_s")
            print(
                f"{arm}: {hi} rows in {t:.2f} s (goal ≤ 5 s: {'ok' if t <= 5 else 'MISSED'}); peak growth "
                f"{a:.1f} → {b:.1f} MB for {hi // lo}x the rows ({(b - a) * 1024 / (hi - lo):.1f} KB a row)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
