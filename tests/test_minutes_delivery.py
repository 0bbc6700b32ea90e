"""Minutes beyond the chat that made them: the one-time reminder to the principal, the digest's count,
`fieldbot minutes` for the district (with one-line mistakes), and Zalo, which cannot receive a file."""

from __future__ import annotations

import io
import logging
import os
from datetime import date, timedelta
from pathlib import Path

import pypdf
import pytest

from bot.cli import main
from bot.zalo.render import PublicMedia, ZaloRenderer, ZaloText
from core.clock import FixedClock
from core.messages import Outgoing
from scheduler.context import SweepContext
from scheduler.digest import build_digest
from scheduler.rules import compose
from scheduler.sweep import sweep
from storage.db import make_engine, session_scope
from storage.models import Handover, School
from tests.factories import add_handover, local, rows, seed_world
from tests.test_reports_data import seed_reports

# --- the reminder --------------------------------------------------------------------------------------------


def _minutes(result) -> list:
    return [c for c in result.created if c.rule == "minutes"]


def test_reminder_fires_once_n_days_after_a_handover_without_signed_minutes(db_engine, world, programme):
    w = world
    assert programme.deadlines.minutes_signed_days == 3
    hid = add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 10),
        name="Lê Thị Hoa",
    )
    signed = add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 10),
        name="Phạm Văn Khoa",
    )
    with session_scope(db_engine) as s:
        s.get(Handover, signed).minutes_signed_at = local(2021, 11, 19, 9)
    assert _minutes(sweep(db_engine, programme=programme, now=local(2021, 11, 21, 6, 59))) == []
    [c] = _minutes(sweep(db_engine, programme=programme, now=local(2021, 11, 21, 7)))
    assert c.key == f"minutes:handover:{hid}:s{w.principal_a}:remind" and c.recipient.staff_id == w.principal_a
    assert "Lê Thị Hoa" in c.line and f"#{hid}" in c.line and "18/11/2021" in c.line
    # Later sweeps, the next days: never again.
    for day in (21, 22, 25):
        assert _minutes(sweep(db_engine, programme=programme, now=local(2021, 11, day, 9))) == []
    [row] = rows(db_engine, rule="minutes")
    message = compose("minutes", row.stage, [row.text], lang="vi", programme=programme)  # as delivered
    assert "1 bàn giao chưa có biên bản đã ký sau 3 ngày" in message and "/bienban" in message


def test_minutes_signed_before_delivery_cancel_the_reminder(db_engine, world, programme):
    w = world
    hid = add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 18),
        created_at=local(2021, 11, 18, 10),
    )
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 21, 7))
    assert len(_minutes(r)) == 1
    with session_scope(db_engine) as s:
        s.get(Handover, hid).minutes_signed_at = local(2021, 11, 21, 7, 30)
    r = sweep(db_engine, programme=programme, now=local(2021, 11, 21, 7, 35))
    assert any(k.startswith(f"minutes:handover:{hid}:") for k in r.superseded)  # pending row skipped


def test_old_handovers_are_no_longer_swept(db_engine, world, programme):
    """A reminder is worth a week; after that the digest counts the handover instead."""
    w = world
    add_handover(
        db_engine,
        programme,
        school_id=w.school_a,
        recorded_by=w.teacher_a,
        handed_over_on=date(2021, 11, 1),
        created_at=local(2021, 11, 1, 10),
    )
    assert _minutes(sweep(db_engine, programme=programme, now=local(2021, 11, 21, 7))) == []


def test_digest_counts_handovers_without_signed_minutes(db_engine, world, programme):
    w = world
    for day, name in ((date(2021, 11, 16), "Lê Thị Hoa"), (date(2021, 11, 20), "Phạm Văn Khoa")):
        add_handover(
            db_engine,
            programme,
            school_id=w.school_a,
            recorded_by=w.teacher_a,
            handed_over_on=day,
            created_at=local(day.year, day.month, day.day, 10),
            name=name,
        )
    with session_scope(db_engine) as s:
        ctx = SweepContext(session=s, programme=programme, now=local(2021, 11, 21, 7))
        text = build_digest(ctx, district_id=w.district_id)
    assert "Bàn giao chưa có biên bản đã ký: 2." in text
    # Only the one older than 3 days is late.
    assert "Trường Tiểu học Phú Hòa 1: 1 bàn giao quá 3 ngày chưa có biên bản đã ký" in text


# --- fieldbot minutes ----------------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path, monkeypatch, clock, programme):
    for key in list(os.environ):
        if key.startswith("FIELDBOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FIELDBOT_DATABASE_URL", url)
    monkeypatch.setenv("FIELDBOT_MEDIA_DIR", str(tmp_path / "media"))
    assert main(["db", "upgrade"]) == 0
    engine = make_engine(url)
    world = seed_world(engine, now=clock.now())
    seeded = seed_reports(engine, world, now=clock.now(), programme=programme, media_dir=tmp_path / "media")
    engine.dispose()
    return tmp_path, seeded


