"""/tonghop and /xuatfile through the engine: the asker's scope only, a chart, a workbook with a safe name."""

from __future__ import annotations

from datetime import date

import pytest
from openpyxl import load_workbook

from storage import students
from storage.db import session_scope
from storage.models import Staff
from tests.engine_helpers import Chat, make_engine


@pytest.fixture
def eng(sqlite_engine, sqlite_world, programme, clock, tmp_path):
    return make_engine(sqlite_engine, programme, clock, media_dir=tmp_path / "media")


def _seed(db, world, clock) -> None:
    with session_scope(db) as s:
        for who, code, name, birth in (
            ("teacher_a", "6000000001", "Nguyễn Văn Phúc", date(2012, 1, 1)),
            ("teacher_b", "6000000002", "Trần Thị Quyên", date(2008, 1, 1)),
        ):
            actor = s.get(Staff, getattr(world, who))
            st = students.register_student(
                s,
                actor=actor,
                now=clock.now(),
                full_name=name,
                birth_date=birth,
                class_name="4A" if who == "teacher_a" else "8A",
                code=code,
                gender="male",
                category="poor",
                need="device",
            )
            principal = s.get(Staff, world.principal_a if who == "teacher_a" else world.principal_b)
            students.approve(s, actor=principal, student_id=st.id, now=clock.now())


def _cells(path) -> str:
    wb = load_workbook(path, read_only=True)
    return "\n".join(
        str(c) for ws in wb.worksheets for row in ws.iter_rows(values_only=True) for c in row if c is not None
    )


async def test_tonghop_sends_text_and_chart(eng, sqlite_engine, sqlite_world, clock) -> None:
    _seed(sqlite_engine, sqlite_world, clock)
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/tonghop")
    photos = [o.photo for o in teacher.replies if o.photo is not None]
    assert teacher.text and len(photos) == 1 and photos[0][:8] == b"\x89PNG\r\n\x1a\n"
    assert "Chu Văn An" not in teacher.text  # the teacher's own school only
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/tonghop")
    assert "Dĩ An" not in officer.text


async def test_xuatfile_scope_and_file_name(eng, sqlite_engine, sqlite_world, clock, tmp_path) -> None:
    _seed(sqlite_engine, sqlite_world, clock)
    principal = await Chat.linked(eng, sqlite_world.phones["principal_b"])
    await principal.say("/xuatfile")
    [doc] = [o for o in principal.replies if o.document is not None]
    assert doc.document_name == "tong-hop-thcs-chuvanan-17-11-2021.xlsx"
    assert doc.document.is_file() and doc.document.parent == tmp_path / "media" / "exports"
    cells = _cells(doc.document)
    assert "6000000002" in cells and "6000000001" not in cells  # school B's pupil only
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/xuatfile")
    [doc] = [o for o in officer.replies if o.document is not None]
    assert doc.document_name == "tong-hop-tdm-17-11-2021.xlsx"
    cells = _cells(doc.document)
    assert "6000000001" in cells and "6000000002" in cells
    teacher = await Chat.linked(eng, sqlite_world.phones["teacher_a"])
    await teacher.say("/xuatfile")
    assert "không dành cho giáo viên" in teacher.text


async def test_xuatfile_without_media_dir(sqlite_engine, sqlite_world, programme, clock) -> None:
    eng = make_engine(sqlite_engine, programme, clock)
    officer = await Chat.linked(eng, sqlite_world.phones["officer"])
    await officer.say("/xuatfile")
    assert "chưa được cấu hình thư mục" in officer.text
