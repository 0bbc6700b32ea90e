"""The web view's test world: the report seed (schools A and B in Thủ Dầu Một, one school in Dĩ An) with photo
files and thumbnails on disk, plus a province (Bình Dương) that holds Thủ Dầu Một but not Dĩ An, and its officer."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bot.web import WebConfig, build_web_app
from core.vocabulary import Role
from storage.db import session_scope
from storage.models import District, Photo, Province, Staff
from storage.web import create_link, open_session
from tests.test_reports_data import seed_reports

PROVINCE_PHONE = "+84904000001"


@dataclass
class WebWorld:
    world: object
    seeded: object
    province_id: int
    province_officer: int
    photo_a: int  # a handover photo of school A
    photo_other: int  # a handover photo of the school in Dĩ An
    media_dir: Path


def seed_web(engine, world, *, now, programme, media_dir: Path) -> WebWorld:
    seeded = seed_reports(engine, world, now=now, programme=programme, media_dir=media_dir)
    for path in seeded.photo_files:  # the report seed writes photos only: thumbnails beside them
        thumb = media_dir / "thumbs" / path.relative_to(media_dir / "photos")
        thumb.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, thumb)
    with session_scope(engine) as s:
        bd = Province(code="BD", name="Tỉnh Bình Dương")
        s.add(bd)
        s.flush()
        s.get(District, world.district_id).province_id = bd.id
        officer = Staff(
            full_name="Trịnh Văn Sở",
            phone=PROVINCE_PHONE,
            role=Role.PROVINCE_OFFICER,
            district_id=None,
            province_id=bd.id,
            created_at=now,
            updated_at=now,
        )
        s.add(officer)
        s.flush()
        photos = {p.sha256[:4]: p.id for p in s.execute(select(Photo)).scalars()}
        return WebWorld(world, seeded, bd.id, officer.id, photos["aa11"], photos["cc33"], media_dir)


def web_config(engine, programme, clock, media_dir: Path, **kw) -> WebConfig:
    return WebConfig(
        db=engine, programme=programme, clock=clock, media_dir=media_dir, public_url="http://127.0.0.1", **kw
    )


def make_app(engine, programme, clock, media_dir: Path, **kw):
    return build_web_app(web_config(engine, programme, clock, media_dir, **kw))


def session_for(engine, staff_id: int, clock) -> str:
    with session_scope(engine) as s:
        return open_session(s, staff_id=staff_id, via="link", now=clock.now())


def link_for(engine, staff_id: int, clock) -> str:
    with session_scope(engine) as s:
        return create_link(s, staff_id=staff_id, now=clock.now())
