"""Where are we? One summary per scope (a school, or a district school by school), from aggregate queries.

Every figure comes from a ``GROUP BY school_id`` query filtered through the asker's ``Scope``: the cost
grows with the number of schools, never with the number of students, and no row outside the scope is read.

Definitions (the same as the needs report and the scheduler's digest):
- registered: standing registrations (pending, approved, approved-but-withdrawal-requested); rejected and
  withdrawn ones do not count;
- approved: what the needs report counts (``core.vocabulary.REPORTED``); the category and need
  breakdowns count these;
- received: computers in batches, by source; handed over: active handovers; waiting: received - handed over;
- late_csdl: active handovers not confirmed in the sector database whose due time (plus the programme's
  grace hours) has passed at ``now`` (late and still open);
- late_csdl_confirmed: active handovers confirmed in the sector database only after that moment (late, but
  done): late is late, so both are counted, separately;
- open_flags: photo flags not resolved;
- unsigned_minutes: active handovers without a photo of their signed minutes (biên bản đã ký).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select
from sqlmodel import Session

from core.clock import fmt_date, fmt_local
from core.i18n import T
from core.messages import esc
from core.programme import Programme
from core.text import fmt_int
from core.vocabulary import NEED_LABELS, REPORTED, STANDING, HandoverStatus, Need, Role, Source
from storage import handovers
from storage.models import Batch, District, Flag, Handover, Province, School, Staff, Student
from storage.scope import Scope

# Telegram's limit is 4,096 characters; keep a margin for the adapter (and Zalo splits at 2,000 anyway).
MAX_TEXT = 4000


@dataclass
class SchoolSummary:
    school_id: int | None  # None for the totals row
    code: str
    name: str
    level: str = ""
    district_id: int | None = None
    principal_name: str | None = None
    principal_phone: str | None = None  # E.164
    students_by_category: dict[str, int] = field(default_factory=dict)
    students_by_need: dict[str, int] = field(default_factory=dict)
    registered: int = 0
    approved: int = 0
    pending: int = 0
    received_programme: int = 0
    received_other: int = 0
    handed_over: int = 0
    waiting: int = 0
    late_csdl: int = 0  # late and still not confirmed
    late_csdl_confirmed: int = 0  # confirmed, but after the deadline
    open_flags: int = 0
    unsigned_minutes: int = 0
    no_consent: int = 0  # standing registrations whose guardian's consent is not recorded (storage.consent)
    needs_report_submitted_at: datetime | None = None

    @property
    def received(self) -> int:
        return self.received_programme + self.received_other

    @property
    def has_data(self) -> bool:
        return bool(self.registered or self.received or self.handed_over)

    @property
    def needs_attention(self) -> bool:
        return bool(self.late_csdl or self.open_flags)


@dataclass
class Summary:
    scope: Scope
    title: str  # the school's or the district's name
    generated_at: datetime
    schools: list[SchoolSummary]
    totals: SchoolSummary
    needs_report_due: datetime  # end of the deadline day, UTC
    category_labels: dict[str, tuple[str, str]]  # code -> (vi, en), in the programme's order
    tz_name: str = "Asia/Ho_Chi_Minh"

    @property
    def is_district(self) -> bool:
        return self.scope.is_district

    @property
    def reports_submitted(self) -> int:
        return sum(1 for s in self.schools if s.needs_report_submitted_at is not None)

    @property
    def past_deadline(self) -> bool:
        return self.generated_at >= self.needs_report_due

    def category_label(self, code: str, lang: str = "vi") -> str:
        vi, en = self.category_labels.get(code, (code, code))
        return en if lang == "en" else vi


_SUMMED = (
    "registered",
    "approved",
    "pending",
    "received_programme",
    "received_other",
    "handed_over",
    "waiting",
    "late_csdl",
    "late_csdl_confirmed",
    "open_flags",
    "unsigned_minutes",
    "no_consent",
)


def build_summary(session: Session, *, scope: Scope, programme: Programme, now: datetime) -> Summary:
    """The figures for ``scope`` at ``now`` (aware UTC): a few aggregate queries, whatever the data size."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    school_rows = session.execute(
        select(School.id, School.code, School.name, School.level, School.district_id, School.needs_report_submitted_at)
        .where(scope.filter(School.id), School.active)
        .order_by(School.name, School.id)
    ).all()
    by_id = {
        r.id: SchoolSummary(
            school_id=r.id,
            code=r.code,
            name=r.name,
            level=r.level,
            district_id=r.district_id,
            needs_report_submitted_at=r.needs_report_submitted_at,
        )
        for r in school_rows
    }

    # The principal shown is the longest-serving active one (the lowest id) when a school has two.
    for sid, name, phone in session.execute(
        select(Staff.school_id, Staff.full_name, Staff.phone)
        .where(scope.filter(Staff.school_id), Staff.role == Role.PRINCIPAL, Staff.active)
        .order_by(Staff.school_id, Staff.id)
    ).all():
        s = by_id.get(sid)
        if s is not None and s.principal_name is None:
            s.principal_name, s.principal_phone = name, phone

    # One pass over the students (a province has 200,000): the status split, consent, category and need in
    # one GROUP BY that the covering index ix_student_summary answers without touching the table (its column
    # order is the grouping's, so SQLite streams the groups without a sort). Read through Core: at ~12 rows
    # a school the ORM's row handling cost more than the scan.
    reported = func.sum(case((Student.status.in_(REPORTED), 1), else_=0))
    no_consent = func.sum(case((Student.consent_at.is_(None), 1), else_=0))  # storage.consent: not recorded
    for sid, category, need, n, n_reported, unconsented in session.connection().execute(
        select(Student.school_id, Student.category, Student.need, func.count(), reported, no_consent)
        .where(scope.filter(Student.school_id), Student.status.in_(STANDING))
        .group_by(Student.school_id, Student.category, Student.need)
    ):
        s = by_id.get(sid)
        if s is None:
            continue
        n_reported = int(n_reported or 0)
        s.no_consent += int(unconsented or 0)
        s.registered += n
        s.pending += n - n_reported
        if n_reported:
            s.approved += n_reported
            s.students_by_category[category] = s.students_by_category.get(category, 0) + n_reported
            s.students_by_need[need] = s.students_by_need.get(need, 0) + n_reported

    for sid, source, qty in session.execute(
        select(Batch.school_id, Batch.source, func.sum(Batch.quantity))
        .where(scope.filter(Batch.school_id))
        .group_by(Batch.school_id, Batch.source)
    ).all():
        s = by_id.get(sid)
        if s is None:
            continue
        if source == Source.PROGRAMME:
            s.received_programme += int(qty or 0)
        else:
            s.received_other += int(qty or 0)

    # "Late" is due + grace <= now, i.e. due <= now - grace: the comparison stays on the indexed column.
    grace = programme.deadlines.handover_update_grace_hours
    is_late = case((handovers.late_open(now=now, grace_hours=grace), 1), else_=0)
    was_late = case((handovers.late_confirmed(dialect=handovers.dialect_of(session), grace_hours=grace), 1), else_=0)
    unsigned = case((Handover.minutes_signed_at.is_(None), 1), else_=0)
    for sid, handed, late, late_done, no_minutes in session.execute(
        select(Handover.school_id, func.count(), func.sum(is_late), func.sum(was_late), func.sum(unsigned))
        .where(scope.filter(Handover.school_id), Handover.status == HandoverStatus.ACTIVE)
        .group_by(Handover.school_id)
    ).all():
        s = by_id.get(sid)
        if s is not None:
            s.handed_over, s.late_csdl, s.late_csdl_confirmed = handed, int(late or 0), int(late_done or 0)
            s.unsigned_minutes = int(no_minutes or 0)

    for sid, n in session.execute(
        select(Flag.school_id, func.count())
        .where(scope.filter(Flag.school_id), Flag.resolved_at.is_(None))
        .group_by(Flag.school_id)
    ).all():
        s = by_id.get(sid)
        if s is not None:
            s.open_flags = n

    schools = list(by_id.values())
    for s in schools:
        # Never negative: a handover recorded against more computers than received is a data problem the
        # flags and the digest point at, not a "-1 waiting" to show.
        s.waiting = max(0, s.received - s.handed_over)

    if scope.school_id is not None:
        title = schools[0].name if schools else ""
    elif scope.is_province:
        province = session.get(Province, scope.province_id)
        title = province.name if province else ""
    else:
        district = session.get(District, scope.district_id)
        title = district.name if district else ""
    return Summary(
        scope=scope,
        title=title,
        generated_at=now,
        schools=schools,
        totals=_totals(schools, title),
        needs_report_due=programme.needs_report_due,
        category_labels={c.code: (c.label_vi, c.label_en) for c in programme.categories},
        tz_name=programme.programme.timezone,
    )


