"""/bangiao: one computer handed over to one student, with photo evidence.

Photos are ingested the moment they arrive (a bad photo is refused at once, with the store's Vietnamese
reason) and the form remembers them as JSON (sha256, paths, hashes); the Photo rows are written only by
``record_handover`` when the person saves, in the transaction that ends the form.

No orphan files: if the step that received a photo fails, its new file is removed at once (unless a
committed row uses the same image). A failed save keeps the files, because the engine keeps the form at the
summary for a retry. Files of a handover cancelled after its photos were sent are named by no row and no
form: ``storage.evidence.discard_orphan_files`` (a periodic sweep) removes them.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from conversations.fields import choice_field, date_field, parse_past_date, photo_field, text_field
from conversations.forms import minutes
from conversations.forms.base import Choice, Done, Form, FormContext, Invalid
from conversations.refusals import refusal
from core import vocabulary
from core.clock import fmt_date
from core.i18n import T
from core.messages import PhotoInput, esc
from core.vocabulary import PhotoKind, Role, flag_text
from storage import access_log, errors, evidence, handovers, receipts
from storage.models import Batch, Flag, Staff, Student
from storage.photos import PhotoRejected, PhotoStoreError

PICK_SERIALS_UP_TO = 12  # more free serials than this: typed, not a wall of buttons
MAX_SCENE_PHOTOS = 5

NO_STUDENTS = T(
    vi="Trường chưa có học sinh nào đã được duyệt và chưa nhận máy, nên chưa thể bàn giao. "
    "Đăng ký học sinh bằng /dangky; hiệu trưởng duyệt bằng /duyet.",
    en="No approved student of the school is waiting for a computer. Register with /dangky; the principal "
    "approves with /duyet.",
)
NO_BATCHES = T(
    vi="Trường chưa có lô máy nào còn máy để bàn giao. Hiệu trưởng ghi nhận máy nhận được bằng /nhanmay "
    "(từ Phòng GD&ĐT) hoặc /taitro (nhà tài trợ khác).",
    en="The school has no batch with computers left. The principal records received computers with /nhanmay "
    "or /taitro.",
)
NO_MATCH = T(
    vi="Không tìm thấy học sinh nào khớp «{q}» trong số học sinh đã duyệt, chưa nhận máy của trường. "
    "Vui lòng gõ lại một phần họ tên (một chữ là đủ) hoặc mã định danh.",
    en="No approved student without a computer matches “{q}”. Type part of the name or the student code.",
)
SERIAL_NOT_FREE = T(
    vi="Số sê-ri «{v}» không thuộc lô này hoặc đã được bàn giao. Ví dụ số còn trống: {free}.",
    en="Serial “{v}” is not in this batch or was already handed over. Free serials, e.g.: {free}.",
)
SAVED = T(
    vi="✅ Đã ghi nhận bàn giao #{id}: {kind} {model}{serial} cho học sinh {student}, ngày {day}.\n"
    "Hiệu trưởng cần cập nhật vào CSDL ngành chậm nhất trong ngày {due}.",
    en="✅ Handover #{id} recorded: {kind} {model}{serial} to {student} on {day}.\n"
    "The principal must update the sector database by the end of {due}.",
)
FLAGGED = T(
    vi="⚠️ Bàn giao cần hiệu trưởng xem lại:\n{lines}",
    en="⚠️ This handover needs the principal's review:\n{lines}",
)
NOTIFY_PRINCIPAL = T(
    vi="⚠️ Bàn giao #{id} (học sinh {student}, ngày {day}, do {by} ghi nhận) cần xem lại:\n{lines}",
    en="⚠️ Handover #{id} ({student}, {day}, recorded by {by}) needs review:\n{lines}",
)
NOTIFY_OTHER = T(
    vi="⚠️ Bàn giao #{id} của trường bạn (ngày {day}) bị đánh dấu cần xem lại:\n{lines}",
    en="⚠️ Your school's handover #{id} ({day}) was flagged for review:\n{lines}",
)


# --- the student --------------------------------------------------------------------------------------------


def _start(ctx: FormContext) -> Done | None:
    if not handovers.students_to_serve(ctx.session, school_id=ctx.staff.school_id, limit=1):
        return Done(NO_STUDENTS)
    if not receipts.batches_with_devices_left(ctx.session, school_id=ctx.staff.school_id):
        return Done(NO_BATCHES)
    return None


def _parse_query(text: str, ctx: FormContext) -> str:
    query = " ".join(text.split())[:60]
    if not handovers.students_to_serve(ctx.session, school_id=ctx.staff.school_id, query=query, limit=1):
        raise Invalid(NO_MATCH, q=esc(query))
    return query


def _new_query(ctx: FormContext, value: Any) -> None:
    ctx.values.pop("student", None)  # a new search asks which student again
    # The list shows pupils other teachers registered: a read of pupil data, logged like /tonghop's.
    shown = handovers.students_to_serve(ctx.session, school_id=ctx.staff.school_id, query=value or "", limit=10)
    access_log.record_access(
        ctx.session, actor=ctx.staff, role=ctx.staff.role, what=access_log.SEARCH, scope=ctx.scope,
        pupils=len(shown), now=ctx.now,
    )  # fmt: skip
    return None


def _student_label(st: Student) -> str:
    return f"{st.full_name} — {st.class_name} — {st.code}"


def _student_options(ctx: FormContext) -> list[Choice]:
    found = handovers.students_to_serve(
        ctx.session, school_id=ctx.staff.school_id, query=ctx.values.get("student_query") or "", limit=10
    )
    return [Choice(st.id, _student_label(st)) for st in found]


# --- the batch and serial -----------------------------------------------------------------------------------


def _batch_options(ctx: FormContext) -> list[Choice]:
    return [
        Choice(b.id, receipts.batch_label(b, ctx.lang))
        for b in receipts.batches_with_devices_left(ctx.session, school_id=ctx.staff.school_id)
    ]


def _batch_chosen(ctx: FormContext, batch_id: Any) -> None:
    """Remember how this batch's serial is asked (none / tap / type) and forget an earlier batch's serial."""
    for key in ("serial_pick", "serial_typed"):
        ctx.values.pop(key, None)
    if not receipts.batch_has_serials(ctx.session, batch_id=int(batch_id)):
        ctx.values["_serial_mode"] = "none"
    else:
        free = receipts.free_serials(ctx.session, batch_id=int(batch_id))
        ctx.values["_serial_mode"] = "pick" if len(free) <= PICK_SERIALS_UP_TO else "type"
    return None


def _serial_options(ctx: FormContext) -> list[Choice]:
    return [Choice(s, s) for s in receipts.free_serials(ctx.session, batch_id=int(ctx.values["batch"]))]


def _parse_serial(text: str, ctx: FormContext) -> str:
    serial = text.strip().upper()
    free = receipts.free_serials(ctx.session, batch_id=int(ctx.values["batch"]))
    if serial not in free:
        raise Invalid(SERIAL_NOT_FREE, v=esc(serial[:64]), free=esc(", ".join(free[:5])))
    return serial


# --- the date ---------------------------------------------------------------------------------------------


def _parse_handover_day(text: str, ctx: FormContext) -> date:
    day = parse_past_date(text, ctx)
    batch = ctx.session.get(Batch, int(ctx.values["batch"])) if ctx.values.get("batch") else None
    if batch is not None and day < batch.received_on:
        raise Invalid(
            T(
                vi="Ngày bàn giao {d} trước ngày trường nhận lô máy ({r}). Vui lòng kiểm tra lại.",
                en="{d} is before the batch was received ({r}).",
            ),
            d=fmt_date(day),
            r=fmt_date(batch.received_on),
        )
    return day


# --- photos -------------------------------------------------------------------------------------------------


def _accept_photo(ctx: FormContext, data: bytes, photo: PhotoInput) -> dict[str, Any]:
    """Ingest at once (the engine already refused files over 20 MB before downloading them)."""
    if ctx.photos is None:
        raise Invalid(
            T(
                vi="Máy chủ chưa được cấu hình nơi lưu ảnh; vui lòng báo quản trị viên.",
                en="The server has no photo storage configured; please tell the administrator.",
            )
        )
    try:
        stored = ctx.photos.ingest(data, mime_type=photo.mime_type, file_name=photo.file_name)
    except (PhotoRejected, PhotoStoreError) as exc:
        raise Invalid(refusal(exc, ctx.lang)) from None
    scene = {d.get("sha256") for d in _as_list(ctx.values.get("photos"))}
    if ctx.values.get("photos") is not None and stored.sha256 in scene:
        raise Invalid(
            T(
                vi="Ảnh này đã được gửi làm ảnh bàn giao. Ảnh biên bản là ảnh chụp tờ biên bản đã ký; "
                "chọn «Bỏ qua» nếu chưa có.",
                en="This photo was already sent as a handover photo. The minutes photo shows the signed minutes; "
                "skip if you have none.",
            )
        )
    ctx.hold_photo(stored)
    return evidence.stored_photo_to_dict(stored)


# --- save ---------------------------------------------------------------------------------------------------

_FIELD_OF_CODE = {
    "student_missing": "student",
    "not_approved": "student",
    "served": "student",
    "batch_missing": "batch",
    "batch_empty": "batch",
    "future_date": "handed_over_on",
    "before_receipt": "handed_over_on",
    "no_photo": "photos",
}


def _as_list(value: Any) -> list[dict[str, Any]]:
    """A photo field's value: one photo (max_photos 1), a list of them, or None when skipped."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _serial_field(ctx: FormContext) -> str | None:
    return {"pick": "serial_pick", "type": "serial_typed"}.get(ctx.values.get("_serial_mode", ""))


