"""Two `fieldbot run` processes on one PostgreSQL behind a loopback front that spreads Telegram's webhook.

The front is what nginx or Caddy would be (docs/deploy.md): each update goes to one worker, round robin,
and to the other one when a worker does not answer. Every teacher fills in a whole /dangky at once with the
others; for each typed answer the teacher also sends a stray "?" just before it, and the front puts the two
on *different* workers at the same moment — one person's consecutive messages racing each other:

* with the per-person lock (conversations/state.py) the two steps run one after the other: "?" is refused
  as not a name/date/class (or as late, when the answer got there first), the answer is applied, and the
  next question is asked. Every form ends with exactly what was typed, saved once.
* without it (FIELDBOT_TEST_NO_STEP_LOCK=1, test-only) both steps read the same question and the later
  write wins: the bot acknowledges an answer (asks the next question) and then forgets it. Run
  ``FIELDBOT_E2E_PROVE_LOCK=1 pytest tests/e2e/test_e2e_workers.py`` to see that variant fail as expected.

FIELDBOT_E2E_TEACHERS sets the number of teachers (default 40; the issue's 200 is for a quiet machine).
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import create_engine, func, select, text

from storage.models import ChatIdentity, Staff, Student
from tests.e2e.harness import BotProcess, bot_env, free_port
from tests.fakes.telegram_api import FakeTelegram

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECRET = "workers-secret-token-1"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ROUTE_HEADER = "X-Test-Route"  # the test pins a pair of messages to different workers
WEBHOOK_URL = "https://fieldbot.example.vn/telegram"
NOISE = "?"
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi"]
MIDDLE = ["Văn", "Thị", "Minh", "Thu", "Hữu", "Ngọc"]
GIVEN = ["An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Khoa", "Lan", "Mai", "Nam"]
BIRTH = date(2015, 9, 5)


def teachers_wanted(default: int) -> int:
    return int(os.environ.get("FIELDBOT_E2E_TEACHERS", default))


def pupil_name(i: int) -> str:
    return f"{FAMILY[i % 8]} {MIDDLE[(i // 8) % 6]} {GIVEN[(i // 48) % 10]}"


def guardian_name(i: int) -> str:
    return f"{FAMILY[(i + 3) % 8]} {MIDDLE[(i // 8 + 1) % 6]} {GIVEN[(i // 48 + 1) % 10]}"


def pupil_code(i: int) -> str:
    return f"{790000000000 + i:012d}"


def class_name(i: int) -> str:
    return f"{1 + i % 5}A{1 + i % 3}"


# --- the front: a loopback reverse proxy ------------------------------------------------------------------------


@dataclass
class Front:
    upstreams: list[str]
    port: int = 0
    forwarded: int = 0
    latencies: list[float] = field(default_factory=list)
    starts: dict[str, float] = field(default_factory=dict)  # request tag -> when it was forwarded
    retried: int = 0
    _rr: itertools.count = field(default_factory=itertools.count)
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        # Retry on the other worker only when a worker is gone (connection refused or cut), not on a slow
        # answer: under load a reply can queue behind python-telegram-bot's 30 messages/s limiter for many
        # seconds, and a retry would be deduplicated and answered with nothing (the first reply still comes).
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=900)
        )
        app = web.Application()
        app.router.add_post("/telegram", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        if self._session:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.Response:
        body = await request.read()
        pinned = request.headers.get(ROUTE_HEADER)
        first = (int(pinned) if pinned is not None else next(self._rr)) % len(self.upstreams)
        headers = {SECRET_HEADER: request.headers.get(SECRET_HEADER, ""), "Content-Type": "application/json"}
        for attempt in range(len(self.upstreams)):  # nginx: proxy_next_upstream error timeout non_idempotent
            upstream = self.upstreams[(first + attempt) % len(self.upstreams)]
            started = time.perf_counter()
            tag = request.headers.get("X-Test-Tag")
            if tag and attempt == 0:
                self.starts[tag] = started
            try:
                async with self._session.post(upstream, data=body, headers=headers) as resp:
                    await resp.read()
                    self.forwarded += 1
                    self.latencies.append(time.perf_counter() - started)
                    return web.Response(status=resp.status)
            except (aiohttp.ClientConnectionError, TimeoutError):
                self.retried += 1
                continue
        return web.Response(status=502)


# --- a teacher: a scripted /dangky --------------------------------------------------------------------------------

# (question the step answers, what the teacher does)
SCRIPT: list[tuple[str, str, str]] = [
    ("đã đồng ý chưa", "tap", "Phụ huynh đã đồng ý"),  # the guardian's consent comes first
    ("Họ và tên", "pair", "name"),
    ("Ngày sinh", "pair", "birth"),
    ("Lớp?", "pair", "class"),
    ("Mã định danh", "pair", "code"),
    ("Giới tính", "tap", "Nam"),
    ("đối tượng", "tap", "Hộ nghèo"),
    ("cần hỗ trợ gì", "tap", "Máy tính"),
    ("cha/mẹ", "pair", "guardian"),
    ("Số điện thoại người giám hộ", "tap", "Bỏ qua"),
    ("Ghi chú", "tap", "Bỏ qua"),
    ("Kiểm tra lại", "tap", "Lưu"),
]
DONE = "Đã lưu"


@dataclass
class Outcome:
    mismatches: list[str] = field(default_factory=list)
    pairs: int = 0
    pair_gaps_ms: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


class Teacher:
    def __init__(
        self,
        i: int,
        tg: FakeTelegram,
        front: Front,
        http: aiohttp.ClientSession,
        out: Outcome,
        *,
        think: float = 0.0,
    ) -> None:
        self.i = i
        # Seconds a person takes to read a question and answer it (bench_workers --think): 0 = flat out.
        self.think = think
        self.tg = tg
        self.user = tg.users.get(700000 + i) or tg.user(700000 + i, f"GV{i}")
        self.front = front
        self.http = http
        self.out = out
        self.values = {
            "name": pupil_name(i),
            "birth": BIRTH.strftime("%d/%m/%Y"),
            "class": class_name(i),
            "code": pupil_code(i),
            "guardian": guardian_name(i),
        }

    def latest(self) -> str:
        msgs = self.tg.messages_to(self.user.id)
        return msgs[-1].text or "" if msgs else ""

    def button(self, label: str, question: str) -> str:
        """The button under the question being answered, as a person taps it: the replies of two racing
        messages may arrive in either order, so the newest keyboard can belong to an earlier question."""
        for m in reversed(self.tg.messages_to(self.user.id)):
            if question.lower() not in (m.text or "").lower():
                continue
            now = self.tg.current(self.user.id, m.message_id) or {}
            rows = (now.get("reply_markup") or {}).get("inline_keyboard") or []  # a tapped keyboard is gone
            for button in (b for row in rows for b in row):
                if label.lower() in button.get("text", "").lower() and button.get("callback_data"):
                    return button["callback_data"]
        raise LookupError(label)

    async def post(self, update: dict, *, route: int | None = None, tag: str | None = None) -> None:
        headers = {SECRET_HEADER: SECRET}
        if route is not None:
            headers[ROUTE_HEADER] = str(route)
        if tag is not None:
            headers["X-Test-Tag"] = tag
        async with self.http.post(f"http://127.0.0.1:{self.front.port}/telegram", json=update, headers=headers) as r:
            self.out.statuses.append(r.status)

    async def pair(self, value: str, k: int) -> None:
        """A stray "?" and the answer, typed in that order, raced to two different workers."""
        noise = self.user.send_text(NOISE)
        answer = self.user.send_text(value)
        route = (self.i + k) % 2
        tags = (f"{self.i}:{k}:n", f"{self.i}:{k}:a")
        await asyncio.gather(
            self.post(noise, route=route, tag=tags[0]), self.post(answer, route=1 - route, tag=tags[1])
        )
        self.out.pairs += 1
        a, b = (self.front.starts.get(t) for t in tags)
        if a is not None and b is not None:
            self.out.pair_gaps_ms.append(abs(a - b) * 1000)

    def inbox_size(self) -> int:
        return len(self.tg.messages_to(self.user.id))

    def said_since(self, count: int, needle: str) -> bool:
        """The webhook answers after the replies are sent, so every reply to what was posted is here. Two
        racing messages' replies may arrive in either order: look at all of them, not only the last."""
        return any(needle.lower() in (m.text or "").lower() for m in self.tg.messages_to(self.user.id)[count:])

    async def act(self, k: int) -> None:
        question, kind, what = SCRIPT[k]
        if kind == "pair":
            await self.pair(self.values[what], k)
        else:
            try:
                data = self.button(what, question)
            except LookupError:  # tapped already, the reply lost with a killed worker: ask for the question
                await self.post(self.user.send_text("/menu"))
                return
            await self.post(self.user.tap(data))

    async def strict(self) -> None:
        """Every acknowledged answer must hold: after each step the bot asks exactly the next question."""
        before = self.inbox_size()
        await self.post(self.user.send_text("/dangky"))
        for k in range(len(SCRIPT) + 1):
            needle = SCRIPT[k][0] if k < len(SCRIPT) else DONE
            if not self.said_since(before, needle):
                said = [m.text for m in self.tg.messages_to(self.user.id)[before:]]
                self.out.mismatches.append(f"teacher {self.i}: expected {needle!r}, bot said {said!r}")
                return
            if k == len(SCRIPT):
                return
            if self.think:
                await asyncio.sleep(self.think * (0.5 + (self.i * 7919 + k * 104729) % 1000 / 1000))
            before = self.inbox_size()
            await self.act(k)

    def where(self) -> int | None:
        shown = self.latest().lower()
        if SCRIPT[0][0].lower() in shown:  # the consent notice names the later fields: it is asked first
            return 0
        for k in range(len(SCRIPT) - 1, -1, -1):
            if SCRIPT[k][0].lower() in shown:
                return k
        return None

    async def adaptive(self) -> None:
        """Answers whatever the bot asks (a worker may die between a commit and its reply): /menu shows the
        current question again when no reply came."""
        await self.post(self.user.send_text("/dangky"))
        last = -1
        for _ in range(4 * len(SCRIPT)):
            if DONE in self.latest():
                return
            k = self.where()
            if k is None:
                if last == len(SCRIPT) - 1 and "đang điền" not in self.latest():
                    return  # saved by the worker that died before it could say so (checked in the database)
                await self.post(self.user.send_text("/menu"))
                k = self.where()
                if k is None:
                    if last == len(SCRIPT) - 1:
                        return
                    await self.post(self.user.send_text("/dangky"))
                    continue
            await self.act(k)
            last = k
        self.out.mismatches.append(f"teacher {self.i}: stuck, bot said {self.latest()!r}")


