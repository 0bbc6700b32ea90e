"""The programme's vocabulary: every enumeration, stored as its short string value, with one label table each.

Labels are the words people see (Vietnamese first); a form, a report and a reminder all read them from here,
so a role or a category is never worded two ways.
"""

from __future__ import annotations

from enum import StrEnum

from core.i18n import T


class Role(StrEnum):
    PROVINCE_OFFICER = "province_officer"  # the province's department of education (Sở GD&ĐT)
    DISTRICT_OFFICER = "district_officer"
    PRINCIPAL = "principal"
    TEACHER = "teacher"


class SchoolLevel(StrEnum):
    PRIMARY = "TH"
    LOWER_SECONDARY = "THCS"


class Category(StrEnum):
    POOR = "poor"
    NEAR_POOR = "near_poor"
    COVID_ORPHAN = "covid_orphan"
    OTHER_HARDSHIP = "other_hardship"


class Need(StrEnum):
    DEVICE = "device"
    INTERNET = "internet"
    BOTH = "both"


class Gender(StrEnum):
    MALE = "male"
    FEMALE = "female"


class ReviewStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    # A teacher asked to withdraw an approved entry; it still counts as approved until the principal
    # confirms in /duyet (REPORTED below).
    WITHDRAWING = "withdrawing"


# Registrations still standing (waiting for review or approved): what a teacher or the digest counts as
# "registered".
STANDING = (ReviewStatus.PENDING, ReviewStatus.APPROVED, ReviewStatus.WITHDRAWING)
# What the school's needs report counts: approved, including an approved entry waiting to be withdrawn.
REPORTED = (ReviewStatus.APPROVED, ReviewStatus.WITHDRAWING)


class Source(StrEnum):
    PROGRAMME = "programme"  # allocated by the department through the district office
    OTHER = "other"  # sponsors not coordinated by the ministry


class SponsorKind(StrEnum):
    PROGRAMME = "programme"
    BUSINESS = "business"
    ORGANISATION = "organisation"
    INDIVIDUAL = "individual"


class DeviceType(StrEnum):
    LAPTOP = "laptop"
    DESKTOP = "desktop"
    TABLET = "tablet"


class HandoverStatus(StrEnum):
    ACTIVE = "active"
    WITHDRAWN = "withdrawn"


class PhotoKind(StrEnum):
    SCENE = "scene"  # the handover itself
    MINUTES = "minutes"  # the signed handover minutes (biên bản)


class FlagKind(StrEnum):
    PHOTO_REUSED = "photo_reused"
    PHOTO_NEAR_DUPLICATE = "photo_near_duplicate"
    CAPTURE_TIME = "capture_time"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after retries or no channel: recorded, shown in the digest
    SKIPPED = "skipped"  # superseded (a later stage) or no longer due


NEED_LABELS: dict[str, T] = {
    Need.DEVICE: T(vi="Máy tính", en="Computer"),
    Need.INTERNET: T(vi="Sóng internet", en="Internet access"),
    Need.BOTH: T(vi="Cả hai", en="Both"),
}
# A registration's state as a list or a workbook shows it ("Từ chối", as /duyet's button says).
REVIEW_STATUS_LABELS: dict[str, T] = {
    ReviewStatus.PENDING: T(vi="Chờ duyệt", en="Waiting for review"),
    ReviewStatus.APPROVED: T(vi="Đã duyệt", en="Approved"),
    ReviewStatus.REJECTED: T(vi="Từ chối", en="Rejected"),
    ReviewStatus.WITHDRAWN: T(vi="Đã rút", en="Withdrawn"),
    ReviewStatus.WITHDRAWING: T(vi="Đã duyệt (đang xin rút)", en="Approved (withdrawal requested)"),
}
SOURCE_LABELS: dict[str, T] = {
    Source.PROGRAMME: T(vi="Chương trình", en="Programme"),
    Source.OTHER: T(vi="Nhà tài trợ khác", en="Other sponsor"),
}
DEVICE_TYPE_LABELS: dict[str, T] = {
    DeviceType.LAPTOP: T(vi="Máy tính xách tay (laptop)", en="Laptop"),
    DeviceType.DESKTOP: T(vi="Máy tính để bàn", en="Desktop computer"),
    DeviceType.TABLET: T(vi="Máy tính bảng", en="Tablet"),
}
SPONSOR_KIND_LABELS: dict[str, T] = {
    SponsorKind.PROGRAMME: T(vi="Chương trình (qua Phòng GD&ĐT)", en="Programme (via the district office)"),
    SponsorKind.BUSINESS: T(vi="Doanh nghiệp", en="Business"),
    SponsorKind.ORGANISATION: T(vi="Tổ chức", en="Organisation"),
    SponsorKind.INDIVIDUAL: T(vi="Cá nhân", en="Individual"),
}


# --- flags: stored as a kind and its values, worded when shown ------------------------------------------------

FLAG_TEXTS: dict[str, T] = {
    FlagKind.PHOTO_REUSED: T(
        vi="Ảnh này đã dùng cho bàn giao #{id} ({whom}, ngày {day}).",
        en="This photo was already used for handover #{id} ({whom}, {day}).",
    ),
    FlagKind.PHOTO_NEAR_DUPLICATE: T(
        vi="Ảnh này gần giống ảnh đã dùng cho bàn giao #{id} ({whom}, ngày {day}).",
        en="This photo closely resembles one used for handover #{id} ({whom}, {day}).",
    ),
    "capture_after": T(
        vi="Ảnh được chụp ngày {shot}, sau ngày bàn giao {handed}.",
        en="The photo was taken on {shot}, after the handover date {handed}.",
    ),
    "capture_before": T(
        vi="Ảnh được chụp ngày {shot}, trước ngày bàn giao {handed} tới {gap} ngày (chỉ cho phép tối đa {max} ngày).",
        en="The photo was taken on {shot}, {gap} days before the handover date {handed} (at most {max} allowed).",
    ),
}
_STUDENT = T(vi="học sinh {name}", en="pupil {name}")


def flag_text(kind: str, params: dict, lang: str = "vi") -> str:
    """A flag in words: ``params`` are what the rule found (dates as dd/mm/yyyy text, names as typed).
    Plain text: escape it before putting it in an HTML-lite message."""
    if "text" in params:  # a flag recorded before flags kept their values (migration 0002)
        return str(params["text"])
    if kind == FlagKind.CAPTURE_TIME:
        key = "capture_after" if params.get("after") else "capture_before"
        return FLAG_TEXTS[key](lang, **{k: params.get(k, "") for k in ("shot", "handed", "gap", "max")})
    text = FLAG_TEXTS.get(kind)
    if text is None:
        return kind
    whom = _STUDENT(lang, name=params["student"]) if params.get("student") else params.get("school", "")
    return text(lang, id=params.get("id", "?"), whom=whom, day=params.get("day", ""))


ROLE_LABELS: dict[str, T] = {
    Role.TEACHER: T(vi="giáo viên", en="teacher"),
    Role.PRINCIPAL: T(vi="hiệu trưởng", en="principal"),
    Role.DISTRICT_OFFICER: T(vi="chuyên viên Phòng GD&ĐT", en="district education officer"),
    Role.PROVINCE_OFFICER: T(vi="chuyên viên Sở GD&ĐT", en="provincial education officer"),
}


def role_label(role: str, lang: str = "vi", *, title: bool = False) -> str:
    """``title``: as a heading or a table cell ("Hiệu trưởng"), not inside a sentence ("hiệu trưởng")."""
    label = ROLE_LABELS.get(role)
    text = label(lang) if label is not None else role
    return text[:1].upper() + text[1:] if title else text