def _principals(session: Session, school_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Staff.id).where(Staff.school_id == school_id, Staff.role == Role.PRINCIPAL, Staff.active.is_(True))
        )
    )


def _save(ctx: FormContext) -> Done:
    v = ctx.values
    photos = [(evidence.stored_photo_from_dict(d), PhotoKind.SCENE) for d in _as_list(v.get("photos"))]
    photos += [(evidence.stored_photo_from_dict(d), PhotoKind.MINUTES) for d in _as_list(v.get("minutes"))]
    # No discard here if the save fails: the engine rolls the step back to the summary, and the form (with
    # these photos) stays alive for the retry. Files of a form cancelled later go with the orphan sweep.
    serial = v.get("serial_pick") or v.get("serial_typed")
    try:
        handover, flags = handovers.record_handover(
            ctx.session,
            student_id=int(v["student"]),
            batch_id=int(v["batch"]),
            serial=serial,
            handed_over_on=v["handed_over_on"],
            by=ctx.staff.id,
            photos=photos,
            programme=ctx.programme,
            now=ctx.now,
        )
    except errors.Conflict:
        # The transaction is spoiled: the engine rolls the step back (the form stays at the summary) and
        # apologises; on the retry the checks name what changed.
        raise
    except errors.RecordError as exc:
        field = _FIELD_OF_CODE.get(exc.code)
        if exc.code.startswith("serial"):
            field = _serial_field(ctx)
        raise Invalid(refusal(exc, ctx.lang), field=field) from None

    student = ctx.session.get(Student, handover.student_id)
    batch = ctx.session.get(Batch, handover.batch_id)
    # csdl_due_at is the midnight that ends the last allowed day: name that day.
    due = (handover.csdl_due_at - timedelta(microseconds=1)).astimezone(ctx.programme.tz).date()
    text = ctx.t(
        SAVED,
        id=handover.id,
        kind=vocabulary.DEVICE_TYPE_LABELS[batch.device_type](ctx.lang).lower(),
        model=esc(batch.brand_model),
        serial=f" (sê-ri {esc(serial)})" if serial else "",
        student=esc(student.full_name),
        day=fmt_date(handover.handed_over_on),
        due=fmt_date(due),
    )
    mine = [f for f in flags if f.handover_id == handover.id]
    if mine:
        text += "\n\n" + ctx.t(FLAGGED, lines=_lines(mine, ctx.lang))
        for principal in _principals(ctx.session, handover.school_id):
            if principal != ctx.staff.id:
                ctx.notify(
                    principal,
                    NOTIFY_PRINCIPAL,
                    id=handover.id,
                    student=esc(student.full_name),
                    day=fmt_date(handover.handed_over_on),
                    by=esc(ctx.staff.full_name),
                    lines=_lines(mine, ctx.lang),
                )
    own = _notify_other_handovers(ctx, [f for f in flags if f.handover_id != handover.id])
    if own:
        text += "\n\n" + own
    if v.get("minutes"):  # the signed sheet came with the handover: nothing to print
        return Done(text)
    return minutes.with_minutes(Done(text), minutes.handover_minutes_message(ctx, handover.id), ctx.lang)


