"""A bad programme file stops start-up with the field named: a wrong deadline must never chase anyone."""

from __future__ import annotations

import re

import pytest

from bot.settings import DEFAULT_PROGRAMME
from core.programme import ProgrammeError, load_programme

DEFAULT = DEFAULT_PROGRAMME.read_text(encoding="utf-8")


def write(tmp_path, text: str):
    path = tmp_path / "programme.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_programme_loads():
    p = load_programme(DEFAULT_PROGRAMME)
    assert p.reminders.needs_report_days_before == [3, 1, 0] and p.contacts[0].email == "leminhtien@tptdm.edu.vn"


def test_impossible_date_is_refused_naming_the_field(tmp_path):
    path = write(tmp_path, DEFAULT.replace('needs_report = "20/11/2021"', 'needs_report = "31/11/2021"'))
    with pytest.raises(ProgrammeError) as err:
        load_programme(path)
    assert "deadlines.needs_report" in str(err.value) and "31/11/2021" in str(err.value)


@pytest.mark.parametrize(
    "field, line",
    [
        ("deadlines.handover_update_days", "handover_update_days = -1"),
        ("deadlines.devices_waiting_days", "devices_waiting_days = -7"),
        ("reminders.needs_report_days_before", "needs_report_days_before = [3, -1, 0]"),
    ],
)
def test_negative_delay_is_refused_naming_the_field(tmp_path, field, line):
    key = line.split(" = ")[0]
    text = re.sub(rf"^{key} = .*$", line, DEFAULT, count=1, flags=re.M)
    assert line in text
    with pytest.raises(ProgrammeError) as err:
        load_programme(write(tmp_path, text))
    assert field in str(err.value)


def test_missing_contact_is_refused(tmp_path):
    without = DEFAULT[: DEFAULT.index("[[contacts]]")]
    with pytest.raises(ProgrammeError) as err:
        load_programme(write(tmp_path, without))
    assert "contacts" in str(err.value)


def test_contact_without_email_is_refused(tmp_path):
    text = DEFAULT.replace('email = "leminhtien@tptdm.edu.vn"', "")
    with pytest.raises(ProgrammeError) as err:
        load_programme(write(tmp_path, text))
    assert "contacts.0.email" in str(err.value)


def test_programme_start_is_read_and_defaults_sensibly(programme) -> None:
    from datetime import date

    from core.programme import Programme

    assert programme.start_date == date(2021, 9, 1)  # [programme] start in bot/programme.toml
    data = programme.model_dump()
    data["programme"]["start"] = None
    assert Programme.model_validate(data).start_date == date(2020, 11, 1)
    data["programme"]["start"] = "15/10/2021"
    assert Programme.model_validate(data).start_date == date(2021, 10, 15)
