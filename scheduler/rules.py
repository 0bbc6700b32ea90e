"""The deadline rules, as a table: one ``Rule`` per thing the bot chases.
(Over 500 lines on purpose: each rule's finder, texts and table row are kept side by side, so adding a
reminder is one edit in one file; the digest, the longest, lives in ``scheduler/digest.py``.)

To add a reminder, write a finder (``ctx -> candidates``: a query for what is due at ``ctx.now``, and the
stage that is current for each subject) and its texts, and add one ``Rule`` to ``RULES``. Nothing else
changes: the sweep records candidates in the outbox under ``rule:subject:recipient:stage``, and the
deliverer sends them, putting items of the same rule and stage for the same person into one message with
the rule's header and footer.

Stages and catch-up: each finder yields only the stage that is current now (the latest whose moment has
passed). A stage that was never sent because the bot was down is not sent late: it is superseded by the
current one, and a pending row of an older stage is marked skipped by the sweep.

Quiet hours (``[reminders] quiet_hours``, 21:00-06:30) hold every message the scheduler sends, escalations
and the digest included: nothing here is urgent at night, and a handover that turns late at midnight should
not wake the district officer; it is recorded at once and delivered at the end of the quiet time.

Defaults come from the programme file (``[deadlines]``, ``[reminders]``):

| rule | subject | reminder | escalation to the district contact |
|---|---|---|---|
| needs_report | school | principal, mornings of deadline-3, -1, 0 | listing of late schools the morning after; then per school per day |
| csdl | handover | principal and recorder, morning of the due day | once, when due + grace has passed |
| devices_waiting | batch | principal, morning N days after receipt | morning 2N days after receipt |
| pending_review | student | principal, first morning after N days pending | - |
| minutes | handover | principal, once, the morning N days after a handover still without signed minutes | - |
| digest | district, province | - | district contact / province officers, every morning, with the chart |
| province | district | - | province officers, once per episode: an item of the district late N days |
| undeliverable | notification | - | when a person has no channel left (written by the deliverer) |
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache, partial

from sqlalchemy import func, select

from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.vocabulary import STANDING, HandoverStatus, ReviewStatus, Role
from scheduler.context import Candidate, Recipient, SweepContext, group_by
from scheduler.digest import digest_chart, find_digest
from storage import outbox
from storage.batching import any_of, chunks
from storage.models import Batch, Handover, School, Student

Finder = Callable[[SweepContext], Iterable[Candidate]]
# (session, programme, subject, now, lang) -> a PNG sent after the message on the person's chat, or None
Attachment = Callable[..., bytes | None]


@dataclass(frozen=True)
class Rule:
    name: str
    title: T  # what the rule is about: e-mail subject, digest listings
    find: Finder | None  # None: rows written by someone else (the deliverer)
    headers: Mapping[str, T] = field(default_factory=dict)  # stage kind -> header; {n} = number of items
    footers: Mapping[str, T] = field(default_factory=dict)
    attachment: Attachment | None = None  # drawn at delivery time, so it shows the figures of that moment


def stage_kind(stage: str) -> str:
    """ "remind:3" -> "remind", "late:2021-11-22" -> "late": items of one kind share a message."""
    return stage.split(":", 1)[0]


# --- shared texts ---------------------------------------------------------------------------------------------

DEVICE_LABEL = {
    "laptop": T(vi="máy tính xách tay", en="laptops"),
    "desktop": T(vi="máy tính để bàn", en="desktop computers"),
    "tablet": T(vi="máy tính bảng", en="tablets"),
}
PRINCIPAL_IS = T(vi="HT {name}, {phone}", en="principal {name}, {phone}")
NO_PRINCIPAL = T(
    vi="trường chưa có hiệu trưởng trong danh sách nhân sự", en="the school has no principal in the roster"
)
UNREACHABLE_NOTE = T(
    vi=" (chưa liên kết Telegram/Zalo và không có email: nhắc việc không đến được)",
    en=" (no Telegram/Zalo linked and no e-mail: reminders cannot reach them)",
)
NO_PRINCIPAL_PREFIX = T(
    vi="(Trường chưa có hiệu trưởng trong danh sách nên nhắc việc gửi tới phòng GD&ĐT) ",
    en="(The school has no principal in the roster, so this reminder goes to the district) ",
)


def principal_text(ctx: SweepContext, school_id: int, lang: str) -> str:
    """Who to call about a school: the principal's name and phone, and whether the bot can reach them."""
    principals = ctx.principals(school_id)
    if not principals:
        return NO_PRINCIPAL(lang)
    parts = []
    for p in principals:
        text = PRINCIPAL_IS(lang, name=esc(p.full_name), phone=p.phone_display)
        parts.append(text + ("" if p.reachable else UNREACHABLE_NOTE(lang)))
    return "; ".join(parts)


