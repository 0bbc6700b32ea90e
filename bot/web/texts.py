"""Every word the web view shows, as ``T(vi, en)`` pairs: page texts, table headers, sort and filter options,
alt texts and the messages of the sign-in and error pages. The templates hold markup and data only; they read
these through ``PageTexts`` in the reader's language (``page_language``): the signed-in person's
``Staff.language``; before sign-in Vietnamese, unless the browser's ``Accept-Language`` prefers English.

In a template: ``{{ tx.SIGN_IN }}`` for a text without placeholders, ``{{ tx.SCHOOLS_N(n=...) }}`` for one
with (counts already formatted by the ``num`` filter), ``{{ tx.STATUS.get(code, code) }}`` for a label table.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from functools import cache
from typing import Any

from core.i18n import LANGUAGES, T
from core.vocabulary import DEVICE_TYPE_LABELS, NEED_LABELS, REVIEW_STATUS_LABELS, SOURCE_LABELS, FlagKind

# --- the frame of every page --------------------------------------------------------------------------------------

SITE_NAME = T(vi="Sóng và máy tính cho em", en="Internet and computers for you")
NAV_OVERVIEW = T(vi="Tổng quan", en="Overview")
NAV_LATE = T(vi="Việc trễ", en="Late items")
SIGN_OUT = T(vi="Đăng xuất", en="Sign out")
DATA_AT = T(vi="Số liệu lúc", en="Data as of")  # followed by the time, in its own <time> element
DATA_AT_TIME = T(vi="Số liệu lúc {at}", en="Data as of {at}")
SCHOOLS_N = T(vi="{n} trường", en="{n} schools")
DISTRICTS_N = T(vi="{n} quận/huyện", en="{n} districts")

# --- the tiles of totals --------------------------------------------------------------------------------------------

TILE_REGISTERED = T(vi="đăng ký", en="registered")
TILE_APPROVED = T(vi="đã duyệt", en="approved")
TILE_RECEIVED = T(vi="máy đã nhận", en="computers received")
TILE_HANDED = T(vi="đã bàn giao", en="handed over")
TILE_LATE = T(vi="trễ CSDL ngành", en="late in the sector database")
TILE_REPORTS = T(vi="đã chốt báo cáo", en="needs reports closed")
TILE_NEEDS_REPORT = T(vi="báo cáo nhu cầu", en="needs report")

# --- actions ------------------------------------------------------------------------------------------------------------

DOWNLOAD = T(vi="Tải tệp Excel", en="Download the Excel file")
DOWNLOAD_PROVINCE = T(vi="Tải tệp Excel toàn tỉnh", en="Download the Excel file for the province")
DOWNLOAD_SCHOOL = T(vi="Tải tệp Excel của trường", en="Download the school's Excel file")
LATE_LIST = T(vi="Danh sách việc trễ", en="List of late items")
BACK_TO_PROVINCE = T(vi="← Toàn tỉnh", en="← Whole province")
BACK_TO_SCHOOLS = T(vi="← Các trường", en="← All schools")
CALL_PRINCIPAL = T(vi="Gọi HT {name}", en="Call principal {name}")  # the caption of a tel: button
CALL_TITLE = T(vi="Gọi hiệu trưởng {name}", en="Call principal {name}")  # the title of a tel: link
NO_PRINCIPAL = T(vi="chưa có hiệu trưởng", en="no principal yet")
# The name of the downloaded workbook: tong-hop-tdm-20-11-2021.xlsx (ASCII: some phones mangle accents).
FILE_STEM = T(vi="tong-hop", en="summary")

# --- sorting and filtering the schools -------------------------------------------------------------------------------

SORT_BY = T(vi="Sắp xếp", en="Sort by")
ORDER = T(vi="Thứ tự", en="Order")
ASCENDING = T(vi="Tăng dần", en="Ascending")
DESCENDING = T(vi="Giảm dần", en="Descending")
FIND_SCHOOL = T(vi="Tìm trường", en="Find a school")
SHOW = T(vi="Hiển thị", en="Show")
FILTER = T(vi="Lọc", en="Filter")
SORT_KEYS = {  # the options of "sort by", in the order offered
    "name": T(vi="Tên trường", en="School name"),
    "late": T(vi="Trễ CSDL", en="Late (database)"),
    "registered": T(vi="Đăng ký", en="Registered"),
    "approved": T(vi="Đã duyệt", en="Approved"),
    "received": T(vi="Nhận máy", en="Received"),
    "handed": T(vi="Bàn giao", en="Handed over"),
    "minutes": T(vi="Thiếu biên bản ký", en="Unsigned minutes"),
    "report": T(vi="Báo cáo", en="Report"),
}
SHOW_OPTIONS = {  # the options of "show", in the order offered
    "all": T(vi="Tất cả", en="All"),
    "late": T(vi="Trễ CSDL ngành", en="Late in the sector database"),
    "no_report": T(vi="Chưa chốt báo cáo", en="Needs report not closed"),
    "flags": T(vi="Ảnh bị gắn cờ", en="Flagged photos"),
    "minutes": T(vi="Thiếu biên bản đã ký", en="Signed minutes missing"),
}

# --- column headers (also the labels of a row shown as a card on a phone) ---------------------------------------------

COL_SCHOOL = T(vi="Trường", en="School")
COL_DISTRICT = T(vi="Quận/huyện", en="District")
COL_REGISTERED = T(vi="Đăng ký", en="Registered")
COL_APPROVED = T(vi="Đã duyệt", en="Approved")
COL_RECEIVED = T(vi="Nhận máy", en="Received")
COL_HANDED = T(vi="Bàn giao", en="Handed over")
COL_LATE = T(vi="Trễ CSDL", en="Late (database)")
COL_LATE_CONFIRMED = T(vi="CSDL muộn (đã cập nhật)", en="Database entered late")
COL_REPORT = T(vi="Báo cáo", en="Report")
COL_MINUTES = T(vi="Biên bản đã ký", en="Signed minutes")
MINUTES_SIGNED = T(vi="Biên bản {code}: đã ký", en="Minutes {code}: signed")
MINUTES_UNSIGNED = T(vi="Biên bản {code}: chưa có bản ký", en="Minutes {code}: no signed copy yet")
COL_CALL = T(vi="Cần gọi", en="Call")
COL_LATE_SCHOOLS = T(vi="Trường trễ", en="Late schools")
COL_REPORTS_CLOSED = T(vi="Đã chốt báo cáo", en="Reports closed")
COL_DAYS = T(vi="Số ngày", en="Days")
COL_ITEM = T(vi="Việc", en="Item")
COL_DETAILS = T(vi="Chi tiết", en="Details")
COL_LATE_SINCE = T(vi="Trễ từ", en="Late since")
COL_RECEIVED_ON = T(vi="Ngày nhận", en="Received on")
COL_SOURCE = T(vi="Nguồn", en="Source")
COL_DEVICE = T(vi="Loại máy", en="Device")
COL_QUANTITY = T(vi="Số lượng", en="Quantity")
COL_GIVEN = T(vi="Đã giao", en="Handed over")
COL_NAME = T(vi="Họ và tên", en="Full name")
COL_CLASS = T(vi="Lớp", en="Class")
COL_CATEGORY = T(vi="Đối tượng", en="Category")
COL_NEED = T(vi="Nhu cầu", en="Need")
COL_STATUS = T(vi="Trạng thái", en="Status")

# --- the district and province pages --------------------------------------------------------------------------------

REPORT_CLOSED = T(vi="Đã chốt", en="Closed")
REPORT_OVERDUE = T(vi="Quá hạn", en="Overdue")
REPORT_OPEN = T(vi="Chưa chốt", en="Not closed")
FLAGGED_TITLE = T(vi="Ảnh bị gắn cờ", en="Flagged photos")
FLAGGED_N = T(vi="{n} ảnh gắn cờ", en="{n} flagged photos")
NO_SCHOOL_MATCHES = T(vi="Không có trường nào phù hợp.", en="No school matches.")
NO_DISTRICTS = T(vi="Chưa có quận/huyện nào.", en="No districts yet.")
CHART_ALT = T(vi="Biểu đồ tiến độ từng trường", en="Progress chart, school by school")

# --- the late items ------------------------------------------------------------------------------------------------------

LATE_TITLE = T(vi="Việc trễ", en="Late items")
LATE_HEADING = T(vi="Việc trễ ({n})", en="Late items ({n})")
OLDEST_FIRST = T(vi="Cũ nhất trước.", en="Oldest first.")
SHOWING_OLDEST = T(vi="Hiện {n} việc cũ nhất.", en="Showing the {n} oldest.")
COMPUTERS_LEFT = T(vi="còn {n} máy", en="{n} computers left")
LATE_SINCE = T(vi="trễ từ {since} ({days} ngày)", en="late since {since} ({days} days)")
NOTHING_LATE = T(vi="Không có việc nào trễ. 🎉", en="Nothing is late. 🎉")
LATE_KINDS = {
    "csdl": T(vi="Chưa cập nhật CSDL ngành", en="Not yet entered in the sector database"),
    "devices": T(vi="Máy chưa bàn giao", en="Computers not handed over"),
    "needs_report": T(vi="Chưa chốt báo cáo nhu cầu", en="Needs report not closed"),
    "review": T(vi="Hồ sơ chờ duyệt", en="Registration waiting for review"),
}

# --- one school ------------------------------------------------------------------------------------------------------------

HANDOVERS_N = T(vi="Bàn giao ({n})", en="Handovers ({n})")
PHOTO_ALT = T(vi="Ảnh bàn giao cho {name}", en="Handover photo for {name}")
CLASS_OF = T(vi="lớp {name}", en="class {name}")
HANDED_ON = T(vi="Bàn giao {day}", en="Handed over {day}")
CSDL_DONE = T(vi="đã cập nhật CSDL {at}", en="entered in the database {at}")
CSDL_LATE = T(vi="trễ CSDL (hạn {at})", en="late for the database (due {at})")
CSDL_DUE = T(vi="hạn CSDL {at}", en="database due {at}")
NO_HANDOVERS = T(vi="Chưa có bàn giao nào.", en="No handovers yet.")
BATCHES_N = T(vi="Lô máy đã nhận ({n})", en="Batches received ({n})")
NO_BATCHES = T(vi="Chưa nhận lô máy nào.", en="No batches received yet.")
PUPILS_N = T(vi="Học sinh ({n})", en="Pupils ({n})")
NO_PUPILS = T(vi="Chưa có học sinh nào đăng ký.", en="No pupils registered yet.")

# --- label tables -----------------------------------------------------------------------------------------------------------

FLAGS = {
    FlagKind.PHOTO_REUSED: T(vi="Ảnh dùng lại", en="Photo used again"),
    FlagKind.PHOTO_NEAR_DUPLICATE: T(vi="Ảnh gần giống ảnh khác", en="Photo close to another one"),
    FlagKind.CAPTURE_TIME: T(vi="Ngày chụp lạ", en="Odd capture date"),
}
# The rest is the chat's and the workbook's own wording (core.vocabulary): one table each.
STATUS = REVIEW_STATUS_LABELS
NEED = NEED_LABELS
SOURCES = SOURCE_LABELS
DEVICES = DEVICE_TYPE_LABELS

# --- sign-in and the Mini App -------------------------------------------------------------------------------------------

SIGN_IN = T(vi="Đăng nhập", en="Sign in")
SIGN_IN_EXPLAINED = T(
    vi="Bấm nút dưới đây để mở trang theo dõi tiến độ. Liên kết chỉ dùng được một lần, trong 10 phút.",
    en="Press the button below to open the progress pages. The link works once, for 10 minutes.",
)
TG_TITLE = T(vi="Đăng nhập qua Telegram", en="Sign in with Telegram")
TG_SIGNING_IN = T(vi="Đang đăng nhập…", en="Signing in…")
TG_HINT = T(
    vi="Trang này mở từ nút menu của bot trên Telegram.", en="This page opens from the bot's menu button in Telegram."
)
TG_NEEDS_JS = T(
    vi="Cần bật JavaScript để đăng nhập qua Telegram.", en="JavaScript must be on to sign in with Telegram."
)

# --- messages (message.html: a sentence and a hint) ----------------------------------------------------------------------

LINK_REFUSED = {
    "unknown": T(vi="Liên kết đăng nhập không đúng.", en="This sign-in link is not valid."),
    "used": T(vi="Liên kết đăng nhập này đã được dùng.", en="This sign-in link has already been used."),
    "expired": T(vi="Liên kết đăng nhập đã hết hạn (10 phút).", en="This sign-in link has expired (10 minutes)."),
    "inactive": T(vi="Tài khoản không còn hoạt động.", en="This account is no longer active."),
}
ASK_AGAIN = T(vi="Gõ /web trong bot để nhận liên kết mới.", en="Type /web in the bot to get a new link.")
NOT_SIGNED_IN = T(vi="Bạn chưa đăng nhập.", en="You are not signed in.")
SIGNED_OUT = T(vi="Bạn đã đăng xuất.", en="You are signed out.")
NOT_FOUND = T(vi="Không tìm thấy trang này.", en="Page not found.")
TOO_MANY = T(
    vi="Bạn thử đăng nhập quá nhiều lần. Vui lòng đợi một phút rồi thử lại.",
    en="Too many sign-in attempts. Please wait a minute and try again.",
)
BAD_FORM = T(
    vi="Biểu mẫu đã cũ hoặc không hợp lệ. Vui lòng tải lại trang và thử lại.",
    en="The form is stale or invalid. Please reload the page and try again.",
)
TG_REFUSED = T(
    vi="Không xác thực được tài khoản Telegram. Hãy mở lại từ nút menu của bot.",
    en="Your Telegram account could not be verified. Open the page again from the bot's menu button.",
)
TG_UNLINKED = T(
    vi="Tài khoản Telegram này chưa liên kết với danh sách nhân sự. Mở bot và chia sẻ số điện thoại trước.",
    en="This Telegram account is not linked to the roster. Open the bot and share your phone number first.",
)


# --- choosing the language and handing the texts to a template ---------------------------------------------------------


def page_language(staff_language: str | None, accept_language: str | None) -> str:
    """The language of a page: the signed-in person's (``vi`` unless it is ``en``); before sign-in, English
    only when the browser prefers English to Vietnamese (``Accept-Language``, q-values honoured), else
    Vietnamese, the programme's language."""
    if staff_language is not None:
        return "en" if staff_language.lower().startswith("en") else "vi"
    best, best_q = "vi", 0.0
    for part in (accept_language or "")[:500].split(","):
        tag, _, params = part.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        if primary not in LANGUAGES:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best_q:  # the first of equals wins: the browser lists what it prefers first
            best, best_q = primary, q
    return best


def _placeholders(text: T) -> bool:
    return any(field for _, field, _, _ in string.Formatter().parse(text.vi))


def _bind(text: T, lang: str) -> str | Callable[..., str]:
    if _placeholders(text):
        return lambda **values: text(lang, **values)
    return text(lang)


@cache
def page_texts(lang: str) -> dict[str, Any]:
    """Every text of this module in ``lang``, by name: a string, a function of the placeholders, or a
    label table (code -> string). Jinja reads ``tx.NAME`` from the dict."""
    out: dict[str, Any] = {}
    for name, value in globals().items():
        if not name.isupper():
            continue
        if isinstance(value, T):
            out[name] = _bind(value, lang)
        elif isinstance(value, dict) and value and all(isinstance(v, T) for v in value.values()):
            out[name] = {str(k): v(lang) for k, v in value.items()}
    return out