# --- the set-up ---------------------------------------------------------------------------------------------------


def write_roster(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            ["district_code", "district_name", "school_code", "school_name", "school_level", "role", "full_name",
             "phone", "email"]
        )  # fmt: skip
        w.writerow(["TDM", "Thành phố Thủ Dầu Một", "", "", "", "district_officer", "Lê Minh Tiến", "0913860438", ""])
        for s in range(0, n, 10):
            code = f"TH-W{s // 10:03d}"
            name = f"Trường Tiểu học Thử {s // 10}"
            w.writerow(
                ["TDM", "Thành phố Thủ Dầu Một", code, name, "TH", "principal", "Hiệu Trưởng", f"0903{s:06d}", ""]
            )
            for i in range(s, min(s + 10, n)):
                w.writerow(["TDM", "Thành phố Thủ Dầu Một", code, name, "TH", "teacher", f"Cô {FAMILY[i % 8]} {GIVEN[(i // 8) % 10]}",
                            f"0902{i:06d}", ""])  # fmt: skip


def link_all(db_url: str, tg: FakeTelegram, n: int) -> None:
    """Every teacher (and principal, who gets the notices) already linked, as after a first /start."""
    engine = create_engine(db_url)
    now = datetime.now(UTC)
    ident = ChatIdentity.__table__
    with engine.begin() as conn:
        staff = {phone: sid for sid, phone in conn.execute(select(Staff.id, Staff.phone))}
        rows = []
        for i in range(n):
            tg.user(700000 + i, f"GV{i}")
            rows.append(dict(staff_id=staff[f"+84902{i:06d}"], external_id=str(700000 + i)))
        for s in range(0, n, 10):
            tg.user(800000 + s, f"HT{s}")
            rows.append(dict(staff_id=staff[f"+84903{s:06d}"], external_id=str(800000 + s)))
        conn.execute(
            ident.insert(),
            [dict(r, channel="telegram", chat_id=r["external_id"], linked_at=now) for r in rows],
        )
    engine.dispose()


