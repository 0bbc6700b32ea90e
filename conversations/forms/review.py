"""/duyet — the principal's review: pending registrations one by one (approve, or reject with a reason; the
registering teacher is told), teachers' requests to withdraw approved entries, and — when the computers
forms are installed — the handovers waiting for the sector-database confirmation (form ``csdl``).
"""

from __future__ import annotations

from conversations.fields import choice_field, text_field
from conversations.forms.base import Choice, Done, Form, FormContext
from conversations.refusals import refusal
from core.clock import fmt_date, fmt_local
from core.i18n import T
from core.messages import esc
from core.vocabulary import Role
from storage import students
from storage.errors import RecordError
from storage.models import Staff, Student

PRINCIPAL = frozenset({Role.PRINCIPAL})
CSDL_FORM = "csdl"

NOTHING = T(vi="Hiện không có gì chờ bạn duyệt. 👍", en="Nothing is waiting for your review. 👍")


def _csdl_installed() -> bool:
    from conversations.forms import registry

    return CSDL_FORM in registry().forms


def _student_card(ctx: FormContext, s: Student) -> str:
    cat = ctx.programme.category(s.category)
    category = (cat.label_vi if ctx.lang == "vi" else cat.label_en) if cat else s.category
    need = {
        "device": T(vi="Máy tính", en="Computer"),
        "internet": T(vi="Sóng internet", en="Internet"),
        "both": T(vi="Cả hai", en="Both"),
    }.get(s.need)
    teacher = ctx.session.get(Staff, s.registered_by)
    lines = [
        f"<b>{esc(s.full_name)}</b> — lớp {esc(s.class_name)}",
        ctx.t(T(vi="Ngày sinh: {d} · Mã: {c}", en="Born: {d} · Code: {c}"), d=fmt_date(s.birth_date), c=s.code),
        ctx.t(T(vi="Đối tượng: {c}", en="Group: {c}"), c=esc(category)),
    ]
    if s.hardship_reason:
        lines.append(ctx.t(T(vi="Hoàn cảnh: {r}", en="Hardship: {r}"), r=esc(s.hardship_reason)))
    lines.append(ctx.t(T(vi="Nhu cầu: {n}", en="Need: {n}"), n=need(ctx.lang) if need else esc(s.need)))
    if s.guardian_name or s.guardian_phone:
        from core.phones import display_phone

        lines.append(
            ctx.t(
                T(vi="Giám hộ: {g}", en="Guardian: {g}"),
                g=esc(
                    " — ".join(
                        x for x in (s.guardian_name, display_phone(s.guardian_phone) if s.guardian_phone else None) if x
                    )
                ),
            )
        )
    if s.note:
        lines.append(ctx.t(T(vi="Ghi chú: {n}", en="Note: {n}"), n=esc(s.note)))
    lines.append(
        ctx.t(
            T(vi="Người đăng ký: {t}, lúc {at}", en="Registered by {t} at {at}"),
            t=esc(teacher.full_name if teacher else "?"),
            at=fmt_local(s.created_at, ctx.programme.tz) if s.created_at else "?",
        )
    )
    if s.late:
        lines.append(ctx.t(T(vi="(bổ sung sau khi đã chốt báo cáo)", en="(added after the report was submitted)")))
    return "\n".join(lines)


# --- the entry point ---------------------------------------------------------------------------------------------


def _entry(ctx: FormContext) -> Done | None:
    school_id = ctx.staff.school_id
    assert school_id is not None
    pending = students.count_pending(ctx.session, school_id=school_id)
    withdrawals = len(students.list_withdrawal_requests(ctx.session, school_id=school_id))
    if pending or withdrawals:  # the principal reads teachers' entries: one access-log row per /duyet
        from storage import access_log

        access_log.record_access(
            ctx.session,
            actor=ctx.staff,
            role=ctx.staff.role,
            what=access_log.REVIEW,
            scope=ctx.scope,
            pupils=pending + withdrawals,
            now=ctx.now,
        )
    csdl = _csdl_installed()
    if not csdl and not withdrawals:
        if not pending:
            return Done(NOTHING)
        return Done(next_form="duyet_dk")
    ctx.values["pending"], ctx.values["withdrawals"] = pending, withdrawals
    return None