def school_recipients(ctx: SweepContext, school_id: int) -> tuple[list[Recipient], bool]:
    """The principals of a school; when it has none, the district contact (flag True), so nothing vanishes."""
    principals = ctx.principals(school_id)
    if principals:
        return [p.recipient() for p in principals], False
    contact = ctx.district_contact(ctx.school(school_id).district_id)
    return ([contact] if contact else []), True


def later(
    template: T,
    lang: str,
    values: Callable[[], dict],
    *,
    no_principal: bool = False,
    principal_of: tuple[SweepContext, int] | None = None,
) -> Callable[[], str]:
    """A candidate's text (``Candidate.body``), formatted only if the sweep records it: the values, and the
    principal it names (``principal_of``: read then), are not looked at on a tick where it is recorded already."""

    def body() -> str:
        kw = values()
        if principal_of is not None:
            kw["principal"] = principal_text(*principal_of, lang)
        text = template(lang, **kw)
        return NO_PRINCIPAL_PREFIX(lang) + text if no_principal else text

    return body


def pupils_of(ctx: SweepContext, handover_ids: list[int]) -> Callable[[], dict]:
    """The pupil (``full_name``, ``class_name``) of each handover, read for all of them when a text first needs one:
    only texts name pupils, so a tick that records nothing new reads no pupil (a thousand index probes nationally)."""

    @cache
    def load() -> dict:
        found = {}
        for chunk in chunks(ctx.session, handover_ids):
            found.update(
                (r.id, r)
                for r in ctx.read(
                    select(Handover.id, Student.full_name, Student.class_name)
                    .join(Student, Student.id == Handover.student_id)
                    .where(any_of(ctx.session, Handover.id, chunk))
                ).all()
            )
        return found

    return load


def _current(stages: list[tuple[str, datetime]], now: datetime) -> tuple[str, datetime] | None:
    """The latest stage whose moment has passed (stages sorted by moment)."""
    current = None
    for name, at in stages:
        if at <= now:
            current = (name, at)
    return current


# --- needs report (báo cáo nhu cầu) -------------------------------------------------------------------------

NEEDS_REMIND = T(
    vi="<b>{school}</b> chưa chốt báo cáo nhu cầu. Hạn chót: hết ngày {deadline} ({left}). "
    "Đã đăng ký {total} học sinh, {pending} hồ sơ đang chờ duyệt.",
    en="<b>{school}</b> has not submitted its needs report. Deadline: end of {deadline} ({left}). "
    "{total} students registered, {pending} waiting for review.",
)
LEFT_TODAY = T(vi="hôm nay là ngày cuối", en="today is the last day")
LEFT_DAYS = T(vi="còn {n} ngày", en="{n} days left")
NEEDS_LATE_LIST = T(
    vi="Hạn chót hết ngày {deadline}; {n} trường chưa chốt báo cáo nhu cầu:",
    en="Deadline was the end of {deadline}; {n} schools have not submitted their needs report:",
)
NEEDS_LATE_ITEM = T(vi="• <b>{school}</b> — {principal}", en="• <b>{school}</b> — {principal}")
NEEDS_LATE_DAY = T(
    vi="• <b>{school}</b> chưa chốt báo cáo nhu cầu, trễ {days} ngày (hạn hết ngày {deadline}) — {principal}",
    en="• <b>{school}</b> has not submitted its needs report, {days} days late (deadline {deadline}) — {principal}",
)


def needs_stages(ctx: SweepContext) -> list[tuple[str, datetime]]:
    deadline = ctx.programme.deadlines.needs_report
    stages = [
        (f"remind:{n}", ctx.morning(deadline - timedelta(days=n)))
        for n in ctx.programme.reminders.needs_report_days_before
    ]
    stages.append(("late", ctx.morning(deadline + timedelta(days=1))))
    day = deadline + timedelta(days=2)
    while ctx.morning(day) <= ctx.now:
        stages.append((f"late:{day.isoformat()}", ctx.morning(day)))
        day += timedelta(days=1)
    return sorted(stages, key=lambda s: s[1])


