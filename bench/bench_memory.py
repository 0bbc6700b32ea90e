"""Peak memory of the bot with 10,000 linked people and 1,000 forms in progress.

Runs in a fresh subprocess per measurement (RSS is per process): a baseline process that imports and starts
the same application with an empty roster, and the loaded one, which seeds 10,000 linked teachers, puts
1,000 of them half-way through /dangky, then has every one of those 1,000 answer a question and 1,000 others
open their menu through ``Application.process_update``. Prints peak RSS of both and the difference.

    .venv/bin/python bench/bench_memory.py [--people 10000] [--forms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(people: int, forms: int, db_path: str) -> dict:
    from sqlalchemy import insert
    from telegram import Update

    from bot.settings import DEFAULT_PROGRAMME
    from bot.telegram import build_application
    from conversations.engine import ConversationEngine
    from core.clock import LOCAL_TZ, FixedClock
    from core.programme import load_programme
    from storage.db import create_all, make_engine
    from storage.models import ChatIdentity, District, School, Staff
    from tests.telegram_offline import TOKEN, OfflineRequest

    clock = FixedClock(datetime(2021, 11, 18, 9, 0, tzinfo=LOCAL_TZ))
    now = clock.now()
    db = make_engine(f"sqlite:///{db_path}")
    create_all(db)
    with db.begin() as conn:
        if people:
            conn.execute(insert(District.__table__), [{"id": 1, "code": "TDM", "name": "Thủ Dầu Một"}])
            schools = max(1, people // 25)
            conn.execute(
                insert(School.__table__),
                [
                    {
                        "id": i + 1,
                        "code": f"S{i}",
                        "name": f"Trường số {i}",
                        "level": "TH",
                        "district_id": 1,
                        "active": True,
                    }
                    for i in range(schools)
                ],
            )
            conn.execute(
                insert(Staff.__table__),
                [
                    {
                        "id": i + 1,
                        "full_name": f"Giáo Viên {i}",
                        "phone": f"+8490{i:07d}",
                        "role": "teacher",
                        "district_id": 1,
                        "school_id": i % schools + 1,
                        "active": True,
                        "language": "vi",
                        "created_at": now,
                        "updated_at": now,
                    }
                    for i in range(people)
                ],
            )
            conn.execute(
                insert(ChatIdentity.__table__),
                [
                    {
                        "staff_id": i + 1,
                        "channel": "telegram",
                        "external_id": str(100_000 + i),
                        "chat_id": str(100_000 + i),
                        "linked_at": now,
                    }
                    for i in range(people)
                ],
            )
    engine = ConversationEngine(
        db=db, programme=load_programme(DEFAULT_PROGRAMME), clock=clock, flood_limit_per_minute=10**9
    )
    request = OfflineRequest()
    request.record = False
    app = build_application(
        token=TOKEN,
        api_url="http://127.0.0.1:9",
        handle=engine.handle,
        clock=clock,
        rate_limit=False,
        request=request,
        set_my_commands=False,
    )
    ids = iter(range(1, 10**9))

    def upd(uid: int, text: str) -> dict:
        m = {
            "message_id": next(ids),
            "date": 1637200000,
            "text": text,
            "chat": {"id": uid, "type": "private"},
            "from": {"id": uid, "is_bot": False, "first_name": "GV"},
        }
        if text.startswith("/"):
            m["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
        return {"update_id": next(ids), "message": m}

    async def go() -> None:
        await app.initialize()
        if people:
            for uid in range(100_000, 100_000 + forms):  # 1,000 forms started and left half-way
                for text in ("/dangky", "Nguyễn Văn An", "05/09/2013"):
                    await app.process_update(Update.de_json(upd(uid, text), app.bot))
            for uid in range(100_000, 100_000 + forms):  # each of them answers one more question
                await app.process_update(Update.de_json(upd(uid, "4A1"), app.bot))
            for uid in range(100_000 + forms, 100_000 + min(people, 2 * forms)):
                await app.process_update(Update.de_json(upd(uid, "/menu"), app.bot))
        await app.shutdown()

    asyncio.run(go())
    with db.connect() as conn:
        from sqlalchemy import text as sql

        in_progress = conn.execute(sql("SELECT count(*) FROM conversation")).scalar_one()
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "in_progress": in_progress}


def measure(people: int, forms: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(people), str(forms), f"{tmp}/m.db"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=int, default=10_000)
    ap.add_argument("--forms", type=int, default=1_000)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    base = measure(0, 0)
    loaded = measure(args.people, args.forms)
    print(f"{'':>28} {'peak RSS':>9}")
    print(f"{'empty roster':>28} {base['peak_rss_mb']:8.1f}M")
    label = f"{args.people} linked, {loaded['in_progress']} forms open"
    print(f"{label:>28} {loaded['peak_rss_mb']:8.1f}M")
    print(
        f"{'difference':>28} {loaded['peak_rss_mb'] - base['peak_rss_mb']:8.1f}M "
        f"(form state lives in the database, not in memory)"
    )


if __name__ == "__main__":
    main()
