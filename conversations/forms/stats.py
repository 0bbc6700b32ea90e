"""/tonghop (summary text + chart) and /xuatfile (spreadsheet export), for the person's scope: their school,
or a district officer's whole district. The figures and files come from the ``reports`` package; this module
only decides scope, file location and how the result is sent."""

from __future__ import annotations

import re
import secrets

from conversations.forms.base import Action, Done, FormContext
from core.i18n import T
from core.messages import Outgoing
from core.text import fold
from core.vocabulary import Role
from storage import access_log
from storage.models import District, Province, School

ALL_ROLES = frozenset({Role.TEACHER, Role.PRINCIPAL, Role.DISTRICT_OFFICER, Role.PROVINCE_OFFICER})


def scope_slug(ctx: FormContext) -> str:
    """'th-phuhoa1' for a school, 'tdm' for a district, 'bd' for a province: ASCII, safe in a file name."""
    scope = ctx.scope
    if scope.school_id is not None:
        school = ctx.session.get(School, scope.school_id)
        raw = school.code if school else "truong"
    elif scope.is_province:
        province = ctx.session.get(Province, scope.province_id)
        raw = province.code if province else "tinh"
    else:
        district = ctx.session.get(District, scope.district_id)
        raw = district.code if district else "quan"
    return re.sub(r"[^a-z0-9]+", "-", fold(raw)).strip("-") or "tong-hop"


def _log_access(ctx: FormContext, what: str, pupils: int) -> None:
    """One access-log row per read of pupil data (storage/access_log.py), in the step's transaction."""
    access_log.record_access(
        ctx.session, actor=ctx.staff, role=ctx.staff.role, what=what, scope=ctx.scope, pupils=pupils, now=ctx.now
    )


def _summary(ctx: FormContext) -> Done:
    from reports.chart import render_chart
    from reports.summary import build_summary, format_summary

    summary = build_summary(ctx.session, scope=ctx.scope, programme=ctx.programme, now=ctx.now)
    _log_access(ctx, access_log.SUMMARY, summary.totals.registered)
    text = format_summary(summary, lang=ctx.lang)
    png = render_chart(summary, lang=ctx.lang)
    return Done(messages=[Outgoing(text=text), Outgoing(photo=png)])


NO_MEDIA = T(
    vi="Máy chủ chưa được cấu hình thư mục lưu tệp, nên chưa xuất được. Vui lòng báo quản trị viên.",
    en="The server has no media directory configured, so no file can be made. Please tell the administrator.",
)
EXPORT_READY = T(vi="📄 Tệp tổng hợp {name} (số liệu đến {at}).", en="📄 Summary workbook {name} (figures as of {at}).")


PROTECT_HINT = T(
    vi="🔒 Cần tệp có mật khẩu (để gửi qua điện thoại)? Gõ /xuatfilemk",
    en="🔒 Need a password-protected file (to pass on by phone)? Type /xuatfilemk",
)
PASSWORD_ONCE = T(
    vi="🔑 Mật khẩu mở tệp: <code>{pw}</code>\nMật khẩu chỉ hiện một lần này và không được lưu ở đâu. Hãy báo cho "
    "người nhận bằng đường khác (gọi điện, tin nhắn riêng) — đừng chuyển tiếp tin này cùng tệp.",
    en="🔑 Password to open the file: <code>{pw}</code>\nShown this once and stored nowhere. Give it to the recipient "
    "by another route (a call, a separate message) — do not forward it with the file.",
)


def _export(ctx: FormContext, *, protected: bool = False) -> Done:
    from core.clock import fmt_local
    from reports.export import write_export

    if ctx.media_dir is None:
        return Done(NO_MEDIA)
    folder = ctx.media_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    # The file on disk has a random name; the name people see is built from our own codes, never user text.
    out = folder / f"{secrets.token_hex(8)}.xlsx"
    result = write_export(ctx.session, scope=ctx.scope, out=out, programme=ctx.programme, now=ctx.now, lang=ctx.lang)
    path = result.path
    _log_access(ctx, access_log.EXPORT_PROTECTED if protected else access_log.EXPORT, result.students)
    name = f"tong-hop-{scope_slug(ctx)}-{ctx.today.strftime('%d-%m-%Y')}.xlsx"
    caption = EXPORT_READY(ctx.lang, name=name, at=fmt_local(ctx.now, ctx.programme.tz))
    if not protected:
        caption += "\n" + PROTECT_HINT(ctx.lang)
        return Done(messages=[Outgoing(text=caption, document=path, document_name=name)])
    from reports.protect import new_password, protect_workbook

    password = new_password()
    locked = folder / f"{secrets.token_hex(8)}.xlsx"
    try:
        protect_workbook(path, locked, password=password)
    finally:
        path.unlink(missing_ok=True)  # the unprotected copy never stays on disk
    # The password goes in its own message: forwarding the document does not forward it.
    return Done(
        messages=[
            Outgoing(text=caption, document=locked, document_name=name),
            Outgoing(text=PASSWORD_ONCE(ctx.lang, pw=password)),
        ]
    )


SUMMARY = Action(
    command="tonghop",
    description=T(vi="Xem số liệu tổng hợp", en="Summary figures"),
    roles=ALL_ROLES,
    run=_summary,
)
EXPORT = Action(
    command="xuatfile",
    description=T(vi="Xuất tệp Excel tổng hợp", en="Export a spreadsheet"),
    roles=frozenset({Role.PRINCIPAL, Role.DISTRICT_OFFICER, Role.PROVINCE_OFFICER}),
    run=_export,
)

EXPORT_PROTECTED = Action(
    command="xuatfilemk",
    description=T(vi="Xuất tệp Excel có mật khẩu", en="Export a password-protected spreadsheet"),
    roles=frozenset({Role.PRINCIPAL, Role.DISTRICT_OFFICER}),
    run=lambda ctx: _export(ctx, protected=True),
)

FORMS = [SUMMARY, EXPORT, EXPORT_PROTECTED]