def find_needs_report(ctx: SweepContext) -> Iterable[Candidate]:
    current = _current(needs_stages(ctx), ctx.now)
    if current is None:
        return []
    stage, at = current
    rows = (
        ctx.read(select(School.id).where(School.active, School.needs_report_submitted_at.is_(None)).order_by(School.id))
        .scalars()
        .all()
    )
    ctx.shared_rows["unreported"] = rows
    if not rows:
        return []
    reminding = stage.startswith("remind:")
    ctx.load_schools(rows, principals=reminding)
    deadline = fmt_date(ctx.programme.deadlines.needs_report)
    until = ctx.end_of_day(ctx.local_date(at))  # each stage is worth its own day; then the next one takes over
    out: list[Candidate] = []
    if reminding:
        days_left = int(stage.split(":")[1])
        counts = _registration_counts(ctx, rows)
        for sid in rows:
            recipients, no_principal = school_recipients(ctx, sid)
            total, pending = counts.get(sid, (0, 0))
            for r in recipients:
                left = LEFT_TODAY(r.language) if days_left == 0 else LEFT_DAYS(r.language, n=days_left)
                values = dict(
                    school=esc(ctx.school(sid).name), deadline=deadline, left=left, total=total, pending=pending
                )
                line = later(NEEDS_REMIND, r.language, partial(dict, values), no_principal=no_principal)
                out.append(Candidate("needs_report", f"school:{sid}", r, stage, at, line, until=until))
        return out
    by_district = group_by(rows, lambda sid: ctx.school(sid).district_id)
    for district_id, sids in sorted(by_district.items()):
        contact = ctx.district_contact(district_id)
        if contact is None:
            continue
        lang = contact.language
        if stage == "late":
            listing = partial(_needs_late_listing, ctx, sids, lang, deadline)
            district = f"district:{district_id}"
            out.append(Candidate("needs_report", district, contact, stage, at, listing, escalation=True, until=until))
            continue
        days_late = (ctx.local_date(at) - ctx.programme.deadlines.needs_report).days
        for s in sids:
            values = partial(_school_name, ctx, s, days=days_late, deadline=deadline)
            line = later(NEEDS_LATE_DAY, lang, values, principal_of=(ctx, s))
            out.append(Candidate("needs_report", f"school:{s}", contact, stage, at, line, escalation=True, until=until))
    return out


def _school_name(ctx: SweepContext, school_id: int, **values) -> dict:
    return dict(values, school=esc(ctx.school(school_id).name))


def _needs_late_listing(ctx: SweepContext, sids: list[int], lang: str, deadline: str) -> str:
    lines = [NEEDS_LATE_LIST(lang, deadline=deadline, n=len(sids))]
    lines += [
        NEEDS_LATE_ITEM(lang, school=esc(ctx.school(s).name), principal=principal_text(ctx, s, lang)) for s in sids
    ]
    return "\n".join(lines)


# Registrations that count towards a school's needs: all but rejected and withdrawn ones (an approved entry
# whose withdrawal waits for the principal still counts).


def _registration_counts(ctx: SweepContext, school_ids: list[int]) -> dict[int, tuple[int, int]]:
    counted = STANDING
    rows = ctx.read(
        select(Student.school_id, Student.status, func.count())
        .where(Student.school_id.in_(school_ids), Student.status.in_(counted))
        .group_by(Student.school_id, Student.status)
    ).all()
    out: dict[int, tuple[int, int]] = {}
    for sid, status, n in rows:
        total, pending = out.get(sid, (0, 0))
        out[sid] = (total + n, pending + (n if status == ReviewStatus.PENDING else 0))
    return out


# --- sector-database update (cập nhật CSDL ngành) ----------------------------------------------------------

CSDL_REMIND = T(
    vi="• {school}: <b>{student}</b> (lớp {class_name}), bàn giao {handed}, hạn cập nhật hết ngày {due}",
    en="• {school}: <b>{student}</b> (class {class_name}), handed over {handed}, update due by end of {due}",
)
CSDL_LATE = T(
    vi="• <b>{school}</b>: {student} (lớp {class_name}), bàn giao {handed}, quá hạn từ hết ngày {due} — {principal}",
    en="• <b>{school}</b>: {student} (class {class_name}), handed over {handed}, late since end of {due} — {principal}",
)


