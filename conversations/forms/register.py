"""/dangky — register a student in need (teacher or principal), and the correction form used by /cuatoi.

The fields are shared by both forms, so a correction is validated exactly like a registration.
"""

from __future__ import annotations

from typing import Any

from conversations.fields import (
    NAME_EXAMPLE,
    birth_date_example,
    choice_field,
    class_example,
    confirm_field,
    date_field,
    parse_birth_date,
    parse_class_name,
    parse_person_name,
    parse_student_code,
    phone_field,
    text_field,
)
from conversations.forms.base import Choice, Done, Field, Form, FormContext, Invalid
from conversations.refusals import refusal
from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.vocabulary import Gender, Need, Role
from storage import students
from storage.models import Student

# --- choices -------------------------------------------------------------------------------------------------

GENDERS = [Choice(Gender.MALE.value, T(vi="Nam", en="Male")), Choice(Gender.FEMALE.value, T(vi="Nữ", en="Female"))]
NEEDS = [
    Choice(Need.DEVICE.value, T(vi="Máy tính", en="A computer")),
    Choice(Need.INTERNET.value, T(vi="Sóng internet", en="Internet access")),
    Choice(Need.BOTH.value, T(vi="Cả hai", en="Both")),
]


def category_choices(ctx: FormContext) -> list[Choice]:
    """The programme file's categories (labels as the district's letter words them)."""
    return [Choice(c.code, T(vi=c.label_vi, en=c.label_en)) for c in ctx.programme.categories]


def _reason_required(ctx: FormContext) -> bool:
    cat = ctx.programme.category(str(ctx.values.get("category") or ""))
    return bool(cat and cat.reason_required)


# --- validators that need the database ---------------------------------------------------------------------------


def _parse_code(text: str, ctx: FormContext) -> str:
    code = parse_student_code(text, ctx)
    owner = students.code_owner(ctx.session, code=code, exclude_id=ctx.values.get("student_id"))
    if owner is not None:
        school_name, registered_at = owner
        raise Invalid(
            T(
                vi="Mã định danh {code} đã được đăng ký tại {school} ngày {day}. Mỗi em chỉ đăng ký "
                "một lần; vui lòng kiểm tra lại mã.",
                en="Student code {code} was already registered at {school} on {day}.",
            ),
            code=code,
            school=esc(school_name),
            day=fmt_date(registered_at.astimezone(ctx.programme.tz).date()),
        )
    return code


def _same_name_and_birth(ctx: FormContext) -> Student | None:
    sid = ctx.values.get("_same_as")
    return ctx.session.get(Student, int(sid)) if sid else None


def _check_same(ctx: FormContext, _value: object) -> None:
    """After the name or the birth date: look for the same pupil in the school once, and remember the answer
    (the confirmation question's condition reads it, so no query runs on later steps)."""
    name, birth = ctx.values.get("full_name"), ctx.values.get("birth_date")
    same = None
    if name and birth and ctx.staff.school_id is not None:
        same = students.find_same_name_and_birth(
            ctx.session,
            school_id=ctx.staff.school_id,
            full_name=name,
            birth_date=birth,
            exclude_id=ctx.values.get("student_id"),
        )
    ctx.values["_same_as"] = same.id if same is not None else None
    return None


def _dup_prompt(ctx: FormContext) -> str:
    same = _same_name_and_birth(ctx)
    if same is None:
        return ctx.t(T(vi="Tiếp tục đăng ký?", en="Continue?"))
    return ctx.t(
        T(
            vi="⚠️ Trường đã có em <b>{name}</b>, sinh ngày {dob}, lớp {cls}, mã {code}. Đây có phải một "
            "em khác (trùng họ tên và ngày sinh) không?",
            en="⚠️ The school already has <b>{name}</b>, born {dob}, class {cls}, code {code}. Is this a "
            "different pupil with the same name and birth date?",
        ),
        name=esc(same.full_name),
        dob=fmt_date(same.birth_date),
        cls=esc(same.class_name),
        code=same.code,
    )


