"""Form "csdl": the principal confirms handovers entered in the sector database ("Đã cập nhật CSDL ngành").

Started from the /duyet menu by its name. One tap confirms one handover (or all of them) and the list comes
back with what is left, so a principal clears a day's handovers with a few taps and no typing.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from conversations.fields import choice_field
from conversations.forms.base import Choice, Done, Form, FormContext
from conversations.refusals import refusal
from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.vocabulary import Role
from storage import errors, handovers
from storage.models import Handover, Student

ALL = "all"
SHOWN = 20  # the most urgent ones; "Xác nhận tất cả" still covers every waiting handover

NOTHING = T(
    vi="Không có bàn giao nào chờ xác nhận cập nhật CSDL ngành. 👍",
    en="No handover is waiting for the sector-database confirmation. 👍",
)
HEAD = T(
    vi="<b>Bàn giao chờ xác nhận «Đã cập nhật CSDL ngành»</b> ({n})\n"
    "Sau khi nhập vào csdl.moet.gov.vn, bấm ✅ từng bàn giao hoặc «Xác nhận tất cả».",
    en="<b>Handovers waiting for “Updated in the sector database”</b> ({n})\n"
    "Once entered in csdl.moet.gov.vn, tap ✅ for each, or “Confirm all”.",
)
LINE = T(
    vi="• #{id} {name} — bàn giao {day} — hạn {due}{late}", en="• #{id} {name} — handed over {day} — due {due}{late}"
)
LATE = T(vi=" ⏰ <b>quá hạn</b>", en=" ⏰ <b>late</b>")
MORE = T(vi="… và {n} bàn giao khác.", en="… and {n} more.")
CONFIRM_ALL = T(vi="Xác nhận tất cả ({n})", en="Confirm all ({n})")
CONFIRMED = T(
    vi="✅ Đã xác nhận cập nhật CSDL ngành cho {n} bàn giao.",
    en="✅ Confirmed the sector-database update for {n} handover(s).",
)
ALREADY = T(vi="Bàn giao này đã được xác nhận trước đó.", en="That handover was already confirmed.")


def _waiting(ctx: FormContext) -> list[tuple[Handover, str]]:
    waiting = handovers.handovers_awaiting_csdl(ctx.session, school_id=ctx.staff.school_id)
    ids = [h.student_id for h in waiting]
    names = (
        dict(ctx.session.execute(select(Student.id, Student.full_name).where(Student.id.in_(ids))).all()) if ids else {}
    )
    return [(h, names.get(h.student_id, "?")) for h in waiting]


def _start(ctx: FormContext) -> Done | None:
    if not handovers.handovers_awaiting_csdl(ctx.session, school_id=ctx.staff.school_id):
        return Done(NOTHING)
    return None


def _prompt(ctx: FormContext) -> str:
    waiting = _waiting(ctx)
    lines = [ctx.t(HEAD, n=len(waiting))]
    for handover, name in waiting[:SHOWN]:
        # csdl_due_at is the midnight that ends the last allowed day: show that day.
        last_day = (handover.csdl_due_at - timedelta(microseconds=1)).astimezone(ctx.programme.tz).date()
        lines.append(
            ctx.t(
                LINE,
                id=handover.id,
                name=esc(name),
                day=fmt_date(handover.handed_over_on),
                due=fmt_date(last_day),
                late=ctx.t(LATE) if ctx.now >= handover.csdl_due_at else "",
            )
        )
    if len(waiting) > SHOWN:
        lines.append(ctx.t(MORE, n=len(waiting) - SHOWN))
    return "\n".join(lines)


def _options(ctx: FormContext) -> list[Choice]:
    waiting = _waiting(ctx)
    options = [Choice(h.id, f"✅ #{h.id} {name}") for h, name in waiting[:SHOWN]]
    if len(waiting) > 1:
        # The ids travel with the option: "all" means the handovers that were listed, not ones recorded since.
        every = ALL + ":" + ",".join(str(h.id) for h, _ in waiting)
        options.append(Choice(every, CONFIRM_ALL(ctx.lang, n=len(waiting))))
    return options


def _confirm(ctx: FormContext) -> Done:
    picked = ctx.values["pick"]
    if isinstance(picked, str) and picked.startswith(ALL + ":"):
        ids = [int(x) for x in picked.removeprefix(ALL + ":").split(",") if x.isdigit()]
    else:
        ids = [int(picked)]
    try:
        n = handovers.confirm_csdl(
            ctx.session, handover_ids=ids, by=ctx.staff.id, school_id=ctx.staff.school_id, now=ctx.now
        )
    except errors.RecordError as exc:
        return Done(refusal(exc, ctx.lang))
    text = ctx.t(CONFIRMED, n=n) if n else ctx.t(ALREADY)
    left = handovers.handovers_awaiting_csdl(ctx.session, school_id=ctx.staff.school_id)
    return Done(text, next_form="csdl" if left else None)


CSDL = Form(
    name="csdl",
    title=T(vi="Xác nhận đã cập nhật CSDL ngành", en="Confirm the sector-database update"),
    description=T(vi="Xác nhận bàn giao đã cập nhật CSDL ngành", en="Confirm handovers entered in the sector database"),
    roles=frozenset({Role.PRINCIPAL}),
    start=_start,
    summary=False,  # one tap is the confirmation: the list itself says what will be confirmed
    fields=[
        choice_field("pick", _prompt, T(vi="Bàn giao", en="Handover"), _options, empty=NOTHING),
    ],
    on_complete=_confirm,
)

FORMS = [CSDL]
