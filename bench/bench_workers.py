"""One vs two `fieldbot run` processes on PostgreSQL behind a loopback front, N teachers filling in /dangky at
once (each typed answer raced against a stray "?" on the other worker, as in tests/e2e/test_e2e_workers.py).

Reports, per arm: updates/s through the front, p50/p99 of the webhook round trip (the step *and* sending
its replies through the fake Bot API, including python-telegram-bot's 30 messages/s limiter per process),
and p50/p99 of the engine's own step time from the workers' logs. Arms alternate each round.

    .venv/bin/python bench/bench_workers.py [--teachers 200] [--rounds 2] [--quick] [--think 16]

Flat out (the default) measures the machine's ceiling, where latency is only queueing. ``--think`` paces
each teacher like a person reading and answering, to measure latency at the load a bot really gets: Telegram
lets one bot send about 30 messages a second, so 200 teachers at ~16 s an answer is a deadline morning.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from sqlalchemy import create_engine, text

from tests.e2e.test_e2e_workers import Outcome, Teacher, check_forms, start_workers
from tests.fakes.telegram_api import FakeTelegram

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def one_run(workers: int, teachers: int, think: float = 0.0) -> dict[str, float]:
    schema = f"bench_w_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            async with FakeTelegram() as tg:
                procs, front = await start_workers(Path(tmp), tg, url, teachers, workers=workers)
                out = Outcome()
                try:
                    async with aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=600)
                    ) as http:
                        started = time.perf_counter()
                        await asyncio.gather(
                            *(Teacher(i, tg, front, http, out, think=think).strict() for i in range(teachers))
                        )
                        elapsed = time.perf_counter() - started
                finally:
                    await front.stop()
                    for p in procs:
                        await p.stop()
                steps = [
                    float(m.group(1))
                    for p in procs
                    for line in p.log
                    for m in [re.search(r"form=\S+ step=\S+ replies=\d+ ms=([\d.]+)", line)]
                    if m
                ]
                problems = out.mismatches + check_forms(url, teachers)
        return {
            "rate": front.forwarded / elapsed,
            "p50": pct(front.latencies, 0.5) * 1000,
            "p99": pct(front.latencies, 0.99) * 1000,
            "step50": pct(steps, 0.5),
            "step99": pct(steps, 0.99),
            "problems": len(problems),
        }
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teachers", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="40 teachers, one round")
    ap.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds each teacher takes per answer (0.5x-1.5x, spread): 0 = flat out (the machine's ceiling); "
        "~16 with 200 teachers is about the 30 replies/s Telegram allows one bot",
    )
    args = ap.parse_args()
    if args.quick:
        args.teachers, args.rounds = 40, 1
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    for r in range(args.rounds):
        for workers in (1, 2):
            res = await one_run(workers, args.teachers, args.think)
            results[workers].append(res)
            print(
                f"round {r + 1} {workers} worker(s): {res['rate']:.0f} updates/s, webhook p50 {res['p50']:.0f} ms "
                f"p99 {res['p99']:.0f} ms, engine step p50 {res['step50']:.1f} ms p99 {res['step99']:.1f} ms, "
                f"problems {res['problems']:.0f}",
                flush=True,
            )
    print(f"\n{'arm':>10} {'updates/s':>10} {'webhook p50':>12} {'p99':>8} {'step p50':>9} {'step p99':>9}")
    base = statistics.median(x["rate"] for x in results[1])
    for workers, runs in results.items():
        med = lambda k: statistics.median(x[k] for x in runs)  # noqa: B023
        print(
            f"{workers:>3} worker{'s' if workers > 1 else ' '} {med('rate'):10.0f} {med('p50'):10.0f}ms "
            f"{med('p99'):6.0f}ms {med('step50'):7.1f}ms {med('step99'):7.1f}ms   ({med('rate') / base:.2f}x)"
        )
    pace = f", {args.think:g} s per answer" if args.think else ", flat out"
    print(
        f"\n{args.teachers} teachers x a whole /dangky (17 updates each){pace}, {args.rounds} round(s), "
        "arms alternating"
    )


if __name__ == "__main__":
    asyncio.run(main())