def _totals(schools: list[SchoolSummary], title: str) -> SchoolSummary:
    total = SchoolSummary(school_id=None, code="", name=title)
    by_category: dict[str, int] = defaultdict(int)
    by_need: dict[str, int] = defaultdict(int)
    for s in schools:
        for name in _SUMMED:
            setattr(total, name, getattr(total, name) + getattr(s, name))
        for k, v in s.students_by_category.items():
            by_category[k] += v
        for k, v in s.students_by_need.items():
            by_need[k] += v
    total.students_by_category, total.students_by_need = dict(by_category), dict(by_need)
    return total


# --- the text for a phone ----------------------------------------------------------------------------------

HEAD = T(
    vi="📊 <b>Tổng hợp — {title}</b>\n<i>Số liệu lúc {at}</i>", en="📊 <b>Summary — {title}</b>\n<i>As of {at}</i>"
)
SCHOOLS_COUNT = T(vi="{n} trường", en="{n} schools")
STUDENTS = T(
    vi="👩‍🎓 <b>Học sinh có nhu cầu:</b> {approved} đã duyệt, {pending} chờ duyệt",
    en="👩‍🎓 <b>Students in need:</b> {approved} approved, {pending} waiting for review",
)
BY_CATEGORY = T(vi="• Đối tượng: {items}", en="• Group: {items}")
BY_NEED = T(vi="• Nhu cầu: {items}", en="• Need: {items}")
RECEIVED = T(
    vi="💻 <b>Máy đã nhận:</b> {n} (chương trình {programme}, nhà tài trợ khác {other})",
    en="💻 <b>Computers received:</b> {n} (programme {programme}, other sponsors {other})",
)
HANDED = T(
    vi="🤝 <b>Đã bàn giao:</b> {handed} · chờ bàn giao {waiting}",
    en="🤝 <b>Handed over:</b> {handed} · waiting {waiting}",
)
LATE_CSDL = T(
    vi="⚠️ <b>Trễ cập nhật CSDL ngành: {n}</b> ({open} chưa cập nhật, {done} đã cập nhật sau hạn)",
    en="⚠️ <b>Late for the sector database: {n}</b> ({open} still open, {done} confirmed after the deadline)",
)
NO_LATE = T(vi="✅ Không có bàn giao trễ cập nhật CSDL ngành", en="✅ No handover late for the sector database")
FLAGS = T(vi="🚩 <b>Ảnh bị gắn cờ chưa xử lý: {n}</b>", en="🚩 <b>Open photo flags: {n}</b>")
UNSIGNED = T(
    vi="✍️ Bàn giao chưa có biên bản đã ký: {n} (gửi ảnh bằng /bienban)",
    en="✍️ Handovers without signed minutes: {n} (send the photo with /bienban)",
)
NO_CONSENT = T(
    vi="🔒 Hồ sơ chưa ghi nhận đồng ý của phụ huynh: <b>{n}</b> (hoàn tất bằng /dongy)",
    en="🔒 Entries without a recorded parent's consent: <b>{n}</b> (complete them with /dongy)",
)
REPORT_DONE = T(vi="📝 Báo cáo nhu cầu: đã chốt {at}", en="📝 Needs report: submitted {at}")
REPORT_OPEN = T(
    vi="📝 Báo cáo nhu cầu: <b>chưa chốt</b> (hạn hết ngày {due})",
    en="📝 Needs report: <b>not submitted</b> (due end of {due})",
)
REPORT_LATE = T(
    vi="📝 Báo cáo nhu cầu: <b>CHƯA CHỐT, đã quá hạn {due}</b>",
    en="📝 Needs report: <b>NOT SUBMITTED, past the {due} deadline</b>",
)
REPORTS_DISTRICT = T(
    vi="📝 Báo cáo nhu cầu: {done}/{total} trường đã chốt (hạn hết ngày {due})",
    en="📝 Needs reports: {done}/{total} schools submitted (due end of {due})",
)
PER_SCHOOL = T(
    vi="<b>Từng trường</b> (duyệt · nhận · giao · chờ)",
    en="<b>Per school</b> (approved · received · handed over · waiting)",
)
SCHOOL_LINE = T(
    vi="• {name}: {approved} · {received} · {handed} · {waiting}{marks}",
    en="• {name}: {approved} · {received} · {handed} · {waiting}{marks}",
)
MARK_LATE = T(vi=" ⚠️CSDL {n}", en=" ⚠️DB {n}")
MARK_LATE_DONE = T(vi=" ⏱CSDL {n}", en=" ⏱DB {n}")
MARK_FLAGS = T(vi=" 🚩{n}", en=" 🚩{n}")
MARK_NO_REPORT = T(vi=" 📝chưa chốt", en=" 📝not submitted")
LEGEND = T(
    vi="<i>⚠️ trễ CSDL ngành, chưa cập nhật · ⏱ đã cập nhật sau hạn · 🚩 ảnh gắn cờ · 📝 báo cáo nhu cầu</i>",
    en="<i>⚠️ late for the sector database, still open · ⏱ confirmed after the deadline · 🚩 photo flags · "
    "📝 needs report</i>",
)
TAIL = T(
    vi="• … và {n} trường khác: {approved} đã duyệt · {received} nhận · {handed} giao · {waiting} chờ",
    en="• … and {n} more schools: {approved} approved · {received} received · {handed} handed over · {waiting} waiting",
)
TAIL_NOTE = T(vi="<i>Danh sách đầy đủ: /xuatfile</i>", en="<i>Full list: /xuatfile</i>")
NO_SCHOOLS = T(vi="Chưa có trường nào trong phạm vi của bạn.", en="No school in your scope yet.")
EMPTY = T(vi="Chưa có dữ liệu.", en="No data yet.")

