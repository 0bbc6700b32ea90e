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
from storage.models import District, School

ALL_ROLES = frozenset({Role.TEACHER, Role.PRINCIPAL, Role.DISTRICT_OFFICER})


def scope_slug(ctx: FormContext) -> str:
    """'th-phuhoa1' for a school, 'tdm' for a district: ASCII, safe in a file name."""
    scope = ctx.scope
    if scope.school_id is not None:
        school = ctx.session.get(School, scope.school_id)
        raw = school.code if school else "truong"
    else:
        district = ctx.session.get(District, scope.district_id)
        raw = district.code if district else "quan"
    return re.sub(r"[^a-z0-9]+", "-", fold(raw)).strip("-") or "tong-hop"


def _summary(ctx: FormContext) -> Done:
    from reports.chart import render_chart
    from reports.summary import build_summary, format_summary

    summary = build_summary(ctx.session, scope=ctx.scope, programme=ctx.programme, now=ctx.now)
    text = format_summary(summary, lang=ctx.lang)
    png = render_chart(summary, lang=ctx.lang)
    return Done(messages=[Outgoing(text=text), Outgoing(photo=png)])


NO_MEDIA = T(
    vi="Máy chủ chưa được cấu hình thư mục lưu tệp, nên chưa xuất được. Vui lòng báo quản trị viên.",
    en="The server has no media directory configured, so no file can be made. Please tell the administrator.",
)
EXPORT_READY = T(vi="📄 Tệp tổng hợp {name} (số liệu đến {at}).", en="📄 Summary workbook {name} (figures as of {at}).")


def _export(ctx: FormContext) -> Done:
    from core.clock import fmt_local
    from reports.export import export_workbook

    if ctx.media_dir is None:
        return Done(NO_MEDIA)
    folder = ctx.media_dir / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    # The file on disk has a random name; the name people see is built from our own codes, never user text.
    out = folder / f"{secrets.token_hex(8)}.xlsx"
    path = export_workbook(ctx.session, scope=ctx.scope, out=out, programme=ctx.programme, now=ctx.now, lang=ctx.lang)
    name = f"tong-hop-{scope_slug(ctx)}-{ctx.today.strftime('%d-%m-%Y')}.xlsx"
    caption = EXPORT_READY(ctx.lang, name=name, at=fmt_local(ctx.now, ctx.programme.tz))
    return Done(messages=[Outgoing(text=caption, document=path, document_name=name)])


SUMMARY = Action(
    command="tonghop",
    description=T(vi="Xem số liệu tổng hợp", en="Summary figures"),
    roles=ALL_ROLES,
    run=_summary,
)
EXPORT = Action(
    command="xuatfile",
    description=T(vi="Xuất tệp Excel tổng hợp", en="Export a spreadsheet"),
    roles=frozenset({Role.PRINCIPAL, Role.DISTRICT_OFFICER}),
    run=_export,
)

FORMS = [SUMMARY, EXPORT]