def _dup_answer(ctx: FormContext, value: bool) -> Done | None:
    if value:
        return None
    return Done(
        T(
            vi="Đã dừng đăng ký: em này đã có trong danh sách của trường. Không có gì được lưu thêm.",
            en="Registration stopped: this pupil is already on the school's list. Nothing new was saved.",
        )
    )


# --- the guardian's consent (Decree 13/2023: children's data needs a parent's or guardian's consent) -----------------

CONSENT_ASK = T(
    vi="🔒 <b>Đồng ý của cha mẹ/người giám hộ</b>\nTrước khi nhập, vui lòng đọc (hoặc gửi) cho phụ huynh thông báo "
    "sau:\n\n<i>{notice}</i>\n\nPhụ huynh của em đã đồng ý chưa?",
    en="🔒 <b>The parent's or guardian's consent</b>\nBefore entering anything, please read (or send) this notice to "
    "the parent:\n\n<i>{notice}</i>\n\nHas the pupil's parent agreed?",
)
CONSENT_REFUSED = T(
    vi="Đã dừng đăng ký: chưa có sự đồng ý của phụ huynh, nên không có gì được lưu. Khi phụ huynh đồng ý, "
    "gõ /dangky để đăng ký lại.",
    en="Registration stopped: without the parent's consent nothing was saved. Type /dangky once they agree.",
)


def consent_prompt(ctx: FormContext) -> str:
    from storage.consent import notice

    return ctx.t(CONSENT_ASK, notice=esc(notice(ctx.programme, ctx.lang)))


def _consent_answer(ctx: FormContext, value: bool) -> Done | None:
    return None if value else Done(CONSENT_REFUSED)


def consent_field(name: str = "consent", prompt=consent_prompt) -> Field:
    """The yes/no consent step with the programme file's notice; "No" ends the form and saves nothing. Other
    ways of registering (the bulk import) put it in their own form and pass ``consent_at=ctx.now`` to
    ``students.register_student``."""
    return confirm_field(
        name,
        prompt,
        T(vi="Phụ huynh đồng ý", en="Parent's consent"),
        after=_consent_answer,
        yes=T(vi="✅ Phụ huynh đã đồng ý", en="✅ The parent agreed"),
        no=T(vi="Chưa / không đồng ý", en="Not (yet)"),
    )


F_CONSENT = consent_field()

# --- fields --------------------------------------------------------------------------------------------------------

F_NAME = text_field(
    "full_name",
    T(vi="Họ và tên học sinh? (ví dụ: {example})", en="Pupil's full name? (e.g. {example})"),
    T(vi="Họ tên", en="Name"),
    parse=parse_person_name,
    example=NAME_EXAMPLE,
    after=_check_same,
)
F_BIRTH = date_field(
    "birth_date",
    T(vi="Ngày sinh của em? (ngày/tháng/năm, ví dụ {example})", en="Date of birth? (day/month/year, e.g. {example})"),
    T(vi="Ngày sinh", en="Date of birth"),
    parse=parse_birth_date,
    example=birth_date_example,
    after=_check_same,
)
F_DUP = confirm_field(
    "dup_ok",
    _dup_prompt,
    T(vi="Xác nhận trùng tên", en="Same-name confirmation"),
    when=lambda ctx: ctx.values.get("_same_as") is not None,
    after=_dup_answer,
    yes=T(vi="Đúng, là em khác", en="Yes, a different pupil"),
    no=T(vi="Không, dừng lại", en="No, stop"),
)
F_CLASS = text_field(
    "class_name",
    T(vi="Lớp? (ví dụ: {example})", en="Class? (e.g. {example})"),
    T(vi="Lớp", en="Class"),
    parse=parse_class_name,
    example=class_example,
)
F_CODE = text_field(
    "code",
    T(vi="Mã định danh của học sinh (10 hoặc 12 chữ số)?", en="The pupil's student code (10 or 12 digits)?"),
    T(vi="Mã định danh", en="Student code"),
    parse=_parse_code,
)
F_GENDER = choice_field("gender", T(vi="Giới tính?", en="Gender?"), T(vi="Giới tính", en="Gender"), GENDERS, columns=2)
F_CATEGORY = choice_field(
    "category", T(vi="Em thuộc đối tượng nào?", en="Which group?"), T(vi="Đối tượng", en="Group"), category_choices
)
F_REASON = text_field(
    "hardship_reason",
    T(
        vi="Hoàn cảnh khó khăn cụ thể của em? (bắt buộc với «Khó khăn khác»)",
        en="What is the hardship? (required for “Other hardship”)",
    ),
    T(vi="Lý do khó khăn", en="Hardship"),
    when=_reason_required,
    max_len=500,
)
F_NEED = choice_field(
    "need", T(vi="Em cần hỗ trợ gì?", en="What does the pupil need?"), T(vi="Nhu cầu", en="Need"), NEEDS
)
F_GUARDIAN = text_field(
    "guardian_name",
    T(vi="Họ tên cha/mẹ hoặc người giám hộ? (không bắt buộc)", en="Parent or guardian's name? (optional)"),
    T(vi="Người giám hộ", en="Guardian"),
    parse=parse_person_name,
    required=False,
)
F_GUARDIAN_PHONE = phone_field(
    "guardian_phone",
    T(vi="Số điện thoại người giám hộ? (không bắt buộc)", en="Guardian's phone? (optional)"),
    T(vi="SĐT giám hộ", en="Guardian's phone"),
    required=False,
)
F_NOTE = text_field(
    "note",
    T(vi="Ghi chú thêm? (không bắt buộc)", en="Any note? (optional)"),
    T(vi="Ghi chú", en="Note"),
    required=False,
    max_len=1000,
)

