"""Minutes (biên bản) in the chat: the printable PDF after /bangiao and /nhanmay, and /bienban to get a
handover's minutes again or send the photo of the signed sheet later.

The PDF files go under ``<media>/minutes/`` with random names; the name people see is built from our own
codes (``bien-ban-BG000123.pdf``), never from what someone typed. A teacher or principal sees the handovers
of their own school only (the options offered are the school's, and the sheet is read through their scope).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from conversations.fields import choice_field, photo_field
from conversations.forms.base import Choice, Done, Form, FormContext, Invalid
from conversations.refusals import refusal
from core.clock import fmt_date
from core.i18n import T
from core.messages import Outgoing, PhotoInput, esc
from core.vocabulary import Role, flag_text
from storage import errors, evidence, handovers
from storage.models import Flag, Handover, Staff
from storage.photos import PhotoRejected, PhotoStoreError

log = logging.getLogger(__name__)

HANDOVER_PDF = T(
    vi="📄 Biên bản bàn giao {code} (PDF, khổ A4): in ra, ký đủ các bên, rồi chụp ảnh tờ biên bản đã ký gửi lại "
    "bằng lệnh /bienban.",
    en="📄 Handover minutes {code} (PDF, A4): print, have everyone sign, then send a photo of the signed sheet "
    "with /bienban.",
)
RECEIPT_PDF = T(
    vi="📄 Biên bản tiếp nhận {code} (PDF, khổ A4) — in ra để hai bên ký.",
    en="📄 Receipt minutes {code} (PDF, A4) — print it for both sides to sign.",
)
NO_PDF = T(
    vi="(Chưa tạo được tệp biên bản PDF; việc ghi nhận vẫn đã lưu. Gõ /bienban để lấy lại biên bản sau.)",
    en="(The minutes PDF could not be made; the record itself is saved. Type /bienban to get it later.)",
)
NO_HANDOVERS = T(
    vi="Trường chưa có bàn giao nào. Ghi nhận bàn giao bằng /bangiao.",
    en="The school has no handover yet. Record one with /bangiao.",
)
SIGNED = T(vi="✅ biên bản đã ký", en="✅ minutes signed")
UNSIGNED = T(vi="⏳ chưa có biên bản ký", en="⏳ minutes not signed")
PICK_ACTION = T(vi="Bàn giao {code} — {pupil} — {status}. Bạn muốn:", en="Handover {code} — {pupil} — {status}. Do:")
A_PHOTO = T(vi="📷 Gửi ảnh biên bản đã ký", en="📷 Send the signed minutes")
A_PDF = T(vi="📄 Lấy biên bản (PDF) để in", en="📄 Get the minutes (PDF) to print")
ASK_PHOTO = T(
    vi="Chụp rõ cả tờ biên bản đã ký (thấy đủ chữ ký và mã QR ở góc dưới) rồi gửi ảnh vào đây.",
    en="Photograph the whole signed sheet (all signatures and the QR code in the corner visible) and send it.",
)
NOT_A_PHOTO_PDF = T(
    vi="Đây là tệp PDF, không phải ảnh. Vui lòng chụp ảnh tờ biên bản đã ký bằng điện thoại và gửi ảnh "
    "(JPEG, PNG hoặc HEIC).",
    en="This is a PDF file, not a photo. Please take a photo of the signed sheet and send the picture.",
)
SAVED = T(
    vi="✅ Đã nhận ảnh biên bản đã ký của bàn giao {code} (học sinh {pupil}, ngày {day}). Hồ sơ: biên bản đã ký.",
    en="✅ Signed minutes received for handover {code} ({pupil}, {day}). Record: minutes signed.",
)
FLAGGED = T(vi="⚠️ Cần hiệu trưởng xem lại:\n{lines}", en="⚠️ Needs the principal's review:\n{lines}")
NOTIFY_PRINCIPAL = T(
    vi="⚠️ Ảnh biên bản của bàn giao {code} (học sinh {pupil}, do {by} gửi) cần xem lại:\n{lines}",
    en="⚠️ The minutes photo of handover {code} ({pupil}, sent by {by}) needs review:\n{lines}",
)
NOTIFY_OTHER = T(
    vi="⚠️ Bàn giao #{id} của trường (ngày {day}) bị đánh dấu cần xem lại:\n{lines}",
    en="⚠️ Your school's handover #{id} ({day}) was flagged for review:\n{lines}",
)
WRONG_SHEET = T(
    vi="Ảnh này là biên bản <b>{found}</b>{whose}, không phải {chosen} đã chọn (mã đọc từ mã QR trên tờ giấy). "
    "Vui lòng gửi ảnh biên bản của {chosen}, hoặc /huy rồi chọn {found}.",
    en="This photo is minutes <b>{found}</b>{whose}, not {chosen} as chosen (read from the sheet's QR code). "
    "Please send the photo of {chosen}'s minutes, or /huy and choose {found}.",
)
WHOSE = T(vi=" (học sinh {pupil})", en=" ({pupil})")
RECEIPT_SHEET = T(
    vi="Ảnh này là biên bản nhận máy <b>{found}</b> (mã QR trên tờ giấy), không phải biên bản bàn giao {chosen}. "
    "Vui lòng gửi ảnh biên bản bàn giao đã ký.",
    en="This photo is the receipt minutes <b>{found}</b> (its QR code), not handover {chosen}'s minutes. "
    "Please send the signed handover minutes.",
)
NO_STORE = T(
    vi="Máy chủ chưa được cấu hình nơi lưu ảnh; vui lòng báo quản trị viên.",
    en="The server has no photo storage configured; please tell the administrator.",
)


def handover_code(handover_id: int) -> str:
    from reports.minutes import handover_code as code

    return code(handover_id)


# --- the PDF as a message ---------------------------------------------------------------------------------------


def _write(ctx: FormContext, data: bytes) -> Any:
    from reports.minutes import write_pdf

    folder = ctx.media_dir / "minutes"
    # The file on disk has a random name; the name people see is built from our own codes.
    return write_pdf(data, folder / f"{secrets.token_hex(8)}.pdf")


def handover_minutes_message(ctx: FormContext, handover_id: int) -> Outgoing | None:
    """The handover's minutes as a document message, or None (no media folder, or the file could not be
    written: the caller says so; the record is never undone for want of a PDF)."""
    from reports.minutes import MinutesNotFound, handover_pdf, handover_sheet

    if ctx.media_dir is None:
        return None
    try:
        sheet = handover_sheet(ctx.session, programme=ctx.programme, scope=ctx.scope, handover_id=handover_id)
        path = _write(ctx, handover_pdf(sheet, programme=ctx.programme))
    except (OSError, MinutesNotFound) as exc:
        log.error("handover minutes %s not made: %s", handover_id, exc)
        return None
    return Outgoing(
        text=ctx.t(HANDOVER_PDF, code=sheet.code), document=path, document_name=f"bien-ban-{sheet.code}.pdf"
    )


def receipt_minutes_message(ctx: FormContext, batch_id: int) -> Outgoing | None:
    from reports.minutes import MinutesNotFound, receipt_pdf, receipt_sheet

    if ctx.media_dir is None:
        return None
    try:
        sheet = receipt_sheet(ctx.session, programme=ctx.programme, scope=ctx.scope, batch_id=batch_id)
        path = _write(ctx, receipt_pdf(sheet, programme=ctx.programme))
    except (OSError, MinutesNotFound) as exc:
        log.error("receipt minutes %s not made: %s", batch_id, exc)
        return None
    return Outgoing(
        text=ctx.t(RECEIPT_PDF, code=sheet.code), document=path, document_name=f"bien-ban-tiep-nhan-{sheet.code}.pdf"
    )


def with_minutes(done: Done, message: Outgoing | None, lang: str) -> Done:
    """``done`` with the minutes appended (or the note that they could not be made)."""
    if message is not None:
        done.messages.append(message)
    else:
        done.messages.append(Outgoing(text=NO_PDF(lang)))
    return done


# --- /bienban ------------------------------------------------------------------------------------------------


def _status(h: Handover, lang: str) -> str:
    return (SIGNED if h.minutes_signed_at is not None else UNSIGNED)(lang)


def _handover_options(ctx: FormContext) -> list[Choice]:
    rows = handovers.handovers_for_minutes(ctx.session, school_id=ctx.staff.school_id, limit=10)
    return [
        Choice(
            h.id,
            f"{handover_code(h.id)} — {st.full_name} — {st.class_name} — {fmt_date(h.handed_over_on)} — "
            f"{_status(h, ctx.lang)}",
        )
        for h, st in rows
    ]


def _chosen(ctx: FormContext) -> tuple[Handover, Any]:
    from storage.models import Student

    h = ctx.session.get(Handover, int(ctx.values["handover"]))
    if h is None or h.school_id != ctx.staff.school_id:
        raise Invalid(refusal(errors.RecordError("handover_missing"), ctx.lang), field="handover")
    return h, ctx.session.get(Student, h.student_id)


def _action_prompt(ctx: FormContext) -> str:
    h, st = _chosen(ctx)
    return ctx.t(PICK_ACTION, code=handover_code(h.id), pupil=esc(st.full_name), status=_status(h, ctx.lang))


def _accept_minutes_photo(ctx: FormContext, data: bytes, photo: PhotoInput) -> dict[str, Any]:
    """The handover photo's rules (the store: format from the bytes, size, EXIF stripped), with a plain word
    for the usual mistake: the scanned PDF instead of a photo."""
    if data[:5] == b"%PDF-":
        raise Invalid(NOT_A_PHOTO_PDF)
    if ctx.photos is None:
        raise Invalid(NO_STORE)
    try:
        stored = ctx.photos.ingest(data, mime_type=photo.mime_type, file_name=photo.file_name)
    except (PhotoRejected, PhotoStoreError) as exc:
        raise Invalid(refusal(exc, ctx.lang)) from None
    ctx.hold_photo(stored)
    _check_sheet_code(ctx, ctx.photos.open_path(stored.path))
    return evidence.stored_photo_to_dict(stored)


def _sheet_codes(path: Any) -> list[tuple[str, int]]:
    """The minutes codes readable on a stored photo: ("BG", handover id) or ("TN", batch id)."""
    from reports.minutes import parse_code
    from storage.imaging import read_qr_codes

    return [c for c in map(parse_code, read_qr_codes(path)) if c is not None]


def _check_sheet_code(ctx: FormContext, path: Any) -> None:
    """The printed minutes carry their code as a QR code: a photo of another handover's sheet (two pupils'
    sheets side by side on the desk) is caught here instead of being filed under the wrong pupil. A photo
    whose code cannot be read is taken as before."""
    from storage.models import Student

    chosen, _ = _chosen(ctx)
    codes = _sheet_codes(path)
    if not codes or any(kind == "BG" and ref == chosen.id for kind, ref in codes):
        return
    kind, ref = codes[0]
    if kind == "TN":
        raise Invalid(RECEIPT_SHEET, found=f"TN{ref:06d}", chosen=handover_code(chosen.id))
    other = ctx.session.get(Handover, ref)
    whose = ""
    if other is not None and other.school_id == ctx.staff.school_id:  # never another school's pupil's name
        pupil = ctx.session.get(Student, other.student_id)
        whose = ctx.t(WHOSE, pupil=esc(pupil.full_name)) if pupil is not None else ""
    raise Invalid(WRONG_SHEET, found=handover_code(ref), whose=whose, chosen=handover_code(chosen.id))


def _lines(flags: list[Flag], lang: str) -> str:
    return "\n".join(f"• {esc(flag_text(f.kind, f.params, lang))}" for f in flags)


def _principals(ctx: FormContext, school_id: int) -> list[int]:
    from sqlalchemy import select

    return list(
        ctx.session.scalars(
            select(Staff.id).where(Staff.school_id == school_id, Staff.role == Role.PRINCIPAL, Staff.active.is_(True))
        )
    )


def _save(ctx: FormContext) -> Done:
    h, st = _chosen(ctx)
    if ctx.values.get("action") == "pdf":
        return with_minutes(Done(), handover_minutes_message(ctx, h.id), ctx.lang)
    photo = evidence.stored_photo_from_dict(ctx.values["photo"])
    try:
        handover, flags = handovers.record_signed_minutes(
            ctx.session, handover_id=h.id, photo=photo, by=ctx.staff.id, programme=ctx.programme, now=ctx.now
        )
    except errors.Conflict:
        raise
    except errors.RecordError as exc:
        field = "photo" if exc.code in ("minutes_same_photo", "minutes_is_scene") else "handover"
        raise Invalid(refusal(exc, ctx.lang), field=field) from None
    code = handover_code(handover.id)
    text = ctx.t(SAVED, code=code, pupil=esc(st.full_name), day=fmt_date(handover.handed_over_on))
    mine = [f for f in flags if f.handover_id == handover.id]
    if mine:
        text += "\n\n" + ctx.t(FLAGGED, lines=_lines(mine, ctx.lang))
        for principal in _principals(ctx, handover.school_id):
            if principal != ctx.staff.id:
                ctx.notify(
                    principal,
                    NOTIFY_PRINCIPAL,
                    code=code,
                    pupil=esc(st.full_name),
                    by=esc(ctx.staff.full_name),
                    lines=_lines(mine, ctx.lang),
                )
    others: dict[int, list[Flag]] = {}
    for f in flags:
        if f.handover_id != handover.id:
            others.setdefault(f.handover_id, []).append(f)
    for other_id, group in others.items():
        other = ctx.session.get(Handover, other_id)
        if other.school_id == handover.school_id and mine:
            continue  # the same principal just heard of both handovers in one message
        for principal in _principals(ctx, other.school_id):
            ctx.notify(
                principal, NOTIFY_OTHER, id=other.id, day=fmt_date(other.handed_over_on), lines=_lines(group, ctx.lang)
            )
    return Done(text)


def _recognise_sheet(ctx: FormContext, data: bytes, photo: PhotoInput) -> dict[str, Any] | None:
    """A photo sent with no form open: if it shows one of this school's handover minutes (its QR code), it is
    that handover's signed copy, and every answer of /bienban is known (the handover, "photo", the photo
    itself): the form saves at once. Anything else is not ours, and leaves no file behind."""
    if ctx.photos is None or data[:5] == b"%PDF-":
        return None
    try:
        stored = ctx.photos.ingest(data, mime_type=photo.mime_type, file_name=photo.file_name)
    except (PhotoRejected, PhotoStoreError):
        return None  # not an image we take: the usual "no photo expected here" answers it
    path = ctx.photos.open_path(stored.path)
    handover_id = next((ref for kind, ref in _sheet_codes(path) if kind == "BG"), None)
    h = ctx.session.get(Handover, handover_id) if handover_id is not None else None
    if h is None or h.school_id != ctx.staff.school_id:  # another school's sheet says nothing to this person
        if stored.is_new:
            evidence.discard_unreferenced(ctx.session, store=ctx.photos, photos=[stored])
        return None
    ctx.hold_photo(stored)
    return {"handover": h.id, "action": "photo", "photo": evidence.stored_photo_to_dict(stored)}


BIENBAN = Form(
    name="bienban",
    command="bienban",
    title=T(vi="Biên bản bàn giao", en="Handover minutes"),
    description=T(
        vi="Lấy biên bản bàn giao (PDF) hoặc gửi ảnh biên bản đã ký",
        en="Get the handover minutes (PDF) or send the signed copy",
    ),
    roles=frozenset({Role.TEACHER, Role.PRINCIPAL}),
    fields=[
        choice_field(
            "handover",
            T(vi="Chọn bàn giao (chưa có biên bản ký xếp trước):", en="Choose the handover (unsigned first):"),
            T(vi="Bàn giao", en="Handover"),
            _handover_options,
            empty=NO_HANDOVERS,
        ),
        choice_field(
            "action",
            _action_prompt,
            T(vi="Việc", en="Action"),
            [Choice("photo", A_PHOTO), Choice("pdf", A_PDF)],
        ),
        photo_field(
            "photo",
            ASK_PHOTO,
            T(vi="Ảnh biên bản đã ký", en="Signed minutes"),
            accept=_accept_minutes_photo,
            when=lambda ctx: ctx.values.get("action") == "photo",
        ),
    ],
    on_complete=_save,
    summary=False,
    photo_start=_recognise_sheet,
)

FORMS = [BIENBAN]