def find_csdl(ctx: SweepContext) -> Iterable[Candidate]:
    """Handovers not confirmed "Đã cập nhật CSDL ngành". The query is the partial index's own predicate
    (ix_handover_csdl_open), so it reads only open handovers due within a day, whatever the table size."""
    grace = timedelta(hours=ctx.programme.deadlines.handover_update_grace_hours)
    horizon = ctx.now + timedelta(days=1)  # a reminder's moment is the morning of the due day: < 24 h before
    rows = ctx.read(
        select(
            Handover.id,
            Handover.school_id,
            Handover.recorded_by,
            Handover.handed_over_on,
            Handover.csdl_due_at,
        )
        .where(
            Handover.csdl_updated_at.is_(None),
            Handover.status == HandoverStatus.ACTIVE,
            Handover.csdl_due_at <= horizon,
        )
        .order_by(Handover.csdl_due_at, Handover.id)
    ).all()
    ctx.shared_rows["handovers"] = rows
    if not rows:
        return []
    late = [r for r in rows if ctx.now >= r.csdl_due_at + grace]
    reminded = [r for r in rows if ctx.now < r.csdl_due_at + grace]
    ctx.load_schools({r.school_id for r in rows}, principals=False)
    ctx.load_principals({r.school_id for r in reminded})
    ctx.load_people({r.recorded_by for r in reminded})
    pupils = pupils_of(ctx, [r.id for r in rows])
    out: list[Candidate] = []
    for r in late:
        contact = ctx.district_contact(ctx.school(r.school_id).district_id)
        if contact is not None:
            line = later(
                CSDL_LATE, contact.language, partial(_csdl_values, ctx, r, pupils), principal_of=(ctx, r.school_id)
            )
            out.append(
                Candidate("csdl", f"handover:{r.id}", contact, "late", r.csdl_due_at + grace, line, escalation=True)
            )
    for r in reminded:
        remind_at = ctx.morning(_csdl_due_day(ctx, r))
        if ctx.now < remind_at:
            continue
        recipients, no_principal = school_recipients(ctx, r.school_id)
        recorder = ctx.person(r.recorded_by)
        if recorder is not None and recorder.active and recorder.role != Role.PRINCIPAL:
            recipients.append(recorder.recipient())
        for rec in recipients:
            prefixed = no_principal and rec.staff_id != r.recorded_by
            line = later(CSDL_REMIND, rec.language, partial(_csdl_values, ctx, r, pupils), no_principal=prefixed)
            late_at = r.csdl_due_at + grace
            out.append(Candidate("csdl", f"handover:{r.id}", rec, "remind", remind_at, line, until=late_at))
    return out


def _csdl_due_day(ctx: SweepContext, r) -> date:
    return ctx.local_date(r.csdl_due_at - timedelta(microseconds=1))  # the last day that counts


def _csdl_values(ctx: SweepContext, r, pupils: Callable[[], dict]) -> dict:
    return _handover_values(ctx, r, pupils, due=fmt_date(_csdl_due_day(ctx, r)))


def _handover_values(ctx: SweepContext, r, pupils: Callable[[], dict], **more) -> dict:
    """What a line about a handover names: the school, the pupil and class (``pupils_of``), the handover day."""
    pupil = pupils()[r.id]
    return dict(
        school=esc(ctx.school(r.school_id).name),
        student=esc(pupil.full_name),
        class_name=esc(pupil.class_name),
        handed=fmt_date(r.handed_over_on),
        **more,
    )


# --- devices received but not handed over (máy chưa bàn giao) -------------------------------------------------

DEVICES_REMIND = T(
    vi="• {school}: lô {quantity} {device} ({model}) nhận ngày {received}: còn <b>{left}</b> máy chưa bàn giao "
    "sau {days} ngày",
    en="• {school}: batch of {quantity} {device} ({model}) received {received}: <b>{left}</b> not handed over "
    "after {days} days",
)
DEVICES_LATE = T(
    vi="• <b>{school}</b>: lô {quantity} {device} ({model}) nhận ngày {received}, còn {left} máy chưa bàn giao "
    "sau {days} ngày — {principal}",
    en="• <b>{school}</b>: batch of {quantity} {device} ({model}) received {received}, {left} not handed over "
    "after {days} days — {principal}",
)


