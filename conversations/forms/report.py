"""/chotbaocao — the principal submits the school's needs report: the counts by category and need are shown,
the principal confirms, and registrations after that moment are marked late (bổ sung sau hạn)."""

from __future__ import annotations

from conversations.fields import confirm_field
from conversations.forms.base import Done, Form, FormContext
from conversations.refusals import refusal
from core.clock import fmt_date, fmt_local
from core.i18n import T
from core.text import fmt_int
from core.vocabulary import NEED_LABELS, Role
from storage import students
from storage.models import School


def _already(ctx: FormContext) -> Done | None:
    school = ctx.session.get(School, ctx.staff.school_id)
    if school is not None and school.needs_report_submitted_at is not None:
        return Done(
            T(
                vi="Trường đã chốt báo cáo nhu cầu lúc {at}. Đăng ký mới sau thời điểm đó được ghi là bổ sung sau hạn.",
                en="The school submitted its needs report at {at}. Later registrations are marked late.",
            ),
            at=fmt_local(school.needs_report_submitted_at, ctx.programme.tz),
        )
    return None


def counts_text(ctx: FormContext) -> str:
    counts = students.needs_report_counts(ctx.session, school_id=ctx.staff.school_id or 0)
    lang = ctx.lang
    lines = [
        ctx.t(
            T(
                vi="<b>Báo cáo nhu cầu của trường</b> — tổng số học sinh đã duyệt: <b>{n}</b>",
                en="<b>School needs report</b> — approved pupils: <b>{n}</b>",
            ),
            n=fmt_int(counts["total"], ctx.lang),
        )
    ]
    lines.append(ctx.t(T(vi="Theo đối tượng:", en="By group:")))
    for cat in ctx.programme.categories:
        label = cat.label_vi if lang == "vi" else cat.label_en
        lines.append(f"• {label}: {fmt_int(counts['by_category'].get(cat.code, 0), ctx.lang)}")
    lines.append(ctx.t(T(vi="Theo nhu cầu:", en="By need:")))
    for code, label in NEED_LABELS.items():
        lines.append(f"• {label(lang)}: {fmt_int(counts['by_need'].get(code, 0), lang)}")
    if counts["pending"]:
        lines.append(
            ctx.t(
                T(
                    vi="⚠️ Còn {n} đăng ký chưa duyệt — chúng không được tính. Nên /duyet trước khi chốt.",
                    en="⚠️ {n} registration(s) are not reviewed and not counted. Consider /duyet first.",
                ),
                n=fmt_int(counts["pending"], ctx.lang),
            )
        )
    due = ctx.programme.deadlines.needs_report
    late = ctx.today > due
    lines.append(
        ctx.t(
            T(vi="Hạn nộp: {d}{late}.", en="Deadline: {d}{late}."),
            d=fmt_date(due),
            late=ctx.t(T(vi=" (đã quá hạn)", en=" (overdue)")) if late else "",
        )
    )
    lines.append(ctx.t(T(vi="Chốt báo cáo với số liệu này?", en="Submit the report with these figures?")))
    return "\n".join(lines)


def _declined(ctx: FormContext, value: bool) -> Done | None:
    if value:
        return None
    return Done(
        T(vi="Chưa chốt báo cáo. Gõ /chotbaocao khi sẵn sàng.", en="Not submitted. Type /chotbaocao when ready.")
    )


def _submit(ctx: FormContext) -> Done:
    try:
        students.submit_needs_report(ctx.session, actor=ctx.staff, now=ctx.now)
    except students.StudentError as exc:
        return Done(refusal(exc, ctx.lang))
    late = ctx.now > ctx.programme.needs_report_due
    return Done(
        T(
            vi="✅ Đã chốt báo cáo nhu cầu lúc {at}{late}. Đăng ký mới từ bây giờ được ghi là bổ sung sau hạn.",
            en="✅ Needs report submitted at {at}{late}. New registrations from now on are marked late.",
        ),
        at=fmt_local(ctx.now, ctx.programme.tz),
        late=ctx.t(T(vi=" (sau hạn)", en=" (after the deadline)")) if late else "",
    )


SUBMIT = Form(
    name="chotbaocao",
    command="chotbaocao",
    title=T(vi="Chốt báo cáo nhu cầu", en="Submit the needs report"),
    description=T(vi="Chốt báo cáo nhu cầu của trường", en="Submit the school's needs report"),
    roles=frozenset({Role.PRINCIPAL}),
    start=_already,
    fields=[
        confirm_field(
            "confirm",
            counts_text,
            T(vi="Xác nhận", en="Confirm"),
            after=_declined,
            yes=T(vi="✅ Chốt báo cáo", en="✅ Submit"),
            no=T(vi="Chưa", en="Not yet"),
        )
    ],
    on_complete=_submit,
    summary=False,
)

FORMS = [SUBMIT]