STUDENT_FIELDS: list[Field] = [
    F_NAME,
    F_BIRTH,
    F_CLASS,
    F_CODE,
    F_GENDER,
    F_CATEGORY,
    F_REASON,
    F_NEED,
    F_GUARDIAN,
    F_GUARDIAN_PHONE,
    F_NOTE,
]
REGISTER_FIELDS: list[Field] = [F_CONSENT, F_NAME, F_BIRTH, F_DUP, *STUDENT_FIELDS[2:]]
_REQUIRED = frozenset(f.name for f in STUDENT_FIELDS if f.required)


def _record(values: dict[str, Any]) -> dict[str, Any]:
    return {name: values.get(name) for name in students.EDITABLE_FIELDS}


# --- registration ------------------------------------------------------------------------------------------------

SAVED = T(
    vi="✅ Đã lưu đăng ký của em <b>{name}</b> (mã {code}). Hiệu trưởng sẽ duyệt; bạn sẽ nhận thông báo.",
    en="✅ Saved the registration of <b>{name}</b> (code {code}). The principal will review it; you will be notified.",
)
SAVED_BY_PRINCIPAL = T(
    vi="✅ Đã lưu đăng ký của em <b>{name}</b> (mã {code}), đang chờ duyệt. Gõ /duyet để duyệt.",
    en="✅ Saved the registration of <b>{name}</b> (code {code}); it waits for review. Type /duyet to review it.",
)
SAVED_LATE = T(
    vi="Lưu ý: trường đã chốt báo cáo nhu cầu, nên đăng ký này được ghi là <b>bổ sung sau hạn</b>.",
    en="Note: the school has already submitted its needs report, so this is recorded as <b>late</b>.",
)
NEW_PENDING = T(
    vi="🆕 Đăng ký mới chờ duyệt: em <b>{name}</b>, lớp {cls}, do {teacher} đăng ký. Gõ /duyet để xem.",
    en="🆕 New registration to review: <b>{name}</b>, class {cls}, by {teacher}. Type /duyet.",
)