def saved(db_url: str) -> dict[str, list[tuple]]:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(Student.code, Student.full_name, Student.birth_date, Student.class_name, Student.guardian_name)
        ).all()
        assert conn.execute(select(func.count()).select_from(Student.__table__)).scalar() == len(rows)
    engine.dispose()
    by_code: dict[str, list[tuple]] = {}
    for r in rows:
        by_code.setdefault(r.code, []).append(tuple(r))
    return by_code


def check_forms(db_url: str, n: int) -> list[str]:
    problems = []
    rows = saved(db_url)
    for i in range(n):
        want = (pupil_code(i), pupil_name(i), BIRTH, class_name(i), guardian_name(i))
        got = rows.pop(pupil_code(i), [])
        if got != [want]:
            problems.append(f"teacher {i}: saved {got}, typed {want}")
    problems.extend(f"unexpected record {r}" for r in rows.values())
    return problems


@pytest.fixture
async def tg():
    async with FakeTelegram() as fake:
        yield fake


async def start_workers(tmp_path: Path, tg: FakeTelegram, db_url: str, n: int, *, workers: int = 2, **extra: str):
    ports = [free_port() for _ in range(workers)]
    procs = []
    for k, port in enumerate(ports):
        env = bot_env(
            tmp_path,
            tg,
            db_url=db_url,
            FIELDBOT_TELEGRAM_WEBHOOK_URL=WEBHOOK_URL,
            FIELDBOT_TELEGRAM_WEBHOOK_SECRET=SECRET,
            FIELDBOT_TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
            FIELDBOT_ROLE="primary" if k == 0 else "worker",
            FIELDBOT_FLOOD_LIMIT_PER_MINUTE="100000",
            # The processes share one bot: together they keep to its 29 messages a second, as deployed.
            FIELDBOT_PROCESSES=str(workers),
            **extra,
        )
        procs.append(BotProcess(env, cwd=tmp_path))
    roster = tmp_path / "roster.csv"
    write_roster(roster, n)
    procs[0].cli("roster", "import", str(roster))
    link_all(db_url, tg, n)
    await asyncio.gather(*(p.start(ready="fieldbot is running") for p in procs))
    front = Front([f"http://127.0.0.1:{port}/telegram" for port in ports])
    await front.start()
    return procs, front


