"""How the record rules' refusals read: ``storage.errors.RecordError`` carries a code and its values, and
this table words them for the person (Vietnamese first). A new rule in storage gets its sentence here."""

from __future__ import annotations

from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.text import fmt_int
from storage.errors import RecordError

ACCEPTED = "JPEG, PNG, WebP hoặc HEIC"
ACCEPTED_EN = "JPEG, PNG, WebP or HEIC"
BROKEN_PHOTO = T(
    vi="Ảnh bị hỏng hoặc chưa được gửi hết nên không mở được. Vui lòng chụp hoặc gửi lại ảnh.",
    en="The photo is damaged or incomplete and cannot be opened. Please take or send it again.",
)

REFUSALS: dict[str, T] = {
    # Photos (storage.imaging.PhotoRejected, storage.photos.PhotoStoreError).
    "not_image": T(
        vi=f"Tệp này không phải là ảnh. Vui lòng gửi ảnh {ACCEPTED}.",
        en=f"This file is not a photo. Please send a {ACCEPTED_EN} image.",
    ),
    "corrupt": BROKEN_PHOTO,
    "truncated": BROKEN_PHOTO,  # cut off on the way: the person reads the same
    "bomb": T(
        vi="Ảnh có kích thước quá lớn ({w} x {h} điểm ảnh). Vui lòng gửi ảnh chụp bình thường từ điện thoại.",
        en="The image dimensions are too large ({w} x {h} pixels). Please send a normal photo from a phone.",
    ),
    "bomb_unmeasured": T(
        vi="Ảnh có kích thước quá lớn. Vui lòng gửi ảnh chụp bình thường từ điện thoại.",
        en="The image dimensions are too large. Please send a normal photo from a phone.",
    ),
    "too_large": T(
        vi="Ảnh quá lớn ({mb} MB). Vui lòng gửi ảnh nhỏ hơn {limit} MB.",
        en="The photo is too large ({mb} MB). Please send a photo under {limit} MB.",
    ),
    "unsupported_format": T(
        vi=f"Chưa hỗ trợ ảnh định dạng {{fmt}}. Vui lòng gửi ảnh {ACCEPTED}.",
        en=f"{{fmt}} images are not supported. Please send a {ACCEPTED_EN} image.",
    ),
    "too_small": T(
        vi="Ảnh quá nhỏ ({w} x {h} điểm ảnh) để làm minh chứng. Vui lòng gửi ảnh chụp rõ, cạnh ngắn ít nhất "
        "{min_side} điểm ảnh.",
        en="The photo is too small ({w} x {h} pixels) to serve as evidence. Please send a clear photo, at least "
        "{min_side} pixels on the short side.",
    ),
    "photo_storage": T(
        vi="Không lưu được ảnh do lỗi lưu trữ máy chủ. Vui lòng thử lại sau.",
        en="The photo could not be saved because of a server storage error. Please try again later.",
    ),
    # Pupils' data (storage.erasure, storage.consent).
    "erase_missing": T(
        vi="Không tìm thấy hồ sơ này (có thể đã được xóa).", en="This record was not found (it may have been erased)."
    ),
    "consent_missing": T(vi="Không tìm thấy hồ sơ này.", en="This record was not found."),
    "consent_not_yours": T(
        vi="Bạn chỉ ghi nhận được cho hồ sơ do chính bạn đăng ký.",
        en="You can only record it for entries you registered yourself.",
    ),
    "future_date": T(
        vi="Ngày {day} ở trong tương lai. Hôm nay là {today}.",
        en="{day} is in the future. Today is {today}.",
    ),
    "before_start": T(
        vi="Ngày nhận {day} trước khi chương trình bắt đầu ({start}).",
        en="Received on {day}, before the programme started ({start}).",
    ),
    "inactive": T(vi="Tài khoản của bạn đã ngừng hoạt động.", en="Your account is no longer active."),
    "not_principal": T(
        vi="Chỉ hiệu trưởng của trường mới được {action}.",
        en="Only the school's principal may {action}.",
    ),
    "other_school": T(
        vi="Bạn chỉ được ghi nhận bàn giao cho học sinh và lô máy của trường mình.",
        en="You may only record handovers for your own school's students and batches.",
    ),
    "student_missing": T(vi="Không tìm thấy học sinh này.", en="This student was not found."),
    "not_approved": T(
        vi="Học sinh {name} chưa được hiệu trưởng duyệt nên chưa thể bàn giao máy.",
        en="Student {name} has not been approved by the principal yet.",
    ),
    "served": T(
        vi="Học sinh {name} đã được bàn giao máy (bàn giao #{id} ngày {day}).",
        en="Student {name} already received a computer (handover #{id} on {day}).",
    ),
    "batch_missing": T(vi="Không tìm thấy lô máy này.", en="This batch was not found."),
    "batch_other_school": T(
        vi="Lô máy này thuộc trường khác, không thể bàn giao cho học sinh {name}.",
        en="This batch belongs to another school and cannot go to {name}.",
    ),
    "batch_empty": T(
        vi="Lô máy nhận ngày {day} đã bàn giao hết ({quantity}/{quantity} máy).",
        en="The batch received {day} is fully handed over ({quantity}/{quantity}).",
    ),
    "serial_needed": T(
        vi="Lô máy này có số sê-ri: vui lòng chọn số sê-ri của máy bàn giao.",
        en="This batch has serial numbers: please choose the serial of the computer handed over.",
    ),
    "serial_not_free": T(
        vi="Số sê-ri {serial} không thuộc lô này hoặc đã được bàn giao. Vui lòng chọn số sê-ri khác.",
        en="Serial {serial} is not in this batch or was already handed over. Please choose another.",
    ),
    "serial_not_in_batch": T(
        vi="Lô máy này không ghi số sê-ri nên không cần nhập số sê-ri.",
        en="This batch has no serial numbers; none is needed.",
    ),
    "before_receipt": T(
        vi="Ngày bàn giao {day} trước ngày trường nhận lô máy ({received}).",
        en="Handover date {day} is before the batch was received ({received}).",
    ),
    "no_photo": T(
        vi="Cần ít nhất một ảnh chụp buổi bàn giao.",
        en="At least one photo of the handover is needed.",
    ),
    "conflict": T(
        vi="Máy hoặc học sinh này vừa được người khác ghi nhận bàn giao. Vui lòng kiểm tra và thử lại.",
        en="Someone else has just recorded this computer or student. Please check and try again.",
    ),
    "serial_invalid": T(
        vi="Số sê-ri “{serial}” không hợp lệ: chỉ gồm chữ, số và các dấu - _ / . (tối đa 64 ký tự).",
        en="Serial “{serial}” is not valid: letters, digits and - _ / . only (at most 64 characters).",
    ),
    "serial_repeated": T(
        vi="Số sê-ri {serial} bị nhập trùng trong danh sách.",
        en="Serial {serial} appears twice in the list.",
    ),
    "serial_count": T(
        vi="Có {count} số sê-ri nhưng số lượng máy là {quantity}: cần nhập đủ một số sê-ri cho mỗi máy, "
        "hoặc bỏ qua bước này nếu không có số sê-ri.",
        en="{count} serials for {quantity} computers: give one serial per computer, or skip serials.",
    ),
    "quantity": T(
        vi="Số lượng phải là số nguyên từ 1 đến {max} (bạn nhập {value}).",
        en="The quantity must be a whole number from 1 to {max} (you entered {value}).",
    ),
    "empty": T(vi="Vui lòng nhập {field}.", en="Please enter {field}."),
    "phone": T(vi="Số điện thoại liên hệ không hợp lệ: {reason}.", en="The contact phone is not valid: {reason}."),
    "serial_taken": T(
        vi="Số sê-ri {serial} đã có trong hệ thống (lô nhận ngày {day} của {school}).",
        en="Serial {serial} is already recorded (batch received {day} by {school}).",
    ),
    # signed minutes (storage/handovers.record_signed_minutes)
    "handover_missing": T(
        vi="Không tìm thấy bàn giao này (có thể đã bị rút).",
        en="This handover was not found (it may have been withdrawn).",
    ),
    "minutes_same_photo": T(
        vi="Ảnh này đã được gửi cho bàn giao #{id} rồi. Vui lòng chụp biên bản đã ký của bàn giao này.",
        en="This photo was already sent for handover #{id}. Please photograph this handover's signed minutes.",
    ),
    "minutes_is_scene": T(
        vi="Đây là ảnh buổi bàn giao #{id}, không phải ảnh biên bản. Vui lòng chụp tờ biên bản đã ký.",
        en="This is the photo of handover #{id} itself, not of the minutes. Please photograph the signed sheet.",
    ),
    # pupils' records (storage/students.py)
    "other_school_record": T(
        vi="Bạn không có quyền với hồ sơ của trường khác.", en="You have no access to another school's records."
    ),
    "record_missing": T(vi="Không tìm thấy hồ sơ này.", en="This record was not found."),
    "register_role": T(
        vi="Chỉ giáo viên và hiệu trưởng mới đăng ký học sinh.", en="Only teachers and principals register pupils."
    ),
    "review_role": T(vi="Chỉ hiệu trưởng mới duyệt đăng ký.", en="Only the principal reviews registrations."),
    "already_reviewed": T(vi="Hồ sơ này đã được xử lý trước đó.", en="This record was already dealt with."),
    "reason_needed": T(vi="Cần ghi lý do từ chối.", en="A reason for the rejection is needed."),
    "withdraw_own": T(
        vi="Bạn chỉ rút được hồ sơ do chính bạn đăng ký.", en="You can only withdraw records you registered."
    ),
    "withdraw_served": T(
        vi="Em này đã được bàn giao máy; không rút hồ sơ được nữa.",
        en="This pupil already received a computer; the record can no longer be withdrawn.",
    ),
    "withdraw_state": T(
        vi="Hồ sơ này không rút được (đã bị từ chối, đã rút hoặc đang chờ rút).",
        en="This record cannot be withdrawn (rejected, withdrawn or already waiting for withdrawal).",
    ),
    "no_withdrawal": T(vi="Hồ sơ này không có yêu cầu rút.", en="This record has no withdrawal request."),
    "field_not_editable": T(vi="Không sửa được mục {field}.", en="{field} cannot be changed."),
    "edit_not_allowed": T(vi="Bạn không có quyền sửa hồ sơ này.", en="You may not change this record."),
    "submit_role": T(vi="Chỉ hiệu trưởng mới chốt báo cáo nhu cầu.", en="Only the principal locks the needs report."),
    "already_submitted": T(
        vi="Báo cáo nhu cầu của trường đã được chốt trước đó.", en="The school's needs report was already locked."
    ),
    "duplicate_code": T(
        vi="Mã định danh {student_code} đã được đăng ký tại {school} ngày {day}.",
        en="Student code {student_code} was already registered at {school} on {day}.",
    ),
    "same_name_and_birth": T(
        vi="Trường đã có em {name}, sinh ngày {birth} (mã {student_code}).",
        en="The school already has {name}, born {birth} (code {student_code}).",
    ),
    # class lists (storage/students.py import_students)
    "school_missing": T(vi="Không tìm thấy trường này.", en="This school was not found."),
    "import_own_school": T(
        vi="Bạn chỉ nhập được danh sách học sinh của trường mình.",
        en="You can only import pupils into your own school.",
    ),
    "import_own_district": T(
        vi="Trường này không thuộc quận/huyện của bạn.", en="This school is not in your district."
    ),
    "import_role": T(vi="Bạn không có quyền nhập danh sách học sinh.", en="You may not import class lists."),
    "import_empty": T(vi="Danh sách không có học sinh nào.", en="The list has no pupils."),
    "import_missing": T(vi="Không tìm thấy danh sách này.", en="This list was not found."),
}
ACTIONS: dict[str, T] = {  # RecordError("not_principal", action=...)
    "record_sponsor": T(vi="ghi nhận nhà tài trợ", en="record sponsors"),
    "record_batch": T(vi="ghi nhận máy tính trường nhận", en="record computers received"),
    "confirm_csdl": T(vi="xác nhận đã cập nhật CSDL ngành", en="confirm the sector-database update"),
}
FIELDS: dict[str, T] = {  # RecordError("empty", field=...)
    "sponsor_name": T(vi="tên nhà tài trợ", en="the sponsor's name"),
    "brand_model": T(vi="hãng và model máy", en="the brand and model"),
    "condition": T(vi="tình trạng máy", en="the condition"),
}
UNKNOWN = T(vi="Không thực hiện được yêu cầu này ({code}).", en="This request cannot be carried out ({code}).")


def refusal(exc: RecordError, lang: str = "vi") -> str:
    """The sentence for ``exc`` in ``lang``; values the person typed are escaped (HTML-lite)."""
    values: dict[str, object] = {}
    for key, value in exc.params.items():
        if key == "action":
            value = ACTIONS[value](lang) if value in ACTIONS else value
        elif key == "field":
            value = FIELDS[value](lang) if value in FIELDS else value
        elif hasattr(value, "strftime"):
            value = fmt_date(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            value = fmt_int(value, lang)  # 10.000 in Vietnamese
        values[key] = esc(value)
    text = REFUSALS.get(exc.code)
    return text(lang, **values) if text is not None else UNKNOWN(lang, code=esc(exc.code))