def _entry_choices(ctx: FormContext) -> list[Choice]:
    out = [
        Choice(
            "reg",
            T(vi="Đăng ký chờ duyệt ({n})", en="Registrations to review ({n})")(
                ctx.lang, n=ctx.values.get("pending", 0)
            ),
        )
    ]
    if ctx.values.get("withdrawals"):
        out.append(
            Choice(
                "wd",
                T(vi="Yêu cầu rút hồ sơ ({n})", en="Withdrawal requests ({n})")(ctx.lang, n=ctx.values["withdrawals"]),
            )
        )
    if _csdl_installed():
        out.append(
            Choice("csdl", T(vi="Bàn giao chờ cập nhật CSDL ngành", en="Handovers to confirm in the sector database"))
        )
    out.append(Choice("exit", T(vi="↩ Thoát", en="↩ Leave")))
    return out


def _entry_pick(ctx: FormContext, value: str) -> Done:
    if value == "exit":
        return Done(T(vi="Đã thoát mục duyệt. Gõ /menu để làm việc khác.", en="Left the review. Type /menu."))
    return Done(next_form={"reg": "duyet_dk", "wd": "duyet_rut", "csdl": CSDL_FORM}.get(value, "duyet_dk"))


REVIEW = Form(
    name="duyet",
    command="duyet",
    title=T(vi="Duyệt", en="Review"),
    description=T(vi="Duyệt đăng ký, xác nhận cập nhật CSDL", en="Review registrations and handovers"),
    roles=PRINCIPAL,
    start=_entry,
    fields=[
        choice_field(
            "what",
            T(vi="Bạn muốn duyệt mục nào?", en="What do you want to review?"),
            T(vi="Mục", en="Item"),
            _entry_choices,
            after=_entry_pick,
        )
    ],
    on_complete=lambda ctx: Done(),
    summary=False,
)


# --- registrations, one by one -----------------------------------------------------------------------------------

DECISIONS = [
    Choice("approve", T(vi="✅ Duyệt", en="✅ Approve")),
    Choice("reject", T(vi="❌ Từ chối", en="❌ Reject")),
    Choice("later", T(vi="⏭ Để sau", en="⏭ Later")),
    Choice("stop", T(vi="⏹ Dừng", en="⏹ Stop")),
]
APPROVE_FILE = T(vi="✅ Duyệt cả tệp «{file}» ({n} em)", en="✅ Approve the whole file “{file}” ({n})")


def _decisions(ctx: FormContext) -> list[Choice]:
    """The decisions, plus "approve all from this file" when the entry came from an imported class list."""
    from storage.models import StudentImport

    s = ctx.session.get(Student, int(ctx.values["student_id"]))
    if s is None or s.import_id is None:
        return DECISIONS
    batch = ctx.session.get(StudentImport, s.import_id)
    n = students.pending_in_import(ctx.session, school_id=s.school_id, import_id=s.import_id)
    if batch is None or n < 2:
        return DECISIONS
    label = APPROVE_FILE(ctx.lang, file=batch.file_name[:30], n=n)
    return [DECISIONS[0], Choice("approve_file", label), *DECISIONS[1:]]


# To the person who registered the pupil (never to the principal deciding: their reply says it already).
APPROVED_NOTE = T(
    vi="✅ Hiệu trưởng {principal} đã duyệt đăng ký em <b>{name}</b> (lớp {cls}) mà bạn đã gửi.",
    en="✅ Principal {principal} approved your registration of <b>{name}</b> (class {cls}).",
)
REJECTED_NOTE = T(
    vi="❌ Hiệu trưởng {principal} chưa duyệt đăng ký em <b>{name}</b> (lớp {cls}) mà bạn đã gửi. Lý do: {reason}\n"
    "Bạn có thể sửa hồ sơ qua /cuatoi để gửi duyệt lại.",
    en="❌ Principal {principal} rejected your registration of <b>{name}</b> (class {cls}). Reason: {reason}\n"
    "You can correct it with /cuatoi to resubmit.",
)