def _save(ctx: FormContext) -> Done:
    v = ctx.values
    try:
        student = students.register_student(
            ctx.session,
            actor=ctx.staff,
            now=ctx.now,
            confirm_same_name=bool(v.get("dup_ok")),
            consent_at=ctx.now if v.get("consent") else None,
            **_record(v),
        )
    except students.DuplicateCode as exc:
        raise Invalid(refusal(exc, ctx.lang), field="code") from None
    except students.SameNameAndBirth as exc:
        v.pop("dup_ok", None)
        v["_same_as"] = exc.existing.id
        raise Invalid(
            T(
                vi="Trường vừa có một đăng ký trùng họ tên và ngày sinh; vui lòng xác nhận.",
                en="A registration with the same name and birth date exists; please confirm.",
            ),
            field="dup_ok",
        ) from None
    except students.StudentError as exc:
        return Done(refusal(exc, ctx.lang))
    if ctx.staff.role == Role.TEACHER:
        for principal in students.principals_of(ctx.session, school_id=student.school_id):
            ctx.notify(
                principal.id,
                NEW_PENDING,
                name=esc(student.full_name),
                cls=esc(student.class_name),
                teacher=esc(ctx.staff.full_name),
            )
    saved = SAVED if ctx.staff.role == Role.TEACHER else SAVED_BY_PRINCIPAL
    text = saved(ctx.lang, name=esc(student.full_name), code=student.code)
    if student.late:
        text += "\n" + SAVED_LATE(ctx.lang)
    return Done(text)


REGISTER = Form(
    name="dangky",
    command="dangky",
    title=T(vi="Đăng ký học sinh cần hỗ trợ", en="Register a pupil in need"),
    description=T(vi="Đăng ký học sinh cần máy tính/sóng", en="Register a pupil in need"),
    roles=frozenset({Role.TEACHER, Role.PRINCIPAL}),
    fields=REGISTER_FIELDS,
    on_complete=_save,
    intro=T(
        vi="📝 <b>Đăng ký học sinh cần hỗ trợ</b>. Trả lời lần lượt từng câu; gõ «quay lại» để sửa câu "
        "trước, /huy để hủy. Chưa bấm «Lưu» thì chưa có gì được lưu.",
        en="📝 <b>Register a pupil in need</b>. Answer each question; type “back” to change the previous "
        "one, /huy to cancel. Nothing is saved until you tap “Save”.",
    ),
)


# --- correction (reached from /cuatoi) ----------------------------------------------------------------------------


def _load_for_edit(ctx: FormContext) -> Done | None:
    try:
        student = students.get_student(ctx.session, actor=ctx.staff, student_id=int(ctx.values["student_id"]))
    except (KeyError, ValueError, students.StudentError):
        return Done(T(vi="Không tìm thấy hồ sơ này.", en="Record not found."))
    if not students.can_edit(ctx.staff, student):
        return Done(T(vi="Bạn không sửa được hồ sơ này.", en="You cannot change this record."))
    for name, value in _record(student.model_dump()).items():
        if value is None and name in _REQUIRED:
            continue  # unanswered, not skipped: the hardship reason is asked if the group changes to need one
        ctx.values.setdefault(name, value)
    return None


CHANGED = T(
    vi="✅ Đã cập nhật hồ sơ em <b>{name}</b> ({n} mục). Mọi thay đổi được ghi lại trong nhật ký.",
    en="✅ Updated <b>{name}</b>'s record ({n} change(s)). Every change is kept in the audit log.",
)
UNCHANGED = T(vi="Không có mục nào thay đổi.", en="Nothing changed.")


def _save_edit(ctx: FormContext) -> Done:
    sid = int(ctx.values["student_id"])
    student = students.get_student(ctx.session, actor=ctx.staff, student_id=sid)
    changed = 0
    try:
        for name, value in _record(ctx.values).items():
            if getattr(student, name) != value:
                students.update_student_field(
                    ctx.session, actor=ctx.staff, student_id=sid, field=name, value=value, now=ctx.now
                )
                changed += 1
    except students.DuplicateCode as exc:
        raise Invalid(refusal(exc, ctx.lang), field="code") from None
    except students.StudentError as exc:
        return Done(refusal(exc, ctx.lang))
    if not changed:
        return Done(UNCHANGED)
    return Done(CHANGED, name=esc(student.full_name), n=changed)


EDIT = Form(
    name="sua_dangky",
    title=T(vi="Sửa hồ sơ học sinh", en="Correct a pupil's record"),
    fields=STUDENT_FIELDS,
    on_complete=_save_edit,
    roles=frozenset({Role.TEACHER, Role.PRINCIPAL}),
    start=_load_for_edit,
)

FORMS = [REGISTER, EDIT]
