"""/nhapds — register a whole class from the school's own spreadsheet; /maunhap — the template.

A teacher or principal sends an .xlsx or .csv (after /nhapds, or straight away: a file sent outside any form
starts /nhapds). Every row is checked with /dangky's own fields (``conversations/bulk.py``). With errors, the
reply lists them by line and column and sends back the workbook with the faulty cells red and commented;
nothing is saved and the person sends the fixed file again. Without errors, a summary asks to save; «Lưu»
saves every row in one transaction as pending registrations (the principal's own too, like /dangky), which
the principal reviews in /duyet, where "approve all from this file" takes the whole list at once.

Zalo cannot receive files: there the command says how to do it instead.
"""

from __future__ import annotations

import secrets
from typing import Any

from conversations import bulk
from conversations.forms.base import Action, Done, Field, Form, FormContext, Invalid, Kind
from conversations.refusals import refusal
from core.i18n import T
from core.messages import DocumentInput, Outgoing, esc
from core.vocabulary import Role
from storage import students
from storage.errors import RecordError

ROLES = frozenset({Role.TEACHER, Role.PRINCIPAL})

ZALO_NO_FILES = T(
    vi="Zalo không cho phép bot nhận tệp, nên không nhập danh sách Excel qua Zalo được. Cách làm: gửi tệp cho bot "
    "trên Telegram (lệnh /nhapds, hoặc gửi thẳng tệp), hoặc nhờ hiệu trưởng hay chuyên viên Phòng GD&ĐT nhập giúp "
    "(lệnh «fieldbot students import»). Trên Zalo bạn vẫn đăng ký từng em bằng /dangky.",
    en="Zalo does not let bots receive files, so a class list cannot be imported here. Send the file to the bot on "
    "Telegram (/nhapds, or just send the file), or ask the principal or the district office to import it "
    "(«fieldbot students import»). On Zalo you can still register pupils one by one with /dangky.",
)
ZALO_NO_TEMPLATE = T(
    vi="Zalo không cho phép bot gửi tệp. Để lấy tệp mẫu: gõ /maunhap với bot trên Telegram, hoặc nhờ chuyên viên "
    "Phòng GD&ĐT gửi (lệnh «fieldbot students template»).",
    en="Zalo does not let bots send files. Get the template with /maunhap on Telegram, or ask the district office "
    "(«fieldbot students template»).",
)
NO_MEDIA = T(
    vi="Máy chủ chưa được cấu hình thư mục lưu tệp; vui lòng báo quản trị viên.",
    en="The server has no media directory configured; please tell the administrator.",
)
ASK_FILE = T(
    vi="📎 Gửi tệp danh sách học sinh (Excel .xlsx hoặc .csv, tối đa {rows} dòng, {mb} MB). Bot đọc các cột theo "
    "tiêu đề (Họ và tên, Ngày sinh, Lớp, Mã định danh, Giới tính, Đối tượng, Lý do, Nhu cầu, Người giám hộ, SĐT). "
    "Chưa có tệp? Gõ /huy rồi /maunhap để lấy tệp mẫu.",
    en="📎 Send the class list (Excel .xlsx or .csv, at most {rows} rows, {mb} MB). Columns are found by their "
    "headers. No file yet? Type /huy then /maunhap for the template.",
)
VALID = T(
    vi="{file} — {ok} em hợp lệ, 0 dòng có lỗi",
    en="{file} — {ok} valid, 0 rows with errors",
)
CONSENT_COUNT = T(
    vi="🔒 Đồng ý của phụ huynh: {with_} em có ngày đồng ý; {without} em chưa ghi nhận (hoàn tất sau bằng /dongy).",
    en="🔒 Parent's consent: {with_} with a date; {without} not recorded (complete them later with /dongy).",
)
SAVED = T(
    vi="✅ Đã lưu {n} em từ tệp «{file}». Các đăng ký chờ hiệu trưởng duyệt (/duyet, có nút «Duyệt cả tệp»).",
    en="✅ Saved {n} pupils from “{file}”. They wait for the principal's review (/duyet, with “Approve the whole "
    "file”).",
)
NEW_LIST = T(
    vi="🆕 {teacher} vừa gửi danh sách {n} em (tệp «{file}») chờ duyệt. Gõ /duyet để xem; có thể duyệt cả tệp.",
    en="🆕 {teacher} sent a list of {n} pupils (“{file}”) to review. Type /duyet; you can approve the whole file.",
)
SAVE_FAILED = T(
    vi="{why}\nKhông có em nào được lưu. Hãy sửa tệp rồi gửi lại.",
    en="{why}\nNothing was saved. Fix the file and send it again.",
)


def _start(ctx: FormContext) -> Done | None:
    if ctx.channel == "zalo":
        return Done(ZALO_NO_FILES)
    return None


def _ask(ctx: FormContext) -> str:
    rules = ctx.programme.imports
    return ctx.t(ASK_FILE, rows=rules.max_rows, mb=f"{rules.max_bytes / 1048576:.0f}")