def _tell_registrant(ctx: FormContext, s: Student, note: T, **values: object) -> None:
    """Tell the person who registered ``s`` what the principal decided, unless that person is the principal
    deciding right now (their own screen already says it, worded for them)."""
    if s.registered_by is not None and s.registered_by != ctx.staff.id:
        ctx.notify(s.registered_by, note, principal=esc(ctx.staff.full_name), **values)


def _skips(ctx: FormContext) -> list[int]:
    return [int(x) for x in ctx.values.get("skip", [])]


def _next_pending(ctx: FormContext) -> Done | None:
    school_id = ctx.staff.school_id
    assert school_id is not None
    nxt = students.list_pending(ctx.session, school_id=school_id, exclude_ids=_skips(ctx), limit=1)
    if not nxt:
        left = students.count_pending(ctx.session, school_id=school_id)
        if left:
            return Done(
                T(
                    vi="Đã xem hết. Còn {n} đăng ký bạn để lại sau; gõ /duyet để xem lại.",
                    en="That's all. {n} registration(s) left for later; type /duyet again.",
                ),
                n=left,
            )
        return Done(T(vi="Đã duyệt hết các đăng ký. 👍", en="All registrations are reviewed. 👍"))
    ctx.values["student_id"] = nxt[0].id
    return None


def _pending_prompt(ctx: FormContext) -> str:
    s = ctx.session.get(Student, int(ctx.values["student_id"]))
    left = students.count_pending(ctx.session, school_id=ctx.staff.school_id or 0)
    head = ctx.t(T(vi="<b>Đăng ký chờ duyệt</b> (còn {n})", en="<b>Registration to review</b> ({n} left)"), n=left)
    return f"{head}\n{_student_card(ctx, s)}" if s else head


def _decision(ctx: FormContext, value: str) -> Done | None:
    if value == "later":
        return Done(next_form="duyet_dk", next_values={"skip": _skips(ctx) + [int(ctx.values["student_id"])]})
    if value == "stop":
        left = students.count_pending(ctx.session, school_id=ctx.staff.school_id or 0)
        return Done(
            T(vi="Đã dừng. Còn {n} đăng ký chờ duyệt.", en="Stopped. {n} registration(s) still waiting."), n=left
        )
    return None


def _review_save(ctx: FormContext) -> Done:
    sid = int(ctx.values["student_id"])
    if ctx.values["decision"] == "approve_file":
        return _approve_file(ctx, sid)
    try:
        if ctx.values["decision"] == "approve":
            s = students.approve(ctx.session, actor=ctx.staff, student_id=sid, now=ctx.now)
            msg = T(vi="✅ Đã duyệt em {name}.", en="✅ Approved {name}.")
            _tell_registrant(ctx, s, APPROVED_NOTE, name=esc(s.full_name), cls=esc(s.class_name))
        else:
            s = students.reject(ctx.session, actor=ctx.staff, student_id=sid, reason=ctx.values["reason"], now=ctx.now)
            msg = T(vi="❌ Đã từ chối em {name}.", en="❌ Rejected {name}.")
            _tell_registrant(
                ctx,
                s,
                REJECTED_NOTE,
                name=esc(s.full_name),
                cls=esc(s.class_name),
                reason=esc(s.reject_reason or ""),
            )
    except students.StudentError as exc:
        return Done(refusal(exc, ctx.lang), next_form="duyet_dk", next_values={"skip": _skips(ctx) + [sid]})
    return Done(msg, name=esc(s.full_name), next_form="duyet_dk", next_values={"skip": _skips(ctx)})


def _approve_file(ctx: FormContext, sid: int) -> Done:
    s = ctx.session.get(Student, sid)
    try:
        if s is None or s.import_id is None:
            raise students.NotAllowed("import_missing")
        done = students.approve_import(ctx.session, actor=ctx.staff, import_id=s.import_id, now=ctx.now)
    except RecordError as exc:
        return Done(refusal(exc, ctx.lang), next_form="duyet_dk", next_values={"skip": _skips(ctx) + [sid]})
    by_teacher: dict[int, int] = {}
    for st in done:
        by_teacher[st.registered_by] = by_teacher.get(st.registered_by, 0) + 1
    for teacher_id, n in by_teacher.items():
        if teacher_id != ctx.staff.id:
            ctx.notify(teacher_id, FILE_APPROVED_NOTE, n=n)
    return Done(
        T(vi="✅ Đã duyệt {n} em của cả tệp.", en="✅ Approved {n} pupils of the whole file."),
        n=len(done),
        next_form="duyet_dk",
        next_values={"skip": _skips(ctx)},
    )


