"""The district contact's morning digest: where every school stands, what is late, what needs a look.

One digest per district per day (stage ``day:YYYY-MM-DD``), from the reminder hour on. Its counts read every
row of the district, so it is computed only when today's digest is not yet in the outbox: the sweeps after
it cost one key lookup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import func, or_, select

from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.vocabulary import ROLE_LABELS, STANDING, FlagKind, HandoverStatus, NotificationStatus, ReviewStatus
from scheduler.context import Candidate, SweepContext
from storage.models import Batch, Flag, Handover, Notification, School, Staff, Student

MAX_LISTED = 10
FLAG_LABEL = {
    FlagKind.PHOTO_REUSED: T(vi="ảnh đã dùng cho bàn giao khác", en="photo reused from another handover"),
    FlagKind.PHOTO_NEAR_DUPLICATE: T(vi="ảnh gần trùng ảnh khác", en="photo nearly identical to another"),
    FlagKind.CAPTURE_TIME: T(vi="thời điểm chụp bất thường", en="unusual capture time"),
}

HEAD = T(vi="📋 <b>Bản tin ngày {day} — {district}</b>", en="📋 <b>Digest for {day} — {district}</b>")
REPORTS = T(
    vi="Báo cáo nhu cầu: {done}/{total} trường đã chốt (hạn hết ngày {deadline}).",
    en="Needs reports: {done}/{total} schools submitted (deadline end of {deadline}).",
)
TOTALS = T(
    vi="Học sinh đăng ký: {students} ({approved} đã duyệt, {pending} chờ duyệt). "
    "Máy đã nhận: {received}, đã bàn giao: {handed}, chờ cập nhật CSDL ngành: {open_csdl}.",
    en="Students registered: {students} ({approved} approved, {pending} waiting). "
    "Computers received: {received}, handed over: {handed}, awaiting the sector database: {open_csdl}.",
)
PER_SCHOOL = T(vi="<b>Từng trường</b>", en="<b>Per school</b>")
SCHOOL_LINE = T(
    vi="• <b>{school}</b>: {students} HS ({pending} chờ duyệt), nhận {received} máy, bàn giao {handed}, "
    "chờ CSDL {open_csdl}; báo cáo nhu cầu: {report}",
    en="• <b>{school}</b>: {students} students ({pending} waiting), {received} computers received, "
    "{handed} handed over, {open_csdl} awaiting the database; needs report: {report}",
)
REPORT_DONE = T(vi="đã chốt {day}", en="submitted {day}")
REPORT_OPEN = T(vi="chưa chốt", en="not submitted")
REPORT_LATE = T(vi="<b>CHƯA CHỐT, trễ hạn</b>", en="<b>NOT SUBMITTED, late</b>")
LATE = T(vi="<b>Việc trễ hạn</b>", en="<b>Late</b>")
NOTHING_LATE = T(vi="Không có việc trễ hạn. 👍", en="Nothing is late. 👍")
LATE_REPORT = T(vi="• {school}: chưa chốt báo cáo nhu cầu", en="• {school}: needs report not submitted")
LATE_CSDL = T(
    vi="• {school}: {n} bàn giao quá hạn cập nhật CSDL ngành (cũ nhất: hạn hết ngày {oldest})",
    en="• {school}: {n} handovers late for the sector database (oldest due end of {oldest})",
)
LATE_DEVICES = T(
    vi="• {school}: {n} máy đã nhận quá {days} ngày chưa bàn giao",
    en="• {school}: {n} computers received over {days} days ago not handed over",
)
LATE_REVIEW = T(
    vi="• {school}: {n} hồ sơ chờ duyệt quá {days} ngày", en="• {school}: {n} registrations waiting over {days} days"
)
FLAGS = T(vi="<b>Ảnh bị gắn cờ chưa xử lý: {n}</b>", en="<b>Open photo flags: {n}</b>")
FLAG_LINE = T(vi="• {school}, bàn giao #{handover}: {kind}", en="• {school}, handover #{handover}: {kind}")
FAILED = T(vi="<b>Thông báo không gửi được (24 giờ qua): {n}</b>", en="<b>Notifications not delivered (24 h): {n}</b>")
FAILED_LINE = T(vi="• {who}: {what} — {why}", en="• {who}: {what} — {why}")
MORE = T(vi="… và {n} mục khác", en="… and {n} more")
NO_NAME = T(vi="email {email}", en="e-mail {email}")


def find_digest(ctx: SweepContext) -> Iterable[Candidate]:
    morning = ctx.morning(ctx.today)
    until = ctx.end_of_day(ctx.today)  # yesterday's digest is no news: never sent the next day
    if ctx.now < morning or ctx.deliver_from(ctx.now) >= until:
        return []
    stage = f"day:{ctx.today.isoformat()}"
    district_ids = ctx.session.execute(select(School.district_id).where(School.active).distinct()).scalars().all()
    out = []
    for district_id in sorted(district_ids):
        contact = ctx.district_contact(district_id)
        if contact is None:
            continue
        candidate = Candidate(
            "digest", f"district:{district_id}", contact, stage, morning, "", escalation=True, until=until
        )
        exists = ctx.session.execute(select(Notification.id).where(Notification.key == candidate.key)).first()
        if exists is None:  # the counts read the whole district: only when today's digest is not recorded yet
            line = build_digest(
                ctx,
                district_id=district_id,
                lang=contact.language,
                contact_email=contact.email,
                contact_staff_id=contact.staff_id,
            )
            candidate = Candidate(
                "digest", candidate.subject, contact, stage, morning, line, escalation=True, until=until
            )
        out.append(candidate)
    return out


def build_digest(
    ctx: SweepContext,
    *,
    district_id: int,
    lang: str = "vi",
    contact_email: str | None = None,
    contact_staff_id: int | None = None,
) -> str:
    s = ctx.session
    p = ctx.programme
    schools = s.execute(
        select(School.id, School.name, School.needs_report_submitted_at)
        .where(School.district_id == district_id, School.active)
        .order_by(School.name)
    ).all()
    ids = [r.id for r in schools]
    students: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for sid, status, n in s.execute(
        select(Student.school_id, Student.status, func.count())
        .where(Student.school_id.in_(ids))
        .group_by(Student.school_id, Student.status)
    ).all():
        students[sid][status] = n
    batches = {
        sid: (q or 0, h or 0)
        for sid, q, h in s.execute(
            select(Batch.school_id, func.sum(Batch.quantity), func.sum(Batch.handed_over))
            .where(Batch.school_id.in_(ids))
            .group_by(Batch.school_id)
        ).all()
    }
    open_csdl: dict[int, int] = {}
    late_csdl: dict[int, tuple[int, object]] = {}
    # Same predicate as the partial index ix_handover_csdl_open: only unconfirmed handovers are read.
    for sid, due, n in s.execute(
        select(Handover.school_id, Handover.csdl_due_at, func.count())
        .where(
            Handover.csdl_updated_at.is_(None), Handover.status == HandoverStatus.ACTIVE, Handover.school_id.in_(ids)
        )
        .group_by(Handover.school_id, Handover.csdl_due_at)
    ).all():
        open_csdl[sid] = open_csdl.get(sid, 0) + n
        if due + timedelta(hours=p.deadlines.handover_update_grace_hours) <= ctx.now:
            count, oldest = late_csdl.get(sid, (0, due))
            late_csdl[sid] = (count + n, min(oldest, due))
    waiting_days = p.deadlines.devices_waiting_days
    waiting = {
        sid: n
        for sid, n in s.execute(
            select(Batch.school_id, func.sum(Batch.quantity - Batch.handed_over))
            .where(
                Batch.school_id.in_(ids),
                Batch.handed_over < Batch.quantity,
                Batch.received_on <= ctx.today - timedelta(days=waiting_days),
            )
            .group_by(Batch.school_id)
        ).all()
    }
    review_days = p.deadlines.pending_review_days
    slow_review = {
        sid: n
        for sid, n in s.execute(
            select(Student.school_id, func.count())
            .where(
                Student.school_id.in_(ids),
                Student.status == ReviewStatus.PENDING,
                Student.created_at <= ctx.now - timedelta(days=review_days),
            )
            .group_by(Student.school_id)
        ).all()
    }

    district = ctx.districts().get(district_id)
    past_deadline = ctx.now >= p.needs_report_due
    deadline = fmt_date(p.deadlines.needs_report)
    lines = [HEAD(lang, day=fmt_date(ctx.today), district=esc(district.name if district else district_id))]
    done = sum(1 for r in schools if r.needs_report_submitted_at is not None)
    lines.append(REPORTS(lang, done=done, total=len(schools), deadline=deadline))
    counted = sum(_counted(v) for v in students.values())
    pending = sum(v.get(ReviewStatus.PENDING, 0) for v in students.values())
    lines.append(
        TOTALS(
            lang,
            students=counted,
            approved=counted - pending,
            pending=pending,
            received=sum(q for q, _ in batches.values()),
            handed=sum(h for _, h in batches.values()),
            open_csdl=sum(open_csdl.values()),
        )
    )
    lines += ["", PER_SCHOOL(lang)]
    late_lines: list[str] = []
    for r in schools:
        st = students.get(r.id, {})
        received, handed = batches.get(r.id, (0, 0))
        if r.needs_report_submitted_at is not None:
            report = REPORT_DONE(lang, day=fmt_date(ctx.local_date(r.needs_report_submitted_at)))
        else:
            report = REPORT_LATE(lang) if past_deadline else REPORT_OPEN(lang)
        name = esc(r.name)
        lines.append(
            SCHOOL_LINE(
                lang,
                school=name,
                students=_counted(st),
                pending=st.get(ReviewStatus.PENDING, 0),
                received=received,
                handed=handed,
                open_csdl=open_csdl.get(r.id, 0),
                report=report,
            )
        )
        if past_deadline and r.needs_report_submitted_at is None:
            late_lines.append(LATE_REPORT(lang, school=name))
        if r.id in late_csdl:
            n, oldest = late_csdl[r.id]
            late_lines.append(
                LATE_CSDL(lang, school=name, n=n, oldest=fmt_date(ctx.local_date(oldest - timedelta(microseconds=1))))
            )
        if waiting.get(r.id):
            late_lines.append(LATE_DEVICES(lang, school=name, n=waiting[r.id], days=waiting_days))
        if slow_review.get(r.id):
            late_lines.append(LATE_REVIEW(lang, school=name, n=slow_review[r.id], days=review_days))
    lines += ["", LATE(lang)]
    lines += late_lines or [NOTHING_LATE(lang)]
    lines += _flags(ctx, ids, {r.id: r.name for r in schools}, lang)
    lines += _failed(ctx, district_id, lang, contact_email, contact_staff_id)
    return "\n".join(lines)


def _counted(by_status: dict[str, int]) -> int:
    return sum(n for status, n in by_status.items() if status in STANDING)


def _flags(ctx: SweepContext, school_ids: list[int], names: dict[int, str], lang: str) -> list[str]:
    where = (Flag.school_id.in_(school_ids), Flag.resolved_at.is_(None))
    n = ctx.session.execute(select(func.count()).select_from(Flag).where(*where)).scalar_one()
    if not n:
        return []
    rows = ctx.session.execute(
        select(Flag.school_id, Flag.handover_id, Flag.kind)
        .where(*where)
        .order_by(Flag.created_at, Flag.id)
        .limit(MAX_LISTED)
    ).all()
    out = ["", FLAGS(lang, n=n)]
    for r in rows:
        kind = FLAG_LABEL.get(r.kind)
        out.append(
            FLAG_LINE(
                lang,
                school=esc(names.get(r.school_id, r.school_id)),
                handover=r.handover_id,
                kind=kind(lang) if kind else esc(r.kind),
            )
        )
    if n > len(rows):
        out.append(MORE(lang, n=n - len(rows)))
    return out


def _failed(
    ctx: SweepContext, district_id: int, lang: str, contact_email: str | None, contact_staff_id: int | None
) -> list[str]:
    """Notifications that gave up in the last 24 hours, to people of this district (or to its contact)."""
    since = ctx.now - timedelta(days=1)
    mine = or_(
        Staff.district_id == district_id,
        Notification.email == contact_email if contact_email else Notification.id.is_(None),
    )
    query = (
        select(Notification.rule, Notification.last_error, Notification.email, Staff.full_name, Staff.role)
        .outerjoin(Staff, Staff.id == Notification.recipient_id)
        .where(Notification.status == NotificationStatus.FAILED, Notification.next_attempt_at >= since, mine)
        .order_by(Notification.next_attempt_at.desc(), Notification.id.desc())
    )
    rows = ctx.session.execute(query.limit(MAX_LISTED + 1)).all()
    if not rows:
        return []
    total = ctx.session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    out = ["", FAILED(lang, n=total)]
    for r in rows[:MAX_LISTED]:
        if r.full_name:
            role = ROLE_LABELS.get(r.role)
            who = f"{esc(r.full_name)} ({role(lang) if role else esc(r.role)})"
        else:
            who = NO_NAME(lang, email=esc(r.email or "-"))
        out.append(FAILED_LINE(lang, who=who, what=ctx.rule_title(r.rule, lang), why=esc((r.last_error or "-")[:160])))
    if total > MAX_LISTED:
        out.append(MORE(lang, n=total - MAX_LISTED))
    return out


def digest_chart(session, *, programme, subject: str, now, lang: str) -> bytes | None:
    """The district's chart (the one /tonghop sends) for the digest of ``district:<id>``."""
    from reports.chart import render_chart
    from reports.summary import build_summary
    from storage.scope import Scope

    kind, _, raw = subject.partition(":")
    if kind != "district" or not raw.isdigit():
        return None
    summary = build_summary(session, scope=Scope(district_id=int(raw)), programme=programme, now=now)
    return render_chart(summary, lang=lang)