def find_devices_waiting(ctx: SweepContext) -> Iterable[Candidate]:
    n = ctx.programme.deadlines.devices_waiting_days
    # The reminder goes out the morning N days after receipt: by today's morning, received_on <= today - N.
    latest = ctx.today - timedelta(days=n)
    rows = ctx.read(
        select(
            Batch.id,
            Batch.school_id,
            Batch.received_on,
            Batch.quantity,
            Batch.handed_over,
            Batch.device_type,
            Batch.brand_model,
        )
        .where(Batch.handed_over < Batch.quantity, Batch.received_on <= latest)
        .order_by(Batch.received_on, Batch.id)
    ).all()
    ctx.shared_rows["batches"] = rows
    if not rows:
        return []

    def late_at(r) -> datetime:
        return ctx.morning(r.received_on + timedelta(days=2 * n))

    ctx.load_schools({r.school_id for r in rows}, principals=False)
    ctx.load_principals({r.school_id for r in rows if ctx.now < late_at(r)})
    out: list[Candidate] = []
    for r in rows:
        school = ctx.school(r.school_id)
        remind_at = ctx.morning(r.received_on + timedelta(days=n))
        if ctx.now < remind_at:
            continue
        if ctx.now >= late_at(r):
            contact = ctx.district_contact(school.district_id)
            if contact is not None:
                values = partial(_devices_values, ctx, r, contact.language)
                line = later(DEVICES_LATE, contact.language, values, principal_of=(ctx, r.school_id))
                out.append(
                    Candidate("devices_waiting", f"batch:{r.id}", contact, "late", late_at(r), line, escalation=True)
                )
            continue
        recipients, no_principal = school_recipients(ctx, r.school_id)
        for rec in recipients:
            values = partial(_devices_values, ctx, r, rec.language)
            line = later(DEVICES_REMIND, rec.language, values, no_principal=no_principal)
            out.append(Candidate("devices_waiting", f"batch:{r.id}", rec, "remind", remind_at, line, until=late_at(r)))
    return out


def _devices_values(ctx: SweepContext, r, lang: str) -> dict:
    return dict(
        school=esc(ctx.school(r.school_id).name),
        quantity=r.quantity,
        model=esc(r.brand_model),
        device=DEVICE_LABEL.get(r.device_type, T(vi=r.device_type, en=r.device_type))(lang),
        received=fmt_date(r.received_on),
        left=r.quantity - r.handed_over,
        days=(ctx.today - r.received_on).days,
    )


# --- registrations waiting for the principal (hồ sơ chờ duyệt) ------------------------------------------------

REVIEW_REMIND = T(
    vi="• {school}: <b>{student}</b> (lớp {class_name}), đăng ký ngày {created}",
    en="• {school}: <b>{student}</b> (class {class_name}), registered {created}",
)


def find_pending_review(ctx: SweepContext) -> Iterable[Candidate]:
    n = timedelta(days=ctx.programme.deadlines.pending_review_days)
    rows = ctx.read(
        select(Student.id, Student.school_id, Student.full_name, Student.class_name, Student.created_at)
        .where(Student.status == ReviewStatus.PENDING, Student.created_at <= ctx.now - n)
        .order_by(Student.created_at, Student.id)
    ).all()
    ctx.shared_rows["pending"] = rows
    if not rows:
        return []
    ctx.load_schools({r.school_id for r in rows}, principals=True)
    out: list[Candidate] = []
    for r in rows:
        at = ctx.first_morning_from(r.created_at + n)
        if ctx.now < at:
            continue
        recipients, no_principal = school_recipients(ctx, r.school_id)
        for rec in recipients:
            line = later(REVIEW_REMIND, rec.language, partial(_review_values, ctx, r), no_principal=no_principal)
            out.append(Candidate("pending_review", f"student:{r.id}", rec, "remind", at, line))
    return out


def _review_values(ctx: SweepContext, r) -> dict:
    return dict(
        school=esc(ctx.school(r.school_id).name),
        student=esc(r.full_name),
        class_name=esc(r.class_name),
        created=fmt_date(ctx.local_date(r.created_at)),
    )


# --- handovers without signed minutes (biên bản đã ký) --------------------------------------------------------

MINUTES_REMIND = T(
    vi="• {school}: <b>{student}</b> (lớp {class_name}), bàn giao #{id} ngày {handed}",
    en="• {school}: <b>{student}</b> (class {class_name}), handover #{id} on {handed}",
)
# A reminder is worth a week: older handovers are no longer read by the sweep (the digest still counts them).
MINUTES_WORTH_DAYS = 7


