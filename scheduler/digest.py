"""The district contact's morning digest: where every school stands, what is late, what needs a look; and the
province officers' digest: where every district of the province stands (``province:<id>``).

One digest per district per day (stage ``day:YYYY-MM-DD``), from the reminder hour on. Its counts read every
row of the district, so it is computed only when today's digest is not yet in the outbox: the sweeps after
it cost one key lookup.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from functools import partial

from sqlalchemy import case, func, or_, select

from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.text import fmt_int
from core.vocabulary import ROLE_LABELS, STANDING, FlagKind, HandoverStatus, NotificationStatus, ReviewStatus
from scheduler.context import Candidate, SweepContext
from storage import handovers
from storage.models import Batch, District, Flag, Handover, Notification, School, Staff, Student

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
UNSIGNED = T(
    vi="Bàn giao chưa có biên bản đã ký: {n}.",
    en="Handovers without signed minutes: {n}.",
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
LATE_CSDL_DONE = T(
    vi="• {school}: {n} bàn giao đã cập nhật CSDL ngành nhưng sau hạn",
    en="• {school}: {n} handovers confirmed in the sector database after the deadline",
)
LATE_DEVICES = T(
    vi="• {school}: {n} máy đã nhận quá {days} ngày chưa bàn giao",
    en="• {school}: {n} computers received over {days} days ago not handed over",
)
LATE_REVIEW = T(
    vi="• {school}: {n} hồ sơ chờ duyệt quá {days} ngày", en="• {school}: {n} registrations waiting over {days} days"
)
LATE_MINUTES = T(
    vi="• {school}: {n} bàn giao quá {days} ngày chưa có biên bản đã ký",
    en="• {school}: {n} handovers without signed minutes after {days} days",
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
    # Districts with a school (an index probe a district, not a pass over every school).
    district_ids = (
        ctx.read(
            select(District.id)
            .where(select(School.id).where(School.district_id == District.id, School.active).exists())
            .order_by(District.id)
        )
        .scalars()
        .all()
    )
    ctx.load_district_contacts(district_ids)
    province_ids = sorted({d.province_id for d in ctx.districts().values() if d.province_id is not None})
    ctx.load_province_officers(province_ids)
    # Every digest due today; the sweep asks which are recorded already in its one look-up by key (not a query a
    # district: 700 districts nationally, every tick), and only those not recorded yet read their counts.
    due: list[Candidate] = []
    for district_id in district_ids:
        contact = ctx.district_contact(district_id)
        if contact is None:
            continue
        build = partial(
            build_digest,
            ctx,
            district_id=district_id,
            lang=contact.language,
            contact_email=contact.email,
            contact_staff_id=contact.staff_id,
        )
        due.append(
            Candidate("digest", f"district:{district_id}", contact, stage, morning, build, escalation=True, until=until)
        )
    for province_id in province_ids:
        for rec in ctx.province_officers(province_id):
            build = partial(build_province_digest, ctx, province_id=province_id, lang=rec.language)
            due.append(
                Candidate("digest", f"province:{province_id}", rec, stage, morning, build, escalation=True, until=until)
            )
    return due


PROVINCE_HEAD = T(vi="📋 <b>Bản tin ngày {day} — {province}</b>", en="📋 <b>Digest for {day} — {province}</b>")
PROVINCE_TOTALS = T(
    vi="{districts} quận/huyện, {schools} trường. Học sinh đã duyệt: {approved}; máy đã nhận: {received}, "
    "đã bàn giao: {handed}; trễ cập nhật CSDL ngành: {late}. Báo cáo nhu cầu: {done}/{schools} trường đã chốt.",
    en="{districts} districts, {schools} schools. Students approved: {approved}; computers received: {received}, "
    "handed over: {handed}; late for the sector database: {late}. Needs reports: {done}/{schools} submitted.",
)
PROVINCE_DISTRICT = T(
    vi="• <b>{district}</b>: {schools} trường, {approved} HS đã duyệt, nhận {received}, giao {handed}, "
    "trễ CSDL {late} ({late_schools} trường), báo cáo {done}/{schools}",
    en="• <b>{district}</b>: {schools} schools, {approved} approved, {received} received, {handed} handed over, "
    "{late} late for the database ({late_schools} schools), reports {done}/{schools}",
)
PER_DISTRICT = T(vi="<b>Từng quận/huyện</b>", en="<b>Per district</b>")


def build_province_digest(ctx: SweepContext, *, province_id: int, lang: str = "vi") -> str:
    """The province in one message: totals, then one line per district (the figures of /tonghop)."""
    from reports.summary import _totals, build_summary
    from storage.models import Province
    from storage.scope import Scope

    summary = build_summary(
        ctx.session, scope=Scope(district_id=None, province_id=province_id), programme=ctx.programme, now=ctx.now
    )
    province = ctx.session.get(Province, province_id)
    t = summary.totals
    districts = sorted(
        (d for d in ctx.districts().values() if d.province_id == province_id), key=lambda d: (d.name, d.id)
    )
    lines = [
        PROVINCE_HEAD(lang, day=fmt_date(ctx.today), province=esc(province.name if province else province_id)),
        "",
        PROVINCE_TOTALS(
            lang,
            districts=len(districts),
            schools=len(summary.schools),
            approved=t.approved,
            received=t.received,
            handed=t.handed_over,
            late=t.late_csdl,
            done=summary.reports_submitted,
        ),
        "",
        PER_DISTRICT(lang),
    ]
    by_district = defaultdict(list)
    for s in summary.schools:
        by_district[s.district_id].append(s)
    for d in districts:
        schools = by_district.get(d.id, [])
        dt = _totals(schools, d.name)
        lines.append(
            PROVINCE_DISTRICT(
                lang,
                district=esc(d.name),
                schools=len(schools),
                approved=dt.approved,
                received=dt.received,
                handed=dt.handed_over,
                late=dt.late_csdl,
                late_schools=sum(1 for s in schools if s.late_csdl),
                done=sum(1 for s in schools if s.needs_report_submitted_at is not None),
            )
        )
    return "\n".join(lines)


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
    # Late is late: a handover confirmed after its deadline is counted too, apart from the open ones.
    late_done = {
        sid: n
        for sid, n in s.execute(
            select(Handover.school_id, func.count())
            .where(
                handovers.late_confirmed(
                    dialect=handovers.dialect_of(s), grace_hours=p.deadlines.handover_update_grace_hours
                ),
                Handover.status == HandoverStatus.ACTIVE,
                Handover.school_id.in_(ids),
            )
            .group_by(Handover.school_id)
        ).all()
    }
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
    # Same predicate as the partial index ix_handover_minutes_open: only handovers without signed minutes.
    minutes_days = p.deadlines.minutes_signed_days
    old_enough = case((Handover.handed_over_on <= ctx.today - timedelta(days=minutes_days), 1), else_=0)
    unsigned: dict[int, tuple[int, int]] = {
        sid: (n, int(late or 0))
        for sid, n, late in s.execute(
            select(Handover.school_id, func.count(), func.sum(old_enough))
            .where(
                Handover.minutes_signed_at.is_(None),
                Handover.status == HandoverStatus.ACTIVE,
                Handover.school_id.in_(ids),
            )
            .group_by(Handover.school_id)
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
    lines.append(REPORTS(lang, done=fmt_int(done, lang), total=fmt_int(len(schools), lang), deadline=deadline))
    counted = sum(_counted(v) for v in students.values())
    pending = sum(v.get(ReviewStatus.PENDING, 0) for v in students.values())
    lines.append(
        TOTALS(
            lang,
            students=fmt_int(counted, lang),
            approved=fmt_int(counted - pending, lang),
            pending=fmt_int(pending, lang),
            received=fmt_int(sum(q for q, _ in batches.values()), lang),
            handed=fmt_int(sum(h for _, h in batches.values()), lang),
            open_csdl=fmt_int(sum(open_csdl.values()), lang),
        )
    )
    if unsigned:
        lines.append(UNSIGNED(lang, n=sum(n for n, _ in unsigned.values())))
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
                students=fmt_int(_counted(st), lang),
                pending=fmt_int(st.get(ReviewStatus.PENDING, 0), lang),
                received=fmt_int(received, lang),
                handed=fmt_int(handed, lang),
                open_csdl=fmt_int(open_csdl.get(r.id, 0), lang),
                report=report,
            )
        )
        if past_deadline and r.needs_report_submitted_at is None:
            late_lines.append(LATE_REPORT(lang, school=name))
        if r.id in late_csdl:
            n, oldest = late_csdl[r.id]
            late_lines.append(
                LATE_CSDL(
                    lang,
                    school=name,
                    n=fmt_int(n, lang),
                    oldest=fmt_date(ctx.local_date(oldest - timedelta(microseconds=1))),
                )
            )
        if late_done.get(r.id):
            late_lines.append(LATE_CSDL_DONE(lang, school=name, n=fmt_int(late_done[r.id], lang)))
        if waiting.get(r.id):
            late_lines.append(LATE_DEVICES(lang, school=name, n=fmt_int(waiting[r.id], lang), days=waiting_days))
        if slow_review.get(r.id):
            late_lines.append(LATE_REVIEW(lang, school=name, n=fmt_int(slow_review[r.id], lang), days=review_days))
        if unsigned.get(r.id, (0, 0))[1]:
            late_lines.append(LATE_MINUTES(lang, school=name, n=fmt_int(unsigned[r.id][1], lang), days=minutes_days))
    lines += ["", LATE(lang)]
    lines += late_lines or [NOTHING_LATE(lang)]
    lines += _flags(ctx, ids, {r.id: r.name for r in schools}, lang)
    lines += _failed(ctx, district_id, lang, contact_email, contact_staff_id)
    lines += exports_line(ctx, district_id, lang)
    return "\n".join(lines)


EXPORTS_WEEK = T(
    vi="📤 Xuất tệp dữ liệu học sinh 7 ngày qua: {items}", en="📤 Pupil-data exports in the last 7 days: {items}"
)
EXPORTS_NONE = T(vi="không có", en="none")
EXPORTS_WEEKDAY = 0  # Monday: the week's line rides on that morning's digest
EXPORTS_SHOWN = 6


def exports_line(ctx: SweepContext, district_id: int, lang: str) -> list[str]:
    """Once a week (Monday's digest): who exported this district's pupil data in the last 7 days, from the
    access log (storage/access_log.py) — one line."""
    if ctx.today.weekday() != EXPORTS_WEEKDAY:
        return []
    from storage.access_log import exports_by_person

    counts = exports_by_person(ctx.session, district_id=district_id, since=ctx.now - timedelta(days=7), until=ctx.now)
    items = ", ".join(f"{esc(c.actor)} {c.count}" for c in counts[:EXPORTS_SHOWN])
    if len(counts) > EXPORTS_SHOWN:
        items += f", … (+{sum(c.count for c in counts[EXPORTS_SHOWN:])})"
    return ["", EXPORTS_WEEK(lang, items=items or EXPORTS_NONE(lang))]


def _counted(by_status: dict[str, int]) -> int:
    return sum(n for status, n in by_status.items() if status in STANDING)


def _flags(ctx: SweepContext, school_ids: list[int], names: dict[int, str], lang: str) -> list[str]:
    where = (Flag.school_id.in_(school_ids), Flag.resolved_at.is_(None))
    n = ctx.read(select(func.count()).select_from(Flag).where(*where)).scalar_one()
    if not n:
        return []
    rows = ctx.read(
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
    rows = ctx.read(query.limit(MAX_LISTED + 1)).all()
    if not rows:
        return []
    total = ctx.read(select(func.count()).select_from(query.subquery())).scalar_one()
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
    if kind not in ("district", "province") or not raw.isdigit():
        return None
    scope = Scope(district_id=int(raw)) if kind == "district" else Scope(district_id=None, province_id=int(raw))
    summary = build_summary(session, scope=scope, programme=programme, now=now)
    return render_chart(summary, lang=lang)