FILE_APPROVED_NOTE = T(
    vi="✅ Hiệu trưởng đã duyệt {n} em trong danh sách bạn gửi bằng tệp.",
    en="✅ The principal approved {n} pupils of the list you sent as a file.",
)


REVIEW_REGISTRATIONS = Form(
    name="duyet_dk",
    title=T(vi="Duyệt đăng ký", en="Review registrations"),
    roles=PRINCIPAL,
    start=_next_pending,
    fields=[
        choice_field(
            "decision", _pending_prompt, T(vi="Quyết định", en="Decision"), _decisions, columns=2, after=_decision
        ),
        text_field(
            "reason",
            T(
                vi="Lý do từ chối? (giáo viên sẽ nhận được lý do này)",
                en="Reason for rejecting? (the teacher will see it)",
            ),
            T(vi="Lý do", en="Reason"),
            when=lambda ctx: ctx.values.get("decision") == "reject",
            max_len=500,
        ),
    ],
    on_complete=_review_save,
    summary=False,
)


# --- withdrawal requests -----------------------------------------------------------------------------------------

WD_DECISIONS = [
    Choice("accept", T(vi="✅ Đồng ý rút", en="✅ Accept")),
    Choice("decline", T(vi="↩ Giữ lại hồ sơ", en="↩ Keep the record")),
    Choice("stop", T(vi="⏹ Dừng", en="⏹ Stop")),
]


def _next_withdrawal(ctx: FormContext) -> Done | None:
    reqs = students.list_withdrawal_requests(ctx.session, school_id=ctx.staff.school_id or 0)
    if not reqs:
        return Done(T(vi="Không còn yêu cầu rút hồ sơ nào.", en="No withdrawal requests left."))
    ctx.values["student_id"] = reqs[0].id
    return None


def _withdrawal_prompt(ctx: FormContext) -> str:
    s = ctx.session.get(Student, int(ctx.values["student_id"]))
    head = ctx.t(T(vi="<b>Yêu cầu rút hồ sơ</b> (đã duyệt trước đó)", en="<b>Withdrawal request</b> (approved entry)"))
    return f"{head}\n{_student_card(ctx, s)}" if s else head


def _withdrawal_save(ctx: FormContext) -> Done:
    if ctx.values["decision"] == "stop":
        return Done(T(vi="Đã dừng.", en="Stopped."))
    accept = ctx.values["decision"] == "accept"
    try:
        s = students.decide_withdrawal(
            ctx.session, actor=ctx.staff, student_id=int(ctx.values["student_id"]), accept=accept, now=ctx.now
        )
    except students.StudentError as exc:
        return Done(refusal(exc, ctx.lang))
    note = (
        T(
            vi="Hiệu trưởng {principal} đã đồng ý rút hồ sơ em <b>{name}</b> theo yêu cầu của bạn.",
            en="Principal {principal} withdrew <b>{name}</b> as you asked.",
        )
        if accept
        else T(
            vi="Hiệu trưởng {principal} giữ lại hồ sơ em <b>{name}</b> (không rút theo yêu cầu của bạn).",
            en="Principal {principal} kept <b>{name}</b>'s record (your withdrawal request was declined).",
        )
    )
    _tell_registrant(ctx, s, note, name=esc(s.full_name))
    return Done(
        T(vi="Đã xử lý yêu cầu rút hồ sơ em {name}.", en="Done: {name}."), name=esc(s.full_name), next_form="duyet_rut"
    )


REVIEW_WITHDRAWALS = Form(
    name="duyet_rut",
    title=T(vi="Duyệt yêu cầu rút hồ sơ", en="Review withdrawal requests"),
    roles=PRINCIPAL,
    start=_next_withdrawal,
    fields=[choice_field("decision", _withdrawal_prompt, T(vi="Quyết định", en="Decision"), WD_DECISIONS)],
    on_complete=_withdrawal_save,
    summary=False,
)

FORMS = [REVIEW, REVIEW_REGISTRATIONS, REVIEW_WITHDRAWALS]