def _lines(flags: list[Flag], lang: str) -> str:
    return "\n".join(f"• {esc(flag_text(f.kind, f.params, lang))}" for f in flags)


def _notify_other_handovers(ctx: FormContext, flags: list[Flag]) -> str:
    """Earlier handovers flagged because this one reused their photo: tell their school's principal. When that
    principal is the person recording this handover, the lines go into their own reply instead (returned)."""
    from storage.models import Handover

    by_handover: dict[int, list[Flag]] = {}
    for f in flags:
        by_handover.setdefault(f.handover_id, []).append(f)
    own: list[str] = []
    for handover_id, group in by_handover.items():
        other = ctx.session.get(Handover, handover_id)
        values = dict(id=other.id, day=fmt_date(other.handed_over_on), lines=_lines(group, ctx.lang))
        for principal in _principals(ctx.session, other.school_id):
            if principal == ctx.staff.id:
                own.append(ctx.t(NOTIFY_OTHER, **values))
            else:
                ctx.notify(principal, NOTIFY_OTHER, **values)
    return "\n\n".join(own)


BANGIAO = Form(
    name="bangiao",
    command="bangiao",
    title=T(vi="Bàn giao máy cho học sinh", en="Hand a computer over to a student"),
    description=T(vi="Bàn giao máy tính cho học sinh (kèm ảnh)", en="Hand a computer over (with photos)"),
    roles=frozenset({Role.TEACHER, Role.PRINCIPAL}),
    start=_start,
    fields=[
        text_field(
            "student_query",
            T(
                vi="Bàn giao cho học sinh nào? Gõ một phần họ tên (một chữ là đủ, có dấu hay không dấu đều được) hoặc mã định danh.",
                en="Which student? Type part of the name or the student code.",
            ),
            T(vi="Tìm học sinh", en="Student search"),
            parse=_parse_query,
            after=_new_query,
        ),
        choice_field(
            "student",
            T(vi="Chọn học sinh:", en="Choose the student:"),
            T(vi="Học sinh", en="Student"),
            _student_options,
            empty=NO_STUDENTS,
            editable=False,
        ),
        choice_field(
            "batch",
            T(vi="Máy thuộc lô nào?", en="Which batch is the computer from?"),
            T(vi="Lô máy", en="Batch"),
            _batch_options,
            after=_batch_chosen,
            empty=NO_BATCHES,
        ),
        choice_field(
            "serial_pick",
            T(vi="Số sê-ri của máy bàn giao?", en="Serial of the computer?"),
            T(vi="Số sê-ri", en="Serial"),
            _serial_options,
            columns=2,
            editable=False,
            when=lambda ctx: ctx.values.get("_serial_mode") == "pick",
            empty=T(vi="Lô này không còn số sê-ri nào trống.", en="No free serial left in this batch."),
        ),
        text_field(
            "serial_typed",
            T(
                vi="Gõ số sê-ri của máy bàn giao (in trên nhãn dưới đáy máy):",
                en="Type the serial of the computer (on the label under the machine):",
            ),
            T(vi="Số sê-ri", en="Serial"),
            parse=_parse_serial,
            editable=False,
            when=lambda ctx: ctx.values.get("_serial_mode") == "type",
        ),
        date_field(
            "handed_over_on",
            T(vi="Ngày bàn giao? (dd/mm/yyyy)", en="Handover date? (dd/mm/yyyy)"),
            T(vi="Ngày bàn giao", en="Handover date"),
            parse=_parse_handover_day,
            default_today=True,
        ),
        photo_field(
            "photos",
            T(
                vi="Gửi ảnh chụp buổi bàn giao (học sinh nhận máy). Có thể gửi nhiều ảnh, gửi xong bấm «Xong».",
                en="Send a photo of the handover (the student receiving the computer). Send several if you "
                "like, then tap “Done”.",
            ),
            T(vi="Ảnh bàn giao", en="Handover photos"),
            accept=_accept_photo,
            min_photos=1,
            max_photos=MAX_SCENE_PHOTOS,
        ),
        photo_field(
            "minutes",
            T(
                vi="Gửi ảnh biên bản bàn giao đã ký (không bắt buộc; chọn «Bỏ qua» nếu chưa có: bot sẽ gửi "
                "biên bản in sẵn sau khi lưu, ảnh bản đã ký gửi sau bằng /bienban).",
                en="Send a photo of the signed handover minutes (optional; skip if none: the bot sends the "
                "printable minutes after saving, and the signed copy can follow with /bienban).",
            ),
            T(vi="Ảnh biên bản", en="Minutes"),
            accept=_accept_photo,
            required=False,
        ),
    ],
    on_complete=_save,
)

FORMS = [BANGIAO]
