"""Outgoing -> Zalo messages: plain text, numbered options, 2,000-character pages, pictures by URL."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.zalo.render import (
    TEXT_LIMIT,
    PublicMedia,
    ZaloPhoto,
    ZaloRenderer,
    ZaloText,
    split_text,
    zalo_len,
)
from core.clock import FixedClock
from core.messages import Option, Outgoing, esc

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_html_lite_is_stripped_and_options_numbered() -> None:
    out = Outgoing(
        text=f"<b>Đối tượng</b> của em {esc('Nguyễn <Văn> A')}?",
        options=[Option("cat:poor", "Hộ nghèo"), Option("cat:near", "Hộ cận nghèo")],
    )
    [msg] = ZaloRenderer().render(out)
    assert isinstance(msg, ZaloText)
    lines = msg.text.split("\n")
    assert lines[0] == "Đối tượng của em Nguyễn <Văn> A?"
    assert "1. Hộ nghèo" in lines and "2. Hộ cận nghèo" in lines and "ví dụ: 1" in lines[-1]


def test_long_text_split_at_line_boundaries_in_order() -> None:
    lines = [f"{i:04d}. Học sinh Nguyễn Thị Bích Ngọc — lớp 5A — hộ cận nghèo" for i in range(200)]
    pages = split_text("\n".join(lines))
    assert len(pages) > 1 and all(zalo_len(p) <= TEXT_LIMIT for p in pages)
    assert "\n".join(pages).split("\n") == lines  # nothing lost, nothing reordered, no line cut


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ăâđêôơư abc\n😀x")), max_size=7000))
def test_split_never_exceeds_the_limit_and_keeps_every_word(text: str) -> None:
    pages = split_text(text, limit=200)
    assert all(zalo_len(p) <= 200 for p in pages)
    assert "".join("".join(p.split()) for p in pages) == "".join(text.split())


def test_picture_without_public_url_is_described(tmp_path: Path) -> None:
    out = Outgoing(text="Tổng hợp: 12 em đã nhận máy", photo=PNG)
    [msg] = ZaloRenderer().render(out)
    assert isinstance(msg, ZaloText) and msg.text.startswith("Tổng hợp: 12 em")
    assert "đường dẫn công khai" in msg.text
    assert not any(tmp_path.iterdir())


def test_picture_is_published_with_an_unguessable_name(tmp_path: Path, clock: FixedClock) -> None:
    media = PublicMedia(directory=tmp_path / "public", base_url="https://bot.example.org/media/", clock=clock)
    [msg] = ZaloRenderer(media=media).render(Outgoing(text="Biểu đồ", photo=PNG))
    assert isinstance(msg, ZaloPhoto) and msg.caption == "Biểu đồ"
    name = msg.url.rsplit("/", 1)[1]
    assert msg.url == f"https://bot.example.org/media/{name}" and name.endswith(".png") and len(name) >= 24
    path, ctype = media.path_for(name)
    assert path.read_bytes() == PNG and ctype == "image/png"
    # A caption too long for the photo goes after it as text.
    long = ZaloRenderer(media=media).render(Outgoing(text="dòng\n" * 600, photo=PNG))
    assert isinstance(long[0], ZaloPhoto) and long[0].caption is None and isinstance(long[1], ZaloText)


def test_media_names_are_checked_and_files_expire(tmp_path: Path, clock: FixedClock) -> None:
    media = PublicMedia(directory=tmp_path / "public", base_url="https://x/media", clock=clock, keep=timedelta(days=7))
    name = media.publish(PNG).rsplit("/", 1)[1]
    (tmp_path / "secret.png").write_bytes(PNG)
    for bad in ("../secret.png", "..%2Fsecret.png", "secret.png", name[:-4] + ".svg", name + "/x", ""):
        assert media.path_for(bad) is None, bad
    clock.advance(timedelta(days=8))
    assert media.path_for(name) is None  # expired even before the prune
    assert media.prune() == 1 and not any((tmp_path / "public").iterdir())


def test_export_is_announced_not_sent(tmp_path: Path) -> None:
    doc = tmp_path / "x.xlsx"
    doc.write_bytes(b"PK")
    [msg] = ZaloRenderer().render(Outgoing(text="Đã xuất dữ liệu.", document=doc, document_name="TH-PHUHOA1.xlsx"))
    assert isinstance(msg, ZaloText) and "TH-PHUHOA1.xlsx" in msg.text and "/xuatfile" in msg.text


def test_contact_request_asks_to_type_the_phone() -> None:
    [msg] = ZaloRenderer().render(Outgoing(text="Bạn là ai?", request_contact=True))
    assert "Gõ số điện thoại" in msg.text


def test_jpeg_thumbnail_keeps_its_type(tmp_path: Path, clock: FixedClock) -> None:
    media = PublicMedia(directory=tmp_path, base_url="https://x/media", clock=clock)
    url = media.publish(b"\xff\xd8\xff\xe0" + b"\x00" * 10)
    assert url.endswith(".jpg") and media.path_for(url.rsplit("/", 1)[1])[1] == "image/jpeg"
    assert os.path.getmtime(tmp_path / url.rsplit("/", 1)[1]) == clock.now().timestamp()