def find_minutes(ctx: SweepContext) -> Iterable[Candidate]:
    """Handovers still without a photo of their signed minutes N days after (``minutes_signed_days``): the
    principal is reminded once (one stage). The query is the partial index's predicate
    (ix_handover_minutes_open) on a window of handover days, so it does not grow with the table."""
    n = ctx.programme.deadlines.minutes_signed_days
    latest = ctx.today - timedelta(days=n)
    rows = ctx.read(
        select(
            Handover.id,
            Handover.school_id,
            Handover.handed_over_on,
        )
        .where(
            Handover.minutes_signed_at.is_(None),
            Handover.status == HandoverStatus.ACTIVE,
            Handover.handed_over_on <= latest,
            Handover.handed_over_on >= latest - timedelta(days=MINUTES_WORTH_DAYS),
        )
        .order_by(Handover.handed_over_on, Handover.id)
    ).all()
    if not rows:
        return []
    ctx.load_schools({r.school_id for r in rows}, principals=True)
    pupils = pupils_of(ctx, [r.id for r in rows])
    out: list[Candidate] = []
    for r in rows:
        at = ctx.morning(r.handed_over_on + timedelta(days=n))
        if ctx.now < at:
            continue
        until = ctx.morning(r.handed_over_on + timedelta(days=n + MINUTES_WORTH_DAYS))
        recipients, no_principal = school_recipients(ctx, r.school_id)
        for rec in recipients:
            line = later(
                MINUTES_REMIND, rec.language, partial(_minutes_values, ctx, r, pupils), no_principal=no_principal
            )
            out.append(Candidate("minutes", f"handover:{r.id}", rec, "remind", at, line, until=until))
    return out


def _minutes_values(ctx: SweepContext, r, pupils: Callable[[], dict]) -> dict:
    return _handover_values(ctx, r, pupils, id=r.id)


# --- districts that stay late: escalation to the province (báo cáo vượt cấp lên Sở) ---------------------------

PROVINCE_LATE = T(
    vi="• <b>{district}</b>: {n} việc trễ quá {days} ngày (cũ nhất trễ từ {oldest}: {what}) — liên hệ {contact}",
    en="• <b>{district}</b>: {n} items late over {days} days (oldest late since {oldest}: {what}) — contact {contact}",
)
LATE_WHAT = {
    "csdl": T(vi="bàn giao chưa cập nhật CSDL ngành", en="handover not in the sector database"),
    "devices": T(vi="máy chưa bàn giao", en="computers not handed over"),
    "needs_report": T(vi="chưa chốt báo cáo nhu cầu", en="needs report not submitted"),
    "review": T(vi="hồ sơ chờ duyệt", en="registration waiting for review"),
}


def find_province(ctx: SweepContext) -> Iterable[Candidate]:
    """For each district of a province with officers: the items late at least N days (``[deadlines]
    province_escalation_days``, the same late items as the web view's late list). One message per district and
    episode: the stage names the day the oldest such item became late, so a district that stays late is reported
    once, and again only when a different item becomes the oldest."""
    from reports.late import late_in_provinces, oldest_late_in_provinces

    n = ctx.programme.deadlines.province_escalation_days
    if ctx.now < ctx.morning(ctx.today):
        return []
    out: list[Candidate] = []
    by_province = group_by([d for d in ctx.districts().values() if d.province_id is not None], lambda d: d.province_id)
    ctx.load_province_officers(by_province)
    # Which districts have items late N days or more, and since when the oldest (the stage): from the rows the other
    # finders read this tick when they all ran (every sweep), else read here. The items themselves are made only
    # to word an escalation that is new.
    older_than, rows = timedelta(days=n), ctx.late_rows()
    since = oldest_late_in_provinces(
        ctx.session, programme=ctx.programme, now=ctx.now, older_than=older_than, read_already=rows
    )

    @cache
    def late() -> dict[int, list]:
        items = late_in_provinces(
            ctx.session, programme=ctx.programme, now=ctx.now, older_than=older_than, read_already=rows
        )
        return group_by(items, lambda i: i.district_id)

    at = ctx.morning(ctx.today)
    for province_id, districts in sorted(by_province.items()):
        officers = ctx.province_officers(province_id)
        if not officers:
            continue
        for d in sorted(districts, key=lambda d: d.id):
            if d.id not in since:
                continue
            stage = f"late:{ctx.local_date(since[d.id]).isoformat()}"
            for rec in officers:
                line = later(PROVINCE_LATE, rec.language, partial(_province_values, ctx, d, late, rec.language, days=n))
                out.append(Candidate("province", f"district:{d.id}", rec, stage, at, line, escalation=True))
    return out


