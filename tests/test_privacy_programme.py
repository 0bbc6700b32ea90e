"""The programme file's [privacy] section: defaults when absent, and a clear line naming the field when wrong."""

from __future__ import annotations

from datetime import date

import pytest

from bot.settings import DEFAULT_PROGRAMME
from core.programme import ProgrammeError, load_programme


def _with_privacy(tmp_path, section: str):
    text = DEFAULT_PROGRAMME.read_text(encoding="utf-8")
    text = text[: text.index("[privacy]")] + section
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return load_programme(path)


def test_the_shipped_file_has_the_notice_and_the_retention(programme) -> None:
    p = programme.privacy
    assert "Lê Minh Tiến" in p.notice_vi and "ngày sinh" in p.notice_vi and "xóa" in p.notice_vi
    assert p.closes == date(2022, 12, 31) and p.keep_until == date(2023, 12, 31) and p.export_keep_days == 7


def test_defaults_without_a_privacy_section(tmp_path) -> None:
    p = _with_privacy(tmp_path, "").privacy
    assert "đồng ý" not in p.notice_vi and "Phòng GD&ĐT" in p.notice_vi and p.keep_until is None


@pytest.mark.parametrize(
    "section,field",
    [
        ('[privacy]\ncloses = "31/13/2022"\n', "privacy.closes"),
        ("[privacy]\nexport_keep_days = 0\n", "privacy.export_keep_days"),
        ('[privacy]\nnotice_vi = "ngắn"\n', "privacy.notice_vi"),
        ("[privacy]\nkeep_days = 3\n", "privacy.keep_days"),
    ],
)
def test_a_wrong_value_names_the_field(tmp_path, section, field) -> None:
    with pytest.raises(ProgrammeError, match=f"trường '{field}' sai"):
        _with_privacy(tmp_path, section)