def check_file(ctx: FormContext, data: bytes, document: DocumentInput) -> Any:
    """The file's rows checked: a JSON value for the summary, ``Invalid`` for a file that cannot be read (one
    line, send another), or ``Done`` with the report and the annotated workbook when rows have errors."""
    rules = ctx.programme.imports
    school_id = ctx.staff.school_id
    assert school_id is not None
    check_ctx = bulk.check_context(
        session=ctx.session,
        programme=ctx.programme,
        now=ctx.now,
        school_id=school_id,
        school_level=ctx.school_level,
        lang=ctx.lang,
    )
    try:
        sheet = bulk.read_sheet(data, file_name=document.file_name, max_rows=rules.max_rows, max_bytes=rules.max_bytes)
        checked = bulk.check_sheet(sheet, check_ctx)
    except bulk.FileRefused as exc:
        raise Invalid(esc(exc.text(ctx.lang))) from None
    if not sheet.rows:
        raise Invalid(bulk.NO_ROWS)
    if checked.problems:
        lines = bulk.report_lines(checked, ctx.lang)
        lines.append(bulk.FIX_AND_RESEND(ctx.lang))
        messages: list[Outgoing] = []
        if ctx.media_dir is not None:
            folder = ctx.media_dir / "exports"
            folder.mkdir(parents=True, exist_ok=True)
            out = bulk.annotate(data, checked, folder / f"{secrets.token_hex(8)}.xlsx", lang=ctx.lang)
            messages.append(Outgoing(document=out, document_name=bulk.annotated_name(document.file_name)))
        return Done("\n".join(lines), messages=messages)
    return {
        "file": sheet.file_name,
        "sha": bulk.sha256_of(data),
        "ok": len(checked.rows),
        "consented": sum(1 for r in checked.rows if r.get(bulk.CONSENT) is not None),
        "warn": [w.line(ctx.lang) for w in checked.warnings[:30]]
        + ([f"… +{len(checked.warnings) - 30}"] if len(checked.warnings) > 30 else []),
        "example": sheet.skipped_example,
        "rows": checked.rows,
    }


def _show(value: dict[str, Any], ctx: FormContext) -> str:
    text = ctx.t(VALID, file=value["file"], ok=value["ok"])
    consented = value.get("consented", 0)
    text += "\n" + ctx.t(CONSENT_COUNT, with_=consented, without=value["ok"] - consented)
    if value.get("warn"):
        text += "\n" + bulk.WARNINGS_HEAD(ctx.lang) + "\n" + "\n".join(f"• {w}" for w in value["warn"])
    if value.get("example"):
        text += "\n" + bulk.EXAMPLE_SKIPPED(ctx.lang)
    return text


F_FILE = Field(
    name="file",
    kind=Kind.DOCUMENT,
    prompt=_ask,
    label=T(vi="Tệp danh sách", en="Class list"),
    accept_document=check_file,
    show=_show,
)


def _save(ctx: FormContext) -> Done:
    value = ctx.values["file"]
    school_id = ctx.staff.school_id
    assert school_id is not None
    try:
        batch = students.import_students(
            ctx.session,
            actor=ctx.staff,
            school_id=school_id,
            rows=value["rows"],
            file_name=value["file"],
            sha256=value["sha"],
            now=ctx.now,
        )
    except RecordError as exc:
        return Done(SAVE_FAILED, why=refusal(exc, ctx.lang))
    if ctx.staff.role == Role.TEACHER:
        for principal in students.principals_of(ctx.session, school_id=school_id):
            ctx.notify(principal.id, NEW_LIST, teacher=esc(ctx.staff.full_name), n=batch.rows, file=esc(value["file"]))
    return Done(SAVED, n=batch.rows, file=esc(value["file"]))


IMPORT = Form(
    name="nhapds",
    command="nhapds",
    title=T(vi="Nhập danh sách học sinh từ tệp Excel", en="Import a class list from a spreadsheet"),
    description=T(vi="Nhập cả lớp từ tệp Excel", en="Import a class from a spreadsheet"),
    roles=ROLES,
    fields=[F_FILE],
    on_complete=_save,
    start=_start,
    takes_documents=True,
)


def _template(ctx: FormContext) -> Done:
    if ctx.channel == "zalo":
        return Done(ZALO_NO_TEMPLATE)
    if ctx.media_dir is None:
        return Done(NO_MEDIA)
    folder = ctx.media_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    out = bulk.write_template(ctx, folder / f"{secrets.token_hex(8)}.xlsx", max_rows=ctx.programme.imports.max_rows)
    caption = T(
        vi="📄 Tệp mẫu danh sách học sinh. Điền mỗi em một dòng (dòng «Ví dụ» được bỏ qua), rồi gửi lại tệp cho bot.",
        en="📄 The class-list template. One pupil a row (the “Ví dụ” row is skipped); then send the file back.",
    )
    return Done(messages=[Outgoing(text=caption(ctx.lang), document=out, document_name="mau-danh-sach-hoc-sinh.xlsx")])


TEMPLATE = Action(
    command="maunhap",
    description=T(vi="Tải tệp mẫu danh sách học sinh", en="Class-list template"),
    roles=frozenset({Role.TEACHER, Role.PRINCIPAL, Role.DISTRICT_OFFICER}),
    run=_template,
)

FORMS = [IMPORT, TEMPLATE]