def _province_values(ctx: SweepContext, d, late: Callable[[], dict[int, list]], lang: str, *, days: int) -> dict:
    items = late()[d.id]
    oldest, contact = items[0], ctx.district_contact(d.id)
    return dict(
        district=esc(d.name),
        n=len(items),
        days=days,
        oldest=fmt_date(ctx.local_date(oldest.since)),
        what=LATE_WHAT[oldest.kind](lang) + f" ({esc(oldest.school_name)})",
        contact=esc(contact.name) if contact else "-",
    )


# --- the table ------------------------------------------------------------------------------------------------


RULES: tuple[Rule, ...] = (
    Rule(
        name="needs_report",
        title=T(vi="Báo cáo nhu cầu", en="Needs report"),
        find=find_needs_report,
        headers={
            "remind": T(
                vi="⏰ <b>Nhắc việc: chốt báo cáo nhu cầu</b>", en="⏰ <b>Reminder: submit the needs report</b>"
            ),
            "late": T(
                vi="⚠️ <b>Báo cáo vượt cấp: trường chưa chốt báo cáo nhu cầu</b>",
                en="⚠️ <b>Escalation: schools without a needs report</b>",
            ),
        },
        footers={
            "remind": T(
                vi="Gõ /duyet để duyệt hồ sơ đang chờ, rồi /chotbaocao để chốt báo cáo.",
                en="Type /duyet to review waiting registrations, then /chotbaocao to submit the report.",
            ),
            "late": T(vi="Gõ /tonghop để xem số liệu từng trường.", en="Type /tonghop for each school's figures."),
        },
    ),
    Rule(
        name="csdl",
        title=T(vi="Cập nhật CSDL ngành", en="Sector-database update"),
        find=find_csdl,
        headers={
            "remind": T(
                vi="⏰ <b>Nhắc việc: {n} bàn giao cần cập nhật CSDL ngành</b> (hạn {update_days} ngày sau bàn giao)",
                en="⏰ <b>Reminder: handovers to enter in the sector database ({n})</b>, due {update_days} day(s) after the handover",
            ),
            "late": T(
                vi="⚠️ <b>Báo cáo vượt cấp: {n} bàn giao quá hạn cập nhật CSDL ngành</b>",
                en="⚠️ <b>Escalation: handovers not entered in the sector database on time ({n})</b>",
            ),
        },
        footers={
            "remind": T(
                vi="Nhập vào CSDL ngành (csdl.moet.gov.vn), rồi hiệu trưởng gõ /duyet và chọn "
                "“Đã cập nhật CSDL ngành” để xác nhận.",
                en="Enter them at csdl.moet.gov.vn, then the principal types /duyet and taps "
                "“Đã cập nhật CSDL ngành” to confirm.",
            ),
            "late": T(
                vi="Theo Công văn {letter}: cập nhật muộn nhất {update_days} ngày sau bàn giao.",
                en="Letter {letter}: update at the latest {update_days} day(s) after the handover.",
            ),
        },
    ),
    Rule(
        name="devices_waiting",
        title=T(vi="Máy chưa bàn giao", en="Computers not handed over"),
        find=find_devices_waiting,
        headers={
            "remind": T(
                vi="💻 <b>Nhắc việc: máy đã nhận nhưng chưa bàn giao</b>",
                en="💻 <b>Reminder: computers received but not handed over</b>",
            ),
            "late": T(
                vi="⚠️ <b>Báo cáo vượt cấp: máy chưa bàn giao sau {waiting_days2} ngày</b>",
                en="⚠️ <b>Escalation: computers not handed over after {waiting_days2} days</b>",
            ),
        },
        footers={
            "remind": T(
                vi="Gõ /bangiao để ghi nhận bàn giao cho học sinh.",
                en="Type /bangiao to record a handover to a student.",
            ),
            "late": T(vi="Gõ /tonghop để xem số liệu từng trường.", en="Type /tonghop for each school's figures."),
        },
    ),
    Rule(
        name="pending_review",
        title=T(vi="Hồ sơ chờ duyệt", en="Registrations waiting for review"),
        find=find_pending_review,
        headers={
            "remind": T(
                vi="📝 <b>Nhắc việc: {n} hồ sơ đăng ký chờ duyệt quá {review_days} ngày</b>",
                en="📝 <b>Reminder: registrations waiting more than {review_days} days ({n})</b>",
            ),
        },
        footers={"remind": T(vi="Gõ /duyet để duyệt.", en="Type /duyet to review them.")},
    ),
    Rule(
        name="minutes",
        title=T(vi="Biên bản bàn giao đã ký", en="Signed handover minutes"),
        find=find_minutes,
        headers={
            "remind": T(
                vi="✍️ <b>Nhắc việc: {n} bàn giao chưa có biên bản đã ký sau {minutes_days} ngày</b>",
                en="✍️ <b>Reminder: handovers without signed minutes after {minutes_days} days ({n})</b>",
            ),
        },
        footers={
            "remind": T(
                vi="In biên bản (/bienban → «Lấy biên bản»), ký đủ các bên, rồi gửi ảnh bản đã ký bằng /bienban.",
                en="Print the minutes (/bienban → “Get the minutes”), have them signed, then send the photo with "
                "/bienban.",
            )
        },
    ),
    Rule(
        name="province",
        title=T(vi="Báo cáo vượt cấp lên Sở GD&ĐT", en="Escalation to the province"),
        find=find_province,
        headers={
            "late": T(
                vi="⚠️ <b>Báo cáo vượt cấp: quận/huyện có việc trễ quá {province_days} ngày</b>",
                en="⚠️ <b>Escalation: districts with items late over {province_days} days</b>",
            )
        },
        footers={
            "late": T(
                vi="Gõ /tonghop để xem số liệu, hoặc /web để mở trang theo dõi.",
                en="Type /tonghop for the figures, or /web for the progress pages.",
            )
        },
    ),
    Rule(
        name="digest",
        title=T(vi="Bản tin hằng ngày", en="Daily digest"),
        find=find_digest,
        attachment=digest_chart,
        footers={
            "day": T(
                vi="Gõ /tonghop để xem tổng hợp, /xuatfile để xuất tệp Excel.",
                en="Type /tonghop for the summary, /xuatfile for the spreadsheet.",
            )
        },
    ),
    Rule(
        name="undeliverable",
        title=T(vi="Không gửi được thông báo", en="Notifications not delivered"),
        find=None,
        headers={
            "late": T(
                vi="⚠️ <b>Không gửi được {n} thông báo</b>: người nhận không còn kênh liên lạc nào",
                en="⚠️ <b>Notifications not delivered ({n})</b>: the person has no channel left",
            )
        },
        footers={
            "late": T(
                vi="Hãy nhắc họ mở bot và chia sẻ số điện thoại để liên kết, hoặc bổ sung email "
                "trong danh sách nhân sự.",
                en="Ask them to open the bot and share their phone number, or add an e-mail to the roster.",
            )
        },
    ),
)
RULES_BY_NAME: dict[str, Rule] = {r.name: r for r in RULES}
MAX_ITEMS_PER_MESSAGE = 40


