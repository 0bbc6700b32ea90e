"""Children's data (Decree 13/2023/NĐ-CP): /dongy completes the guardian's consent of registrations made
before /dangky asked for it; /xoahs erases one pupil on request (the district officer, or the principal for
their school), after a confirmation that names the pupil."""

from __future__ import annotations

from conversations.fields import choice_field, confirm_field, parse_student_code, text_field
from conversations.forms.base import Choice, Done, Form, FormContext, Invalid
from conversations.forms.register import CONSENT_ASK
from conversations.refusals import refusal
from core.i18n import T
from core.messages import esc
from core.vocabulary import Role
from storage import consent, erasure
from storage.models import Student

# --- /dongy ------------------------------------------------------------------------------------------------------


def _missing(ctx: FormContext) -> list[Choice]:
    rows = consent.without_consent(ctx.session, actor=ctx.staff)
    return [Choice(s.id, f"{s.full_name} — {s.class_name} — {s.code}") for s in rows]


def _consent_prompt(ctx: FormContext) -> str:
    s = ctx.session.get(Student, int(ctx.values["student"]))
    who = f"<b>{esc(s.full_name)}</b> ({esc(s.class_name)})\n" if s is not None else ""
    return who + ctx.t(CONSENT_ASK, notice=esc(consent.notice(ctx.programme, ctx.lang)))


def _not_yet(ctx: FormContext, value: bool) -> Done | None:
    if value:
        return None
    return Done(
        T(
            vi="Chưa ghi nhận. Hồ sơ vẫn ở trạng thái «chưa ghi nhận đồng ý»; nếu phụ huynh không đồng ý, hiệu "
            "trưởng có thể xóa hồ sơ bằng /xoahs.",
            en="Not recorded. The entry stays “consent not recorded”; if the parent refuses, the principal can "
            "erase it with /xoahs.",
        )
    )


def _record(ctx: FormContext) -> Done:
    try:
        s = consent.record_consent(ctx.session, actor=ctx.staff, student_id=int(ctx.values["student"]), now=ctx.now)
    except consent.ConsentError as exc:
        return Done(refusal(exc, ctx.lang))
    left = len(consent.without_consent(ctx.session, actor=ctx.staff))
    return Done(
        T(
            vi="✅ Đã ghi nhận phụ huynh em <b>{name}</b> đồng ý. Còn {n} hồ sơ chưa ghi nhận.",
            en="✅ Recorded the consent for <b>{name}</b>. {n} entries left without it.",
        ),
        name=esc(s.full_name),
        n=left,
    )


CONSENT = Form(
    name="dongy",
    command="dongy",
    title=T(vi="Ghi nhận đồng ý của phụ huynh", en="Record a parent's consent"),
    description=T(vi="Ghi nhận đồng ý của phụ huynh cho hồ sơ cũ", en="Record consent for older entries"),
    roles=frozenset({Role.TEACHER, Role.PRINCIPAL}),
    fields=[
        choice_field(
            "student",
            T(vi="Hồ sơ chưa ghi nhận đồng ý của phụ huynh — chọn một:", en="Entries without consent — pick one:"),
            T(vi="Hồ sơ", en="Entry"),
            _missing,
            empty=T(vi="Mọi hồ sơ đều đã có đồng ý của phụ huynh. 👍", en="Every entry has the parent's consent. 👍"),
        ),
        confirm_field(
            "consent",
            _consent_prompt,
            T(vi="Phụ huynh đồng ý", en="Parent's consent"),
            after=_not_yet,
            yes=T(vi="✅ Phụ huynh đã đồng ý", en="✅ The parent agreed"),
            no=T(vi="Chưa / không đồng ý", en="Not (yet)"),
        ),
    ],
    on_complete=_record,
    summary=False,
)

# --- /xoahs -------------------------------------------------------------------------------------------------------