_MAX_NAME = 40


def short_school_name(name: str) -> str:
    """'Trường Tiểu học Phú Hòa 1' -> 'Tiểu học Phú Hòa 1': every line says "Trường", the rest tells schools
    apart (and keeps the level, which people search by); very long names are cut."""
    if name.startswith("Trường ") and len(name) > len("Trường "):
        name = name[len("Trường ") :]
    return name if len(name) <= _MAX_NAME else name[: _MAX_NAME - 1] + "…"


def _items(counts: dict[str, int], order: list[str], label, lang: str = "vi") -> str:
    keys = [k for k in order if counts.get(k)] + sorted(k for k in counts if k not in order and counts[k])
    return ", ".join(f"{label(k)} {fmt_int(counts[k], lang)}" for k in keys) or "0"


def format_summary(summary: Summary, *, lang: str = "vi") -> str:
    """HTML-lite text (only <b>, <i>; names escaped) that reads on a phone and stays under 4,000 characters."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(summary.tz_name)
    t = summary.totals
    due = fmt_date((summary.needs_report_due - timedelta(microseconds=1)).astimezone(tz).date())
    head = HEAD(lang, title=esc(summary.title), at=fmt_local(summary.generated_at, tz))
    if summary.is_district:
        head += f" · {SCHOOLS_COUNT(lang, n=fmt_int(len(summary.schools), lang))}"
    lines = [head, ""]
    if not summary.schools:
        return "\n".join([*lines, NO_SCHOOLS(lang)])
    lines.append(STUDENTS(lang, approved=fmt_int(t.approved, lang), pending=fmt_int(t.pending, lang)))
    if t.approved:
        cat_order = list(summary.category_labels)
        lines.append(
            BY_CATEGORY(
                lang,
                items=_items(t.students_by_category, cat_order, lambda k: esc(summary.category_label(k, lang)), lang),
            )
        )
        need_order = [str(n) for n in Need]
        lines.append(
            BY_NEED(
                lang,
                items=_items(
                    t.students_by_need,
                    need_order,
                    lambda k: NEED_LABELS[k](lang) if k in NEED_LABELS else esc(k),
                    lang,
                ),
            )
        )
    lines.append(
        RECEIVED(
            lang,
            n=fmt_int(t.received, lang),
            programme=fmt_int(t.received_programme, lang),
            other=fmt_int(t.received_other, lang),
        )
    )
    lines.append(HANDED(lang, handed=fmt_int(t.handed_over, lang), waiting=fmt_int(t.waiting, lang)))
    late = t.late_csdl + t.late_csdl_confirmed
    lines.append(
        LATE_CSDL(
            lang, n=fmt_int(late, lang), open=fmt_int(t.late_csdl, lang), done=fmt_int(t.late_csdl_confirmed, lang)
        )
        if late
        else NO_LATE(lang)
    )
    if t.open_flags:
        lines.append(FLAGS(lang, n=fmt_int(t.open_flags, lang)))
    if t.unsigned_minutes:
        lines.append(UNSIGNED(lang, n=fmt_int(t.unsigned_minutes, lang)))
    if t.no_consent:
        lines.append(NO_CONSENT(lang, n=fmt_int(t.no_consent, lang)))
    if summary.is_district:
        lines.append(
            REPORTS_DISTRICT(
                lang,
                done=fmt_int(summary.reports_submitted, lang),
                total=fmt_int(len(summary.schools), lang),
                due=due,
            )
        )
    else:
        s = summary.schools[0]
        if s.needs_report_submitted_at is not None:
            lines.append(REPORT_DONE(lang, at=fmt_local(s.needs_report_submitted_at, tz)))
        elif summary.past_deadline:
            lines.append(REPORT_LATE(lang, due=due))
        else:
            lines.append(REPORT_OPEN(lang, due=due))
        return "\n".join(lines)
    if not any(s.has_data for s in summary.schools):
        lines += ["", EMPTY(lang)]
        return "\n".join(lines)
    lines += ["", PER_SCHOOL(lang)]
    return _fit_school_lines(summary, lines, lang)


def _school_line(s: SchoolSummary, lang: str, *, past_deadline: bool) -> str:
    marks = ""
    if s.late_csdl:
        marks += MARK_LATE(lang, n=fmt_int(s.late_csdl, lang))
    if s.late_csdl_confirmed:
        marks += MARK_LATE_DONE(lang, n=fmt_int(s.late_csdl_confirmed, lang))
    if s.open_flags:
        marks += MARK_FLAGS(lang, n=s.open_flags)
    if s.needs_report_submitted_at is None and past_deadline:
        marks += MARK_NO_REPORT(lang)
    return SCHOOL_LINE(
        lang,
        name=esc(short_school_name(s.name)),
        approved=fmt_int(s.approved, lang),
        received=fmt_int(s.received, lang),
        handed=fmt_int(s.handed_over, lang),
        waiting=fmt_int(s.waiting, lang),
        marks=marks,
    )


def _fit_school_lines(summary: Summary, head: list[str], lang: str) -> str:
    """School by school in name order; when the whole list would not fit, schools that need attention
    (late, flagged, report missing) keep their line and the quiet ones are summed up in one tail line."""
    past = summary.past_deadline
    lines = {id(s): _school_line(s, lang, past_deadline=past) for s in summary.schools}
    footer = ["", LEGEND(lang)]

    def render(shown: list[SchoolSummary], hidden: list[SchoolSummary]) -> str:
        body = [lines[id(s)] for s in shown]
        if hidden:
            body.append(
                TAIL(
                    lang,
                    n=fmt_int(len(hidden), lang),
                    approved=fmt_int(sum(s.approved for s in hidden), lang),
                    received=fmt_int(sum(s.received for s in hidden), lang),
                    handed=fmt_int(sum(s.handed_over for s in hidden), lang),
                    waiting=fmt_int(sum(s.waiting for s in hidden), lang),
                )
            )
            body.append(TAIL_NOTE(lang))
        return "\n".join([*head, *body, *footer])

    text = render(summary.schools, [])
    if len(text) <= MAX_TEXT:
        return text

    def urgency(s: SchoolSummary) -> tuple:
        missing = s.needs_report_submitted_at is None and past
        return (s.late_csdl + s.open_flags > 0 or missing, s.late_csdl, s.open_flags, missing, s.late_csdl_confirmed)

    # Keep the most urgent schools first, as many as fit with the tail line; show them in name order.
    ranked = sorted(summary.schools, key=urgency, reverse=True)
    budget = MAX_TEXT - len(render([], summary.schools))
    keep: set[int] = set()
    for s in ranked:
        cost = len(lines[id(s)]) + 1
        if cost > budget:
            break
        keep.add(id(s))
        budget -= cost
    shown = [s for s in summary.schools if id(s) in keep]
    hidden = [s for s in summary.schools if id(s) not in keep]
    return render(shown, hidden)
