"""Parsers and option matching: every bad input issue 3 lists gets a clear Vietnamese refusal."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversations.fields import (
    int_parser,
    parse_birth_date,
    parse_class_name,
    parse_date,
    parse_person_name,
    parse_phone,
    parse_student_code,
)
from conversations.forms.base import FormContext, Invalid, Person
from core.clock import LOCAL_TZ, FixedClock
from core.text import fold, match_label


class _Ctx(FormContext):
    """A context without a database: the school level is given."""

    def __init__(self, programme, level: str | None) -> None:
        clock = FixedClock(datetime(2021, 11, 17, 8, 0, tzinfo=LOCAL_TZ))
        super().__init__(
            session_factory=lambda: None,
            staff=Person(1, "X Y", "teacher", 1, 1),
            programme=programme,
            clock=clock,
            now=clock.now(),
            lang="vi",
            values={},
        )
        self.__dict__["school_level"] = level


@pytest.fixture
def th(programme):
    return _Ctx(programme, "TH")


@pytest.fixture
def thcs(programme):
    return _Ctx(programme, "THCS")


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("nguyễn văn AN", "Nguyễn Văn An"),
        ("  TRẦN   thị  bích  ngọc ", "Trần Thị Bích Ngọc"),
        ("đỗ đức", "Đỗ Đức"),
        ("Nguyễn Văn An", "Nguyễn Văn An"),
    ],
)
def test_names_are_normalised(typed: str, expected: str) -> None:
    assert parse_person_name(typed) == expected


def test_decomposed_accents_are_composed() -> None:
    import unicodedata

    assert parse_person_name(unicodedata.normalize("NFD", "nguyễn văn an")) == "Nguyễn Văn An"


@pytest.mark.parametrize(
    "typed, fragment",
    [
        ("Nguyen Van 4n", "không có số"),
        ("Nguyễn Văn An 😀", "không có số"),
        ("An", "từ 2 đến 7 chữ"),
        ("a b c d e f g h", "từ 2 đến 7 chữ"),
        ("Nguyễn <b>An</b>", "không có số"),
        ("", "nhập họ và tên"),
    ],
)
def test_bad_names(typed: str, fragment: str) -> None:
    with pytest.raises(Invalid) as exc:
        parse_person_name(typed)
    assert fragment in exc.value.text("vi")
    assert "<b>" not in exc.value.text("vi")  # what the person typed comes back escaped


def test_dates() -> None:
    assert parse_date("05/09/2012") == date(2012, 9, 5)
    assert parse_date("5/9/2012") == date(2012, 9, 5)
    assert parse_date("05-09-2012") == date(2012, 9, 5)
    assert parse_date("29/02/2012") == date(2012, 2, 29)


@pytest.mark.parametrize(
    "typed, fragment",
    [
        ("31/02/2012", "không có trên lịch"),
        ("29/02/2013", "không có trên lịch"),
        ("2012-13-01", "chưa đúng dạng"),
        ("2012-01-13", "chưa đúng dạng"),
        ("01/13/2012", "Tháng 13 không tồn tại"),
        ("hôm qua", "chưa đúng dạng"),
        ("05/09/12", "chưa đúng dạng"),
    ],
)
def test_bad_dates(typed: str, fragment: str) -> None:
    with pytest.raises(Invalid) as exc:
        parse_date(typed)
    assert fragment in exc.value.text("vi")


def test_birth_date_plausible_for_the_school_level(th, thcs) -> None:
    assert parse_birth_date("05/09/2012", th) == date(2012, 9, 5)  # 9 years old in 11/2021
    assert parse_birth_date("05/09/2008", thcs) == date(2008, 9, 5)
    with pytest.raises(Invalid, match="tương lai"):
        parse_birth_date("01/01/2022", th)
    with pytest.raises(Invalid) as exc:
        parse_birth_date("05/09/2005", th)  # 16: not primary-school age
    assert "16 tuổi" in exc.value.text("vi") and "TH" in exc.value.text("vi")
    with pytest.raises(Invalid):
        parse_birth_date("05/09/2019", thcs)
    with pytest.raises(Invalid):
        parse_birth_date("05/09/1990", th)


def test_class_names(th, thcs) -> None:
    assert parse_class_name("6a1", thcs) == "6A1"
    assert parse_class_name("3/2", th) == "3/2"
    assert parse_class_name("lớp 5b", th) == "5B"
    assert parse_class_name("9 A", thcs) == "9A"
    with pytest.raises(Invalid, match="Khối 6"):
        parse_class_name("6A1", th)
    with pytest.raises(Invalid, match="Khối 3"):
        parse_class_name("3A", thcs)
    for bad in ("A1", "5", "lớp năm", "6A1B2C", "6 A 1 x"):
        with pytest.raises(Invalid):
            parse_class_name(bad, th)


def test_student_codes() -> None:
    assert parse_student_code("0123456789") == "0123456789"
    assert parse_student_code("0123 4567 8901") == "012345678901"
    with pytest.raises(Invalid, match="chỉ gồm chữ số"):
        parse_student_code("01234A6789")
    with pytest.raises(Invalid, match="có 11 số"):
        parse_student_code("01234567890")
    with pytest.raises(Invalid, match="có 9 số"):
        parse_student_code("012345678")
    with pytest.raises(Invalid):
        parse_student_code("０１２３４５６７８９")  # full-width digits are not ASCII digits


def test_quantities() -> None:
    q = int_parser(minimum=1, maximum=10_000)
    assert q("12") == 12 and q("1.000") == 1000
    for bad, fragment in (("0", "từ 1 trở lên"), ("-3", "từ 1 trở lên"), ("10001", "quá lớn"), ("mười", "số nguyên")):
        with pytest.raises(Invalid) as exc:
            q(bad)
        assert fragment in exc.value.text("vi")


def test_phones() -> None:
    assert parse_phone("0913.860.438") == "+84913860438"
    with pytest.raises(Invalid, match="không hợp lệ"):
        parse_phone("12345")


def test_fold_and_match() -> None:
    labels = ["Hộ nghèo", "Hộ cận nghèo", "Cha hoặc mẹ mất do COVID-19", "Khó khăn khác"]
    assert fold("Hộ Cận Nghèo!") == "ho can ngheo"
    assert fold("Đỗ") == "do"
    assert match_label("can ngheo", labels).index == 1
    assert match_label("ho ngheo", labels).index == 0
    assert match_label("Hộ nghèo", labels).index == 0
    assert match_label("ngheo", labels).ambiguous
    assert match_label("covid", labels).index == 2
    assert match_label("kho khan", labels).index == 3
    assert match_label("2", labels).index == 1
    assert match_label("9", labels).index is None
    assert match_label("xyz", labels).index is None and not match_label("xyz", labels).ambiguous
    assert match_label("", labels).index is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_parsers_never_crash_on_random_text(text: str) -> None:
    for parse in (parse_person_name, parse_date, parse_student_code, parse_phone, int_parser()):
        try:
            parse(text)
        except Invalid as exc:
            assert exc.text("vi")
    match_label(text, ["Hộ nghèo", "Hộ cận nghèo"])


def test_fmt_int_writes_numbers_as_the_reader_does() -> None:
    from core.text import fmt_int

    assert [fmt_int(n) for n in (0, 7, 999, 1000, 10_000, 2_200_000, -1500)] == [
        "0",
        "7",
        "999",
        "1.000",
        "10.000",
        "2.200.000",
        "-1.500",
    ]
    assert fmt_int(10_000, "en") == "10,000"


def test_quantity_errors_group_thousands_vietnamese_style() -> None:
    from conversations.fields import int_parser
    from conversations.forms.base import Invalid

    parse = int_parser(minimum=1, maximum=10_000)
    with pytest.raises(Invalid) as err:
        parse("12000")
    assert "Số 12.000 quá lớn (tối đa 10.000)" in err.value.text("vi") and "," not in err.value.text("vi")