def compose(rule_name: str, stage: str, lines: list[str], *, lang: str, programme) -> str:
    """One message from the items of one rule and stage kind: header, items, footer."""
    rule = RULES_BY_NAME.get(rule_name)
    kind = stage_kind(stage)
    d = programme.deadlines
    values = dict(
        n=len(lines),
        review_days=d.pending_review_days,
        waiting_days=d.devices_waiting_days,
        waiting_days2=2 * d.devices_waiting_days,
        update_days=d.handover_update_days,
        minutes_days=d.minutes_signed_days,
        province_days=d.province_escalation_days,
        letter=programme.programme.letter,
    )
    parts = []
    if rule is not None and kind in rule.headers:
        parts.append(rule.headers[kind](lang, **values))
    parts.append("\n".join(lines))
    if rule is not None and kind in rule.footers:
        parts.append(rule.footers[kind](lang, **values))
    return "\n\n".join(p for p in parts if p)


NOTICE_TITLE = T(vi="Thông báo", en="Notice")  # a colleague's decision (storage.outbox.queue_notice)


def title(rule_name: str, lang: str = "vi") -> str:
    rule = RULES_BY_NAME.get(rule_name)
    if rule is not None:
        return rule.title(lang)
    return NOTICE_TITLE(lang) if rule_name == outbox.NOTICE else rule_name


def subject_line(rule_name: str, stage: str, *, lang: str, programme, n: int) -> str:
    """E-mail subject: the programme's name and the message's header, as plain text."""
    from core.messages import plain_text

    rule = RULES_BY_NAME.get(rule_name)
    kind = stage_kind(stage)
    if rule is not None and kind in rule.headers:
        text = plain_text(compose(rule_name, stage, [""] * n, lang=lang, programme=programme).split("\n")[0])
    else:
        text = title(rule_name, lang)
    return f"[{programme.programme.name}] {text.strip()}"
