"""Refusals from the record rules: typed, with the sentence a person reads (Vietnamese, English on request).

Every record function raises ``RecordError`` (``NotAllowed`` for role checks, ``Conflict`` when a colleague
changed the same thing first); the forms show ``message(lang)``.
"""

from __future__ import annotations

from core.i18n import T


class ComputersError(Exception):
    """A request the rules refuse. ``message(lang)`` is shown to the person as is."""

    def __init__(self, code: str, text: T, **values: object) -> None:
        self.code = code
        self.text = text
        self.values = values
        super().__init__(f"{code}: {text('en', **values)}")

    def message(self, lang: str = "vi") -> str:
        return self.text(lang, **self.values)

    @property
    def message_vi(self) -> str:
        return self.message("vi")


class NotAllowed(ComputersError):
    """The person's role or school does not allow this."""


class Conflict(ComputersError):
    """Someone else wrote the same computer or photo at the same moment. Unlike the other refusals this one
    comes from the database after writing, so the caller's transaction is spoiled and must be rolled back;
    the person can simply try again (the checks then refuse with a precise reason)."""


# --- texts of the refusals (kept beside the rules that raise them) ----------------------------------------

NOT_PRINCIPAL = T(
    vi="Chỉ hiệu trưởng của trường mới được {what}.",
    en="Only the school's principal may {what_en}.",
)
NOT_STAFF_OF_SCHOOL = T(
    vi="Bạn chỉ được ghi nhận bàn giao cho học sinh và lô máy của trường mình.",
    en="You may only record handovers for your own school's students and batches.",
)
INACTIVE = T(vi="Tài khoản của bạn đã ngừng hoạt động.", en="Your account is no longer active.")
QUANTITY = T(
    vi="Số lượng phải là số nguyên từ 1 đến {max} (bạn nhập {value}).",
    en="The quantity must be a whole number from 1 to {max} (you entered {value}).",
)
FUTURE = T(
    vi="Ngày {day} ở trong tương lai. Hôm nay là {today}.",
    en="{day} is in the future. Today is {today}.",
)
EMPTY = T(vi="Vui lòng nhập {what}.", en="Please enter {what_en}.")
SERIAL_BAD = T(
    vi="Số sê-ri “{serial}” không hợp lệ: chỉ gồm chữ, số và các dấu - _ / . (tối đa 64 ký tự).",
    en="Serial “{serial}” is not valid: letters, digits and - _ / . only (at most 64 characters).",
)
SERIAL_REPEATED = T(
    vi="Số sê-ri {serial} bị nhập trùng trong danh sách.",
    en="Serial {serial} appears twice in the list.",
)
SERIAL_TAKEN = T(
    vi="Số sê-ri {serial} đã có trong hệ thống (lô nhận ngày {day} của {school}).",
    en="Serial {serial} is already recorded (batch received {day} by {school}).",
)
SERIAL_COUNT = T(
    vi="Có {count} số sê-ri nhưng số lượng máy là {quantity}: cần nhập đủ một số sê-ri cho mỗi máy, "
    "hoặc bỏ qua bước này nếu không có số sê-ri.",
    en="{count} serials for {quantity} computers: give one serial per computer, or skip serials.",
)
PHONE = T(vi="Số điện thoại liên hệ không hợp lệ: {reason}.", en="The contact phone is not valid: {reason}.")
STUDENT_MISSING = T(vi="Không tìm thấy học sinh này.", en="This student was not found.")
STUDENT_NOT_APPROVED = T(
    vi="Học sinh {name} chưa được hiệu trưởng duyệt nên chưa thể bàn giao máy.",
    en="Student {name} has not been approved by the principal yet.",
)
STUDENT_SERVED = T(
    vi="Học sinh {name} đã được bàn giao máy (bàn giao #{id} ngày {day}).",
    en="Student {name} already received a computer (handover #{id} on {day}).",
)
BATCH_MISSING = T(vi="Không tìm thấy lô máy này.", en="This batch was not found.")
BATCH_OTHER_SCHOOL = T(
    vi="Lô máy này thuộc trường khác, không thể bàn giao cho học sinh {name}.",
    en="This batch belongs to another school and cannot go to {name}.",
)
BATCH_EMPTY = T(
    vi="Lô máy nhận ngày {day} đã bàn giao hết ({quantity}/{quantity} máy).",
    en="The batch received {day} is fully handed over ({quantity}/{quantity}).",
)
SERIAL_NEEDED = T(
    vi="Lô máy này có số sê-ri: vui lòng chọn số sê-ri của máy bàn giao.",
    en="This batch has serial numbers: please choose the serial of the computer handed over.",
)
SERIAL_NOT_IN_BATCH = T(
    vi="Lô máy này không ghi số sê-ri nên không cần nhập số sê-ri.",
    en="This batch has no serial numbers; none is needed.",
)
SERIAL_NOT_FREE = T(
    vi="Số sê-ri {serial} không thuộc lô này hoặc đã được bàn giao. Vui lòng chọn số sê-ri khác.",
    en="Serial {serial} is not in this batch or was already handed over. Please choose another.",
)
BEFORE_RECEIPT = T(
    vi="Ngày bàn giao {day} trước ngày trường nhận lô máy ({received}).",
    en="Handover date {day} is before the batch was received ({received}).",
)
NO_PHOTO = T(
    vi="Cần ít nhất một ảnh chụp buổi bàn giao.",
    en="At least one photo of the handover is needed.",
)
CONFLICT = T(
    vi="Máy hoặc học sinh này vừa được người khác ghi nhận bàn giao. Vui lòng kiểm tra và thử lại.",
    en="Someone else has just recorded this computer or student. Please check and try again.",
)
REUSED = T(
    vi="Ảnh này đã dùng cho bàn giao #{id} ({whom}, ngày {day}).",
    en="This photo was already used for handover #{id} ({whom}, {day}).",
)
NEAR = T(
    vi="Ảnh này gần giống ảnh đã dùng cho bàn giao #{id} ({whom}, ngày {day}).",
    en="This photo closely resembles one used for handover #{id} ({whom}, {day}).",
)
HANDOVER_MISSING = T(
    vi="Không tìm thấy bàn giao này (có thể đã bị rút).",
    en="This handover was not found (it may have been withdrawn).",
)
MINUTES_SAME = T(
    vi="Ảnh này đã được gửi cho bàn giao #{id} rồi. Vui lòng chụp biên bản đã ký của bàn giao này.",
    en="This photo was already sent for handover #{id}. Please photograph this handover's signed minutes.",
)
MINUTES_IS_SCENE = T(
    vi="Đây là ảnh buổi bàn giao #{id}, không phải ảnh biên bản. Vui lòng chụp tờ biên bản đã ký.",
    en="This is the photo of handover #{id} itself, not of the minutes. Please photograph the signed sheet.",
)
