"""/cuatoi — a person's own recent registrations: open one to correct a field (every change audited, via the
``sua_dangky`` form) or withdraw it (a teacher's withdrawal of an approved entry waits for the principal)."""

from __future__ import annotations

from conversations.fields import choice_field, confirm_field, text_field
from conversations.forms.base import Choice, Done, Form, FormContext
from conversations.refusals import refusal
from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.vocabulary import ReviewStatus, Role
from storage import students
from storage.models import Student

STATUS = {
    ReviewStatus.PENDING: T(vi="chờ duyệt", en="pending"),
    ReviewStatus.APPROVED: T(vi="đã duyệt", en="approved"),
    ReviewStatus.REJECTED: T(vi="bị từ chối", en="rejected"),
    ReviewStatus.WITHDRAWN: T(vi="đã rút", en="withdrawn"),
    ReviewStatus.WITHDRAWING: T(vi="chờ duyệt rút", en="withdrawal requested"),
}
RECENT = 10


def status_label(status: str, lang: str) -> str:
    label = STATUS.get(status)  # type: ignore[call-overload]
    return label(lang) if label else status


def _entries(ctx: FormContext) -> list[Choice]:
    rows = students.recent_by(ctx.session, staff_id=ctx.staff.id, limit=RECENT)
    return [Choice(s.id, f"{s.full_name} — {s.class_name} — {status_label(s.status, ctx.lang)}") for s in rows]


def _student(ctx: FormContext) -> Student:
    return students.get_student(ctx.session, actor=ctx.staff, student_id=int(ctx.values["student"]))


def _actions(ctx: FormContext) -> list[Choice]:
    s = _student(ctx)
    out = []
    if students.can_edit(ctx.staff, s):
        label = (
            T(vi="✏️ Sửa và gửi duyệt lại", en="✏️ Correct and resubmit")
            if s.status == ReviewStatus.REJECTED
            else T(vi="✏️ Sửa một mục", en="✏️ Correct an answer")
        )
        out.append(Choice("edit", label))
    if s.status in (ReviewStatus.PENDING, ReviewStatus.APPROVED) and (
        ctx.staff.role == Role.PRINCIPAL or s.registered_by == ctx.staff.id
    ):
        out.append(Choice("withdraw", T(vi="🗑 Rút hồ sơ", en="🗑 Withdraw")))
    return out


def _card(ctx: FormContext) -> str:
    s = _student(ctx)
    lines = [
        f"<b>{esc(s.full_name)}</b> — {esc(s.class_name)} — {fmt_date(s.birth_date)} — {s.code}",
        ctx.t(T(vi="Trạng thái: {s}", en="Status: {s}"), s=status_label(s.status, ctx.lang)),
    ]
    if s.status == ReviewStatus.REJECTED and s.reject_reason:
        lines.append(ctx.t(T(vi="Lý do từ chối: {r}", en="Rejected because: {r}"), r=esc(s.reject_reason)))
    lines.append(ctx.t(T(vi="Bạn muốn làm gì?", en="What would you like to do?")))
    return "\n".join(lines)


def _on_action(ctx: FormContext, value: str) -> Done | None:
    if value == "edit":
        return Done(next_form="sua_dangky", next_values={"student_id": int(ctx.values["student"])}, next_pick=True)
    return None


def _confirm_prompt(ctx: FormContext) -> str:
    s = _student(ctx)
    if s.status == ReviewStatus.APPROVED and ctx.staff.role == Role.TEACHER:
        return ctx.t(
            T(
                vi="Hồ sơ em {name} đã được duyệt: việc rút cần hiệu trưởng đồng ý. Gửi yêu cầu rút?",
                en="{name} is approved: withdrawing needs the principal's consent. Send the request?",
            ),
            name=esc(s.full_name),
        )
    return ctx.t(T(vi="Rút hồ sơ em {name}?", en="Withdraw {name}?"), name=esc(s.full_name))


def _not_confirmed(ctx: FormContext, value: bool) -> Done | None:
    return None if value else Done(T(vi="Đã giữ nguyên hồ sơ.", en="The record is unchanged."))


WITHDRAW_REQUEST = T(
    vi="📝 {teacher} đề nghị rút hồ sơ em <b>{name}</b> (đã duyệt). Lý do: {reason}. Gõ /duyet để xử lý.",
    en="📝 {teacher} asks to withdraw <b>{name}</b> (approved). Reason: {reason}. Type /duyet.",
)


def _withdraw(ctx: FormContext) -> Done:
    reason = ctx.values.get("reason")
    try:
        s = students.withdraw(
            ctx.session, actor=ctx.staff, student_id=int(ctx.values["student"]), reason=reason, now=ctx.now
        )
    except students.StudentError as exc:
        return Done(refusal(exc, ctx.lang))
    if s.status == ReviewStatus.WITHDRAWING:
        for principal in students.principals_of(ctx.session, school_id=s.school_id):
            ctx.notify(
                principal.id,
                WITHDRAW_REQUEST,
                teacher=esc(ctx.staff.full_name),
                name=esc(s.full_name),
                reason=esc(reason or "—"),
            )
        return Done(
            T(
                vi="Đã gửi yêu cầu rút hồ sơ em {name}; hiệu trưởng sẽ xác nhận.",
                en="Withdrawal of {name} requested; the principal will confirm.",
            ),
            name=esc(s.full_name),
        )
    return Done(T(vi="Đã rút hồ sơ em {name}.", en="{name} withdrawn."), name=esc(s.full_name))


MINE = Form(
    name="cuatoi",
    command="cuatoi",
    title=T(vi="Hồ sơ của tôi", en="My entries"),
    description=T(vi="Xem, sửa hoặc rút hồ sơ bạn đã nhập", en="See, correct or withdraw your entries"),
    roles=frozenset({Role.TEACHER, Role.PRINCIPAL}),
    fields=[
        choice_field(
            "student",
            T(vi="Các hồ sơ bạn nhập gần đây — chọn một hồ sơ:", en="Your recent entries — pick one:"),
            T(vi="Hồ sơ", en="Entry"),
            _entries,
            empty=T(
                vi="Bạn chưa đăng ký học sinh nào. Gõ /dangky để đăng ký.",
                en="You have not registered any pupil yet. Type /dangky.",
            ),
        ),
        choice_field(
            "action",
            _card,
            T(vi="Việc", en="Action"),
            _actions,
            after=_on_action,
            empty=T(
                vi="Hồ sơ này đã rút hoặc đang chờ duyệt rút, không còn thao tác nào.",
                en="This entry is withdrawn or awaiting withdrawal; nothing to do.",
            ),
        ),
        text_field(
            "reason",
            T(vi="Lý do rút hồ sơ?", en="Why withdraw?"),
            T(vi="Lý do", en="Reason"),
            when=lambda ctx: ctx.values.get("action") == "withdraw",
            max_len=500,
        ),
        confirm_field(
            "confirm",
            _confirm_prompt,
            T(vi="Xác nhận", en="Confirm"),
            when=lambda ctx: ctx.values.get("action") == "withdraw",
            after=_not_confirmed,
        ),
    ],
    on_complete=_withdraw,
    summary=False,
)

FORMS = [MINE]