def step_ms(procs: list[BotProcess]) -> str:
    """The engine's own time per step (from its log line), apart from sending the replies."""
    import re

    ms = sorted(
        float(m.group(1))
        for p in procs
        for line in p.log
        if "conversations.engine" in line or "form=" in line
        for m in [re.search(r"form=\S+ step=\S+ replies=\d+ ms=([\d.]+)", line)]
        if m
    )
    if not ms:
        return "engine step: no log lines"
    return f"engine step p50 {ms[len(ms) // 2]:.1f} ms p99 {ms[min(len(ms) - 1, int(0.99 * len(ms)))]:.1f} ms"


def report(label: str, n: int, out: Outcome, front: Front, seconds: float) -> None:
    lat = sorted(front.latencies)
    p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else 0.0
    gaps = out.pair_gaps_ms
    same_ms = sum(1 for g in gaps if g < 1.0)
    print(
        f"\n{label}: {n} teachers, {front.forwarded} updates in {seconds:.1f}s "
        f"({front.forwarded / seconds:.0f}/s), per update p50 {p(0.5):.1f} ms p99 {p(0.99):.1f} ms "
        f"(webhook answered after the step and its replies); {out.pairs} racing pairs on different workers, "
        f"{same_ms} forwarded within the same millisecond (median gap "
        f"{statistics.median(gaps) if gaps else 0:.2f} ms); retried on the other worker: {front.retried}; "
        f"mismatches {len(out.mismatches)}"
    )