def _pages(path: Path) -> list[str]:
    return [" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(path.read_bytes())).pages]


def test_minutes_of_one_handover_and_of_a_school(env, capsys) -> None:
    tmp, seeded = env
    hid = seeded.handovers["late"]
    capsys.readouterr()
    assert main(["minutes", "--handover", f"BG{hid:06d}", "--out", "one.pdf"]) == 0
    assert f"biên bản bàn giao BG{hid:06d}, 1 trang" in capsys.readouterr().out
    [page] = _pages(tmp / "one.pdf")
    assert "BIÊN BẢN BÀN GIAO MÁY TÍNH" in page and f"Số: BG{hid:06d}" in page
    assert main(["minutes", "--handover", str(hid), "--out", "one.pdf", "--force"]) == 0  # bare number, overwrite
    assert main(["minutes", "--handover", str(hid), "--out", "new/folder/one.pdf"]) == 0
    assert "Đã tạo thư mục new/folder" in capsys.readouterr().out and (tmp / "new/folder/one.pdf").exists()

    assert main(["minutes", "--school", "TH-PHUHOA1", "--out", "school.pdf"]) == 0
    out = capsys.readouterr().out
    assert "2 biên bản tiếp nhận, 3 biên bản bàn giao, 5 trang" in out
    pages = _pages(tmp / "school.pdf")
    assert len(pages) == 5
    assert sum("BIÊN BẢN TIẾP NHẬN MÁY TÍNH" in p for p in pages) == 2
    assert sum("BIÊN BẢN BÀN GIAO MÁY TÍNH" in p for p in pages) == 3


@pytest.mark.parametrize(
    "argv,message",
    [
        (["minutes", "--handover", "BG999999", "--out", "x.pdf"], "không có bàn giao mã BG999999"),
        (["minutes", "--handover", "abc", "--out", "x.pdf"], "mã bàn giao không hợp lệ: abc"),
        (["minutes", "--school", "KHONGCO", "--out", "x.pdf"], "không có trường mã KHONGCO"),
        (["minutes", "--school", "TH-PHUHOA1", "--out", "x.docx"], "--out phải là tệp .pdf"),
        (["minutes", "--school", "TH-PHUHOA1", "--out", "nowhere/x.pdf/"], "là một thư mục"),
        (["minutes", "--school", "TH-PHUHOA1", "--out", "taken.pdf"], "đã có: thêm --force"),
    ],
)
def test_operator_mistakes_are_one_line(env, capsys, argv, message) -> None:
    tmp, _ = env
    if argv[-1].endswith("/"):
        (tmp / "nowhere" / "x.pdf").mkdir(parents=True)
        argv = [*argv[:-1], "nowhere/x.pdf"]
    (tmp / "taken.pdf").write_bytes(b"keep me")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp / "x.pdf").exists() and (tmp / "taken.pdf").read_bytes() == b"keep me"


def test_a_school_with_nothing_to_print(env, capsys) -> None:
    tmp, _ = env
    engine = make_engine(f"sqlite:///{tmp / 'cli.db'}")
    with session_scope(engine) as s:
        s.add(School(code="TH-MOI", name="Trường Tiểu học Mới", level="TH", district_id=1))
    engine.dispose()
    capsys.readouterr()
    assert main(["minutes", "--school", "TH-MOI", "--out", "x.pdf"]) == 2
    err = capsys.readouterr().err
    assert "chưa có lô máy hay bàn giao nào" in err and len(err.strip().splitlines()) == 1


# --- Zalo ----------------------------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n%minutes\n"


def test_zalo_gets_an_expiring_link_only_with_a_public_media_url(tmp_path: Path, clock: FixedClock, caplog) -> None:
    doc = tmp_path / "a1b2c3.pdf"
    doc.write_bytes(PDF)
    out = Outgoing(text="📄 Biên bản bàn giao BG000007", document=doc, document_name="bien-ban-BG000007.pdf")

    [msg] = ZaloRenderer().render(out)  # no public media URL: where to get it instead
    assert isinstance(msg, ZaloText) and "bien-ban-BG000007.pdf" in msg.text
    assert "/bienban" in msg.text and "fieldbot minutes" in msg.text and "http" not in msg.text

    media = PublicMedia(directory=tmp_path / "public", base_url="https://bot.example.org/media", clock=clock)
    with caplog.at_level(logging.INFO, logger="bot.zalo.render"):
        [msg] = ZaloRenderer(media=media).render(out)
    url = next(w for w in msg.text.split() if w.startswith("https://"))
    name = url.rsplit("/", 1)[1]
    assert name.endswith(".pdf") and len(name) >= 28 and "BG000007" not in name  # unguessable
    assert "hết hạn sau 12 giờ" in msg.text
    path, ctype = media.path_for(name)
    assert path.read_bytes() == PDF and ctype == "application/pdf"
    # Logged (which file, when it dies), without the token that opens it.
    assert any("bien-ban-BG000007.pdf" in r.getMessage() for r in caplog.records)
    assert not any(name in r.getMessage() for r in caplog.records)
    clock.advance(timedelta(hours=12, seconds=1))
    assert media.path_for(name) is None  # expired within the day, while pictures keep a week
    assert media.prune() == 1


def test_other_documents_are_still_never_linked(tmp_path: Path, clock: FixedClock) -> None:
    doc = tmp_path / "x.xlsx"
    doc.write_bytes(b"PK")
    media = PublicMedia(directory=tmp_path / "public", base_url="https://x/media", clock=clock)
    [msg] = ZaloRenderer(media=media).render(Outgoing(document=doc, document_name="tong-hop.xlsx"))
    assert "http" not in msg.text and not (tmp_path / "public").exists()