def _parse_code(text: str, ctx: FormContext) -> str:
    code = parse_student_code(text, ctx)
    if erasure.find_student(ctx.session, actor=ctx.staff, code=code) is None:
        raise Invalid(
            T(
                vi="Không tìm thấy học sinh mã {code} trong phạm vi của bạn. Vui lòng kiểm tra lại mã.",
                en="No pupil with code {code} in your scope. Please check the code.",
            ),
            code=code,
        )
    return code


def _erase_prompt(ctx: FormContext) -> str:
    student = erasure.find_student(ctx.session, actor=ctx.staff, code=str(ctx.values["code"]))
    if student is None:
        return ctx.t(T(vi="Không tìm thấy học sinh này nữa. Xác nhận?", en="The pupil is gone. Confirm?"))
    p = erasure.plan(ctx.session, student=student)
    return ctx.t(
        T(
            vi="⚠️ Xóa <b>vĩnh viễn</b> mọi dữ liệu của em <b>{name}</b> (mã {code}, lớp {cls}, {school}): hồ sơ, "
            "{h} bàn giao, {p} ảnh và biên bản, các thông báo về em. Không thể hoàn tác. Nhật ký chỉ ghi việc "
            "xóa (ai, khi nào, mã nào). Xóa em {name}?",
            en="⚠️ <b>Permanently</b> erase all data of <b>{name}</b> (code {code}, class {cls}, {school}): the "
            "entry, {h} handover(s), {p} photo(s) and minutes, messages about them. This cannot be undone. The "
            "log keeps only that an erasure happened (who, when, which code). Erase {name}?",
        ),
        name=esc(p.full_name),
        code=p.code,
        cls=esc(p.class_name),
        school=esc(p.school_name),
        h=len(p.handover_ids),
        p=len(p.photo_ids),
    )


def _kept(ctx: FormContext, value: bool) -> Done | None:
    return None if value else Done(T(vi="Đã hủy: không xóa gì.", en="Cancelled: nothing erased."))


def _erase(ctx: FormContext) -> Done:
    student = erasure.find_student(ctx.session, actor=ctx.staff, code=str(ctx.values["code"]))
    if student is None:
        return Done(T(vi="Không tìm thấy học sinh này (có thể đã được xóa).", en="Pupil not found (already erased?)."))
    name = student.full_name
    try:
        report = erasure.erase(
            ctx.session,
            actor=ctx.staff,
            role=ctx.staff.role,
            student_id=student.id,
            now=ctx.now,
            media_dir=ctx.media_dir,
        )
    except erasure.ErasureError as exc:  # erased by someone else meanwhile
        return Done(refusal(exc, ctx.lang))
    return Done(
        T(
            vi="🗑 Đã xóa mọi dữ liệu của em {name} (mã {code}): {h} bàn giao, {p} ảnh, {f} tệp, {n} thông báo.",
            en="🗑 Erased all data of {name} (code {code}): {h} handover(s), {p} photo(s), {f} file(s), {n} message(s).",
        ),
        name=esc(name),
        code=report.code,
        h=report.handovers,
        p=report.photos,
        f=report.files,
        n=report.notifications,
    )


ERASE = Form(
    name="xoahs",
    command="xoahs",
    title=T(vi="Xóa dữ liệu học sinh theo yêu cầu", en="Erase a pupil's data on request"),
    description=T(vi="Xóa vĩnh viễn dữ liệu một học sinh", en="Erase one pupil's data"),
    roles=frozenset({Role.PRINCIPAL, Role.DISTRICT_OFFICER}),
    fields=[
        text_field(
            "code",
            T(vi="Mã định danh của học sinh cần xóa?", en="Student code of the pupil to erase?"),
            T(vi="Mã định danh", en="Student code"),
            parse=_parse_code,
        ),
        confirm_field(
            "confirm",
            _erase_prompt,
            T(vi="Xác nhận xóa", en="Confirm erasure"),
            after=_kept,
            yes=T(vi="🗑 Xóa vĩnh viễn", en="🗑 Erase permanently"),
            no=T(vi="Không, giữ lại", en="No, keep"),
        ),
    ],
    on_complete=_erase,
    summary=False,
    args_field="code",
)

FORMS = [CONSENT, ERASE]
