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
    # confirms in /duyet (storage.students.COUNTED_STATUSES).
    WITHDRAWING = "withdrawing"


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