async def run_scenario(tmp_path, tg, db_url: str, n: int, *, extra: dict[str, str] | None = None):
    procs, front = await start_workers(tmp_path, tg, db_url, n, **(extra or {}))
    out = Outcome()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=1200)
        ) as http:
            started = time.perf_counter()
            await asyncio.gather(*(Teacher(i, tg, front, http, out).strict() for i in range(n)))
            report("two workers", n, out, front, time.perf_counter() - started)
            print(step_ms(procs))
        for p in procs:
            assert "Traceback" not in p.text, p.text[-3000:]
    finally:
        await front.stop()
        for p in procs:
            await p.stop()
    return out


async def test_two_workers_keep_every_persons_answers_in_order(tmp_path, tg, pg_schema_url) -> None:
    n = teachers_wanted(40)
    out = await run_scenario(tmp_path, tg, pg_schema_url, n)
    assert out.mismatches == [], out.mismatches[:5]
    assert set(out.statuses) == {200}  # no update refused or lost on the way
    assert check_forms(pg_schema_url, n) == []
    assert tg.webhook.get("url") == WEBHOOK_URL  # registered once, by the primary
    assert len(tg.calls_of("setWebhook")) == 1
    assert pytest.approx(out.pairs) == n * 5


@pytest.mark.skipif(not os.environ.get("FIELDBOT_E2E_PROVE_LOCK"), reason="proof run: FIELDBOT_E2E_PROVE_LOCK=1")
async def test_without_the_lock_the_same_load_loses_answers(tmp_path, tg, pg_schema_url) -> None:
    n = teachers_wanted(40)
    out = await run_scenario(tmp_path, tg, pg_schema_url, n, extra={"FIELDBOT_TEST_NO_STEP_LOCK": "1"})
    problems = out.mismatches + check_forms(pg_schema_url, n)
    print(f"without the lock: {len(problems)} problems, e.g. {problems[:3]}")
    assert problems  # the lock is what makes the test above pass


async def test_a_worker_killed_mid_load_loses_no_acknowledged_answer(tmp_path, tg, pg_schema_url) -> None:
    n = int(os.environ.get("FIELDBOT_E2E_KILL_TEACHERS", 20))
    procs, front = await start_workers(tmp_path, tg, pg_schema_url, n)
    out = Outcome()
    try:
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=1200)
        ) as http:
            started = time.perf_counter()
            teachers = asyncio.gather(*(Teacher(i, tg, front, http, out).adaptive() for i in range(n)))

            async def killer() -> None:
                while front.forwarded < n * 6:  # about a third of the way
                    await asyncio.sleep(0.05)
                await procs[1].kill9()

            await asyncio.gather(teachers, killer())
            report("one worker killed", n, out, front, time.perf_counter() - started)
        assert procs[1].proc.returncode == -9
        assert "Traceback" not in procs[0].text, procs[0].text[-3000:]
    finally:
        await front.stop()
        for p in procs:
            await p.stop()
    assert out.mismatches == [], out.mismatches[:5]
    assert check_forms(pg_schema_url, n) == []  # exactly what was typed, once: nothing acknowledged was lost
    with create_engine(pg_schema_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM conversation")).scalar() == 0
