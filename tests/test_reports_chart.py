"""The chart: a PNG a phone can read, Vietnamese letters drawn with a font that has them, no crash when empty."""

from __future__ import annotations

import io
import sys
import warnings
from datetime import UTC, datetime

import pytest
from matplotlib.ft2font import FT2Font
from PIL import Image

from reports.chart import FONT_BOLD, FONT_REGULAR, MAX_SCHOOLS, WIDTH_PX, build_figure, render_chart
from reports.summary import SchoolSummary, Summary
from storage.scope import Scope

# Every Vietnamese letter with its diacritics, precomposed (NFC), both cases, plus đ/Đ.
_BASES = "aăâeêioôơuưy"
_TONED = ("àảãáạ ằẳẵắặ ầẩẫấậ èẻẽéẹ ềểễếệ ìỉĩíị òỏõóọ ồổỗốộ ờởỡớợ ùủũúụ ừửữứự ỳỷỹýỵ").replace(" ", "")
VIETNAMESE = _BASES + _TONED + "đ"
VIETNAMESE += VIETNAMESE.upper()

NOW = datetime(2021, 11, 17, 1, 0, tzinfo=UTC)
NAMES = [
    "Phú Hòa",
    "Chu Văn An",
    "Nguyễn Du",
    "Lê Quý Đôn",
    "Trần Hưng Đạo",
    "Định Hòa",
    "Tương Bình Hiệp",
    "Hiệp An",
    "Chánh Mỹ",
    "Phú Mỹ",
]


def summary_of(schools: list[SchoolSummary], programme, *, school_id: int | None = None) -> Summary:
    return Summary(
        scope=Scope(district_id=1, school_id=school_id),
        title="Thành phố Thủ Dầu Một",
        generated_at=NOW,
        schools=schools,
        totals=SchoolSummary(None, "", ""),
        needs_report_due=programme.needs_report_due,
        category_labels={c.code: (c.label_vi, c.label_en) for c in programme.categories},
    )


def district(n: int, programme) -> Summary:
    schools = []
    for i in range(n):
        reg = 10 + (i * 37) % 110
        rec = reg * (i % 4) // 4
        handed = rec // 2
        schools.append(
            SchoolSummary(
                school_id=i + 1,
                code=f"S{i}",
                name=f"Trường {'Tiểu học' if i % 2 else 'THCS'} {NAMES[i % 10]} {i}",
                registered=reg,
                approved=reg,
                received_programme=rec,
                handed_over=handed,
                waiting=rec - handed,
                late_csdl=handed // 3 if i % 5 == 0 else 0,
            )
        )
    return summary_of(schools, programme)


def texts(fig) -> list[str]:
    from matplotlib.text import Text

    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as im:
        im.verify()
        return im.size


def test_the_bundled_font_has_every_vietnamese_letter() -> None:
    for path in (FONT_REGULAR, FONT_BOLD):
        charmap = FT2Font(str(path)).get_charmap()
        missing = [ch for ch in VIETNAMESE if ord(ch) not in charmap]
        assert not missing, f"{path.name} lacks {''.join(missing)}"
    # The check itself can fail: a font without Vietnamese (matplotlib's cmr10) lacks these letters.
    cmr = FT2Font(str(FONT_REGULAR.with_name("cmr10.ttf"))).get_charmap()
    assert any(ord(ch) not in cmr for ch in VIETNAMESE)


def test_thirty_schools_phone_sized_with_every_label_drawn(programme) -> None:
    summary = district(30, programme)
    fig = build_figure(summary)
    labels = texts(fig)
    assert "Tiểu học Chu Văn An 1" in labels and "Tiểu học Lê Quý Đôn 3" in labels and "THCS Trần Hưng Đạo 4" in labels
    assert {"Học sinh đăng ký", "Máy đã nhận", "Đã bàn giao", "Bàn giao trễ cập nhật CSDL ngành"} <= set(labels)
    assert any("(trễ" in t for t in labels)  # the late count is written next to the bar
    charmap = FT2Font(str(FONT_REGULAR)).get_charmap()
    assert all(ord(ch) in charmap for t in labels for ch in t if ch not in "\n")
    # A school with late handovers is named in the warning colour.
    from matplotlib.text import Text

    colours = {t.get_text(): t.get_color() for t in fig.findobj(Text)}
    assert summary.schools[5].late_csdl and not summary.schools[1].late_csdl
    assert colours["Tiểu học Định Hòa 5"] != colours["Tiểu học Chu Văn An 1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib warns "Glyph ... missing from font(s)" for a box
        png = render_chart(summary)
    width, height = png_size(png)
    assert width == WIDTH_PX and 1500 < height <= 2560  # Telegram keeps up to 2,560 px on the long side
    fig.canvas.draw()  # tick labels get their text when drawn
    # Every text with a letter is drawn from the bundled font file (tick labels are digits only).
    fonts = {
        t.get_fontproperties().get_file() for t in fig.findobj(Text) if not t.get_text().isdigit() and t.get_text()
    }
    assert fonts == {str(FONT_REGULAR), str(FONT_BOLD)}
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text()]
    assert min(sizes) >= 11


def test_more_schools_than_fit_show_the_late_ones_and_say_so(programme) -> None:
    summary = district(MAX_SCHOOLS + 15, programme)
    fig = build_figure(summary)
    labels = texts(fig)
    assert any(f"{MAX_SCHOOLS}/{MAX_SCHOOLS + 15} trường" in t for t in labels)
    late_names = [s.name.removeprefix("Trường ") for s in summary.schools if s.late_csdl]
    assert all(name in labels for name in late_names)
    assert png_size(render_chart(summary))[1] <= 2560


@pytest.mark.parametrize("lang,text", [("vi", "Chưa có dữ liệu"), ("en", "No data yet")])
def test_empty_district_gives_a_clear_card(programme, lang, text) -> None:
    for summary in (
        summary_of([], programme),
        summary_of([SchoolSummary(school_id=1, code="S", name="Trường THCS Trống")], programme),
    ):
        fig = build_figure(summary, lang=lang)
        assert text in texts(fig)
        assert png_size(render_chart(summary, lang=lang))[0] == WIDTH_PX


def test_one_school_and_awkward_names(programme) -> None:
    s = SchoolSummary(
        school_id=7,
        code="S7",
        name="Trường Tiểu học $5 & <Ánh Dương> " + "Rất Dài " * 10,
        registered=3,
        approved=3,
        received_other=2,
        handed_over=2,
        late_csdl=2,
        waiting=0,
    )
    summary = summary_of([s], programme, school_id=7)
    labels = texts(build_figure(summary, lang="en"))
    assert "Handed over" in labels and any("late 2" in t for t in labels)
    assert png_size(render_chart(summary))[0] == WIDTH_PX


def test_chart_leaves_pyplot_alone(programme) -> None:
    render_chart(district(3, programme))
    assert "matplotlib.pyplot" not in sys.modules or not __import__("matplotlib.pyplot").pyplot.get_fignums()
