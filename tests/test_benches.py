"""The benchmarks still run: each one at a toy size, on SQLite, through the same seeding and measuring code
`make bench` uses. Nothing is timed here (benchmarks are never assertions); this only stops a bench from
breaking silently when the schema or an API changes (it happened: two seeders kept writing a flag column
that issue 12 had replaced)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import DEFAULT_PROGRAMME
from core.programme import load_programme
from storage.db import create_all, make_engine

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="module")
def programme():
    return load_programme(DEFAULT_PROGRAMME)


def _run(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=BENCH.parent,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


def test_bench_web_seeds_and_serves_the_overview(tmp_path, programme) -> None:
    import bench_web

    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    create_all(engine)
    ids = bench_web.seed(engine, districts=2, schools_per_district=3, pupils=60, programme=programme)
    bench_web.analyze(engine)
    got = asyncio.run(bench_web.measure(engine, programme, ids, 1, tmp_path, chart=False))
    assert set(got) == {"district_officer", "province_officer"}
    engine.dispose()


def test_bench_sweep_seeds_and_sweeps(tmp_path, programme) -> None:
    import bench_sweep

    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    create_all(engine)
    bench_sweep.seed(engine, 2_000, programme)
    got = bench_sweep.measure(engine, programme, 1)
    assert got["found"] > 0
    engine.dispose()


def test_bench_pipeline_finishes_every_form(tmp_path) -> None:
    import bench_pipeline

    rate = asyncio.run(
        bench_pipeline.run_fieldbot(f"sqlite:///{tmp_path / 'p.db'}", 3, 3 * len(bench_pipeline.FORM))
    )  # asserts itself that every form the workload finishes was saved
    assert rate > 0


def test_bench_privacy_erases_and_purges(tmp_path) -> None:
    import bench_privacy

    erase_ms, purge_rate = bench_privacy.measure(f"sqlite:///{tmp_path / 'v.db'}", 50, tmp_path / "media")
    assert erase_ms > 0 and purge_rate > 0


@pytest.mark.parametrize(
    "args",
    [
        ("bench_export.py", "--sizes", "40", "80", "--no-trace"),
        ("bench_minutes.py", "--handovers", "3", "--rounds", "1"),
        ("bench_import.py", "--sizes", "20", "40", "--quick"),
    ],
    ids=lambda a: a[0],
)
def test_bench_script_runs_at_a_toy_size(args: tuple[str, ...]) -> None:
    assert _run(*args).strip()
