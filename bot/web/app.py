"""Routes, middlewares (security headers, session, CSRF, rate limit) and views of the web view.

Every view reads through the signed-in person's ``Scope`` (storage.scope), the same one the chat uses;
a school, district, photo or export outside it answers 404, exactly as for something that does not exist.
Database work runs in a thread (``asyncio.to_thread``) so a slow query never stalls other requests.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import hdrs, web
from sqlalchemy import select
from sqlalchemy.engine import Engine

from bot.web import texts as tx
from bot.web.texts import page_language, page_texts
from core.clock import Clock, fmt_date, fmt_local
from core.i18n import T
from core.phones import display_phone
from core.programme import Programme
from core.text import fmt_int, fold
from core.vocabulary import Role, role_label
from storage import web as websign
from storage.db import session_scope
from storage.models import ChatIdentity, District, Province, School, Staff
from storage.scope import OutOfScope, Scope

log = logging.getLogger(__name__)
_Key = getattr(web, "RequestKey", str)  # aiohttp >= 3.12 has typed request keys; before, plain strings
STAFF = _Key("staff", object) if _Key is not str else "staff"
TOKEN = _Key("session_token", object) if _Key is not str else "session_token"
SCOPE = _Key("scope", object) if _Key is not str else "scope"
LANG = _Key("lang", object) if _Key is not str else "lang"  # set when the page language must outlive the session
CFG = web.AppKey("cfg", object)
LIMIT = web.AppKey("limit", object)

HERE = Path(__file__).parent
SESSION_COOKIE = "fb_session"
PRE_COOKIE = "fb_pre"  # before sign-in: the double-submit CSRF secret of the sign-in forms
TELEGRAM_FRAMES = "https://web.telegram.org https://webk.telegram.org https://webz.telegram.org"
TELEGRAM_SCRIPT = "https://telegram.org"
CSP = (
    f"default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self' {TELEGRAM_SCRIPT}; connect-src 'self'; "
    f"form-action 'self'; base-uri 'none'; frame-ancestors 'self' {TELEGRAM_FRAMES}"
)
SIGN_IN_LIMIT = 10  # sign-in attempts per client address per minute
MAX_LATE_ROWS = 500


@dataclass
class WebConfig:
    db: Engine
    programme: Programme
    clock: Clock
    media_dir: Path
    public_url: str  # the base URL links use (FIELDBOT_WEB_URL)
    telegram_token: str | None = None
    sign_in_limit: int = SIGN_IN_LIMIT

    @property
    def secure(self) -> bool:
        return self.public_url.lower().startswith("https://")


class RateLimit:
    """Sliding window per key (client address): ``limit`` hits per minute."""

    def __init__(self, limit: int, clock: Clock) -> None:
        self.limit, self.clock = limit, clock
        self.hits: dict[str, deque[datetime]] = defaultdict(deque)

    def allow(self, key: str) -> bool:
        now = self.clock.now()
        q = self.hits[key]
        while q and q[0] <= now - timedelta(minutes=1):
            q.popleft()
        if len(q) >= self.limit:
            return False
        q.append(now)
        if len(self.hits) > 10_000:  # never grows without bound
            for k in [k for k, v in self.hits.items() if not v][:5000]:
                del self.hits[k]
        return True


# --- template helpers -----------------------------------------------------------------------------------------


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["date"] = lambda d: fmt_date(d) if d else ""
    env.filters["phone"] = lambda p: display_phone(p) if p else ""
    # Counts as the reader writes them: 10.000 in Vietnamese, 10,000 in English (``lang`` of the page).
    env.filters["num"] = jinja2.pass_context(lambda ctx, n: fmt_int(int(n or 0), ctx.get("lang", "vi")))
    return env


ENV = _env()


def lang_of(request: web.Request) -> str:
    """The language of this request's pages, files and messages (bot.web.texts.page_language)."""
    if request.get(LANG):
        return request[LANG]
    staff = request.get(STAFF)
    return page_language(staff.language if staff else None, request.headers.get("Accept-Language"))


def render(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    cfg: WebConfig = request.app[CFG]
    staff = request.get(STAFF)
    token = request.get(TOKEN)
    tz = cfg.programme.tz
    lang = lang_of(request)
    texts = page_texts(lang)
    html = ENV.get_template(name).render(
        me=staff,
        lang=lang,
        tx=texts,
        role=role_label(staff.role, lang, title=True) if staff else "",
        csrf=websign.csrf_for(token) if token else "",
        local=lambda at: fmt_local(at, tz) if at else "",
        **values,
    )
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Language"] = lang
    return response


def message(request: web.Request, text: T, *, status: int, hint: T | None = None) -> web.Response:
    lang = lang_of(request)
    return render(request, "message.html", status=status, text=text(lang), hint=hint(lang) if hint else "")


async def db(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(session, *args)`` in one transaction, in a thread."""
    cfg: WebConfig = request.app[CFG]

    def work():
        with session_scope(cfg.db) as session:
            return fn(session, *args)

    return await asyncio.to_thread(work)


def redirect(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


def client_key(request: web.Request) -> str:
    return request.remote or "?"


# --- middlewares ------------------------------------------------------------------------------------------------

PUBLIC = ("/static/", "/login", "/tg", "/healthz")


@web.middleware
async def security_headers(request: web.Request, handler):
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        response = message(request, tx.NOT_FOUND, status=404)
    except web.HTTPException as exc:
        response = exc
    h = response.headers
    h["Content-Security-Policy"] = CSP
    h["X-Content-Type-Options"] = "nosniff"
    h["Referrer-Policy"] = "no-referrer"  # sign-in links carry a token in the path
    h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=()"
    h["Cross-Origin-Opener-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        h["Cache-Control"] = "no-store"  # pupils' data never stays in a shared cache
    if isinstance(response, web.HTTPException):
        raise response
    return response


@web.middleware
async def authenticate(request: web.Request, handler):
    cfg: WebConfig = request.app[CFG]
    token = request.cookies.get(SESSION_COOKIE, "")
    staff = None
    if token:
        staff = await db(request, lambda s: websign.session_staff(s, token=token, now=cfg.clock.now()))
    if staff is not None:
        request[STAFF], request[TOKEN] = staff, token
        try:
            request[SCOPE] = Scope.for_staff(staff)
        except OutOfScope:
            request[STAFF] = None
    if request.path == "/" or not request.path.startswith(PUBLIC):
        if request.get(STAFF) is None:
            return message(request, tx.NOT_SIGNED_IN, status=401, hint=tx.ASK_AGAIN)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # The one protection of a request that changes something: the session's CSRF token. The Mini App's
            # cookie is SameSite=None over HTTPS, so the browser sends it cross-site; the token it cannot.
            form = await request.post()
            if not websign.csrf_ok(token, form.get("csrf")):
                return message(request, tx.BAD_FORM, status=403)
    return await handler(request)


# --- sign-in and sign-out ---------------------------------------------------------------------------------------


COOKIE_VALUE = re.compile(r"[A-Za-z0-9_\-]*")


def _set_cookie(
    response: web.StreamResponse, cfg: WebConfig, name: str, value: str, max_age: int, *, mini_app: bool = False
) -> None:
    """One ``Set-Cookie``: host-only, ``Path=/``, ``HttpOnly``, ``Secure`` when the site is served over HTTPS.

    ``SameSite=Lax`` for the link sign-in. The Mini App's cookies (its pre-sign-in secret and its session)
    are ``SameSite=None; Secure; Partitioned`` when served over HTTPS: in Telegram's web client the pages are a
    cross-site iframe inside web.telegram.org, where a Lax cookie is neither stored nor sent, so the page after
    the initData sign-in would have no session. Partitioned (CHIPS) keys the cookie to the top-level site
    (web.telegram.org), so it is readable only inside that frame, and browsers that block third-party cookies
    still keep it. A browser refuses ``SameSite=None`` without ``Secure``, so over plain http (a developer's
    machine) the Mini App keeps Lax. SameSite never protects a POST here: the CSRF token does (``authenticate``).

    Written by hand because Python 3.11's http.cookies does not know ``Partitioned``. ``max_age=0`` deletes,
    with the same attributes (a partitioned cookie is only deleted by a partitioned Set-Cookie).
    """
    if not COOKIE_VALUE.fullmatch(value):
        raise ValueError("cookie values are urlsafe tokens")
    parts = [f"{name}={value}", "Path=/", f"Max-Age={max_age}", "HttpOnly"]
    if max_age == 0:
        parts.insert(1, "Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if cfg.secure:
        parts.append("Secure")
    parts += ["SameSite=None", "Partitioned"] if mini_app and cfg.secure else ["SameSite=Lax"]
    response.headers.add(hdrs.SET_COOKIE, "; ".join(parts))


def _del_cookie(response: web.StreamResponse, cfg: WebConfig, name: str, *, mini_app: bool = False) -> None:
    _set_cookie(response, cfg, name, "", 0, mini_app=mini_app)


def _pre_token(request: web.Request) -> tuple[str, bool]:
    existing = request.cookies.get(PRE_COOKIE, "")
    if re.fullmatch(r"[A-Za-z0-9_\-]{20,64}", existing):
        return existing, False
    return secrets.token_urlsafe(24), True


async def login_page(request: web.Request) -> web.Response:
    """GET shows a button; only the POST uses the link, so a chat's link preview cannot use it up."""
    cfg: WebConfig = request.app[CFG]
    if not request.app[LIMIT].allow(client_key(request)):
        return message(request, tx.TOO_MANY, status=429)
    token = request.match_info["token"]
    state = await db(request, lambda s: websign.check_link(s, token=token, now=cfg.clock.now()))
    if not state.ok:
        return message(request, tx.LINK_REFUSED[state.reason], status=410, hint=tx.ASK_AGAIN)
    pre, fresh = _pre_token(request)
    response = render(request, "login.html", token=token, pre_csrf=websign.csrf_for(pre))
    if fresh:
        _set_cookie(response, cfg, PRE_COOKIE, pre, 15 * 60)
    return response


async def login_post(request: web.Request) -> web.StreamResponse:
    cfg: WebConfig = request.app[CFG]
    if not request.app[LIMIT].allow(client_key(request)):
        return message(request, tx.TOO_MANY, status=429)
    form = await request.post()
    if not websign.csrf_ok(request.cookies.get(PRE_COOKIE, ""), form.get("csrf")):
        return message(request, tx.BAD_FORM, status=403)
    token = str(form.get("token", ""))[:100]

    def work(s):
        now = cfg.clock.now()
        staff_id, reason = websign.redeem_link(s, token=token, now=now)
        if staff_id is None:
            return None, reason
        return websign.open_session(s, staff_id=staff_id, via="link", now=now), ""

    cookie, reason = await db(request, work)
    if cookie is None:
        return message(request, tx.LINK_REFUSED[reason], status=410, hint=tx.ASK_AGAIN)
    response = redirect("/")
    _set_cookie(response, cfg, SESSION_COOKIE, cookie, int(websign.SESSION_TTL.total_seconds()))
    _del_cookie(response, cfg, PRE_COOKIE)
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    cfg: WebConfig = request.app[CFG]
    token = request[TOKEN]
    request[LANG] = lang_of(request)  # the goodbye is in the language of the person leaving
    via = await db(request, lambda s: websign.end_session(s, token=token, now=cfg.clock.now()))
    request[STAFF], request[TOKEN] = None, None
    response = message(request, tx.SIGNED_OUT, status=200, hint=tx.ASK_AGAIN)
    _del_cookie(response, cfg, SESSION_COOKIE, mini_app=via == "telegram")
    return response


async def tg_page(request: web.Request) -> web.Response:
    cfg: WebConfig = request.app[CFG]
    pre, fresh = _pre_token(request)
    response = render(request, "tg.html", pre_csrf=websign.csrf_for(pre))
    if fresh:
        _set_cookie(response, cfg, PRE_COOKIE, pre, 15 * 60, mini_app=True)
    return response


async def tg_login(request: web.Request) -> web.StreamResponse:
    from bot.web.initdata import InitDataError, validate_init_data

    cfg: WebConfig = request.app[CFG]
    if not request.app[LIMIT].allow(client_key(request)):
        return message(request, tx.TOO_MANY, status=429)
    form = await request.post()
    if not websign.csrf_ok(request.cookies.get(PRE_COOKIE, ""), form.get("csrf")):
        return message(request, tx.BAD_FORM, status=403)
    if not cfg.telegram_token:
        return message(request, tx.TG_REFUSED, status=403)
    try:
        user = validate_init_data(str(form.get("init_data", "")), bot_token=cfg.telegram_token, now=cfg.clock.now())
    except InitDataError as exc:
        log.info("mini app sign-in refused: %s", exc.reason)
        return message(request, tx.TG_REFUSED, status=403)

    def work(s):
        staff = s.execute(
            select(Staff)
            .join(ChatIdentity, ChatIdentity.staff_id == Staff.id)
            .where(ChatIdentity.channel == "telegram", ChatIdentity.external_id == str(user.id), Staff.active)
        ).scalar_one_or_none()
        if staff is None:
            return None
        return websign.open_session(s, staff_id=staff.id, via="telegram", now=cfg.clock.now())

    cookie = await db(request, work)
    if cookie is None:
        return message(request, tx.TG_UNLINKED, status=403)
    response = redirect("/")
    _set_cookie(response, cfg, SESSION_COOKIE, cookie, int(websign.SESSION_TTL.total_seconds()), mini_app=True)
    _del_cookie(response, cfg, PRE_COOKIE, mini_app=True)
    return response


# --- scope helpers -------------------------------------------------------------------------------------------------


def district_scope(session, scope: Scope, district_id: int) -> Scope | None:
    """The district as a scope, if the person may see all of it."""
    if scope.school_id is not None:
        return None
    if scope.district_id is not None:
        return scope if scope.district_id == district_id else None
    d = session.get(District, district_id)
    if d is None or d.province_id is None or d.province_id != scope.province_id:
        return None
    return Scope(district_id=district_id)


def school_scope(session, scope: Scope, school_id: int) -> Scope | None:
    if not scope.contains(session, school_id):
        return None
    school = session.get(School, school_id)
    return Scope(district_id=school.district_id, school_id=school_id) if school else None


def _category_label(programme: Programme, code: str, lang: str) -> str:
    category = programme.category(code)
    if category is None:
        return code
    return category.label_en if lang == "en" else category.label_vi


def _int(request: web.Request, name: str) -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 12:
        raise web.HTTPNotFound()
    return int(raw)


# --- pages ------------------------------------------------------------------------------------------------------------

SORTS = {
    "name": lambda s: fold(s.name),
    "registered": lambda s: s.registered,
    "approved": lambda s: s.approved,
    "received": lambda s: s.received,
    "handed": lambda s: s.handed_over,
    "late": lambda s: s.late_csdl,
    "minutes": lambda s: s.unsigned_minutes,
    "report": lambda s: s.needs_report_submitted_at is not None,
}
FILTERS = {  # the "show" options (texts.SHOW_OPTIONS words them)
    "all": lambda s: True,
    "late": lambda s: s.late_csdl,
    "no_report": lambda s: s.needs_report_submitted_at is None,
    "flags": lambda s: s.open_flags,
    "minutes": lambda s: s.unsigned_minutes,
}


def _rows(summary, request: web.Request):
    sort = request.query.get("sort", "name")
    if sort not in SORTS:
        sort = "name"
    desc = request.query.get("dir") == "desc"
    flt = request.query.get("show", "all")
    if flt not in FILTERS:
        flt = "all"
    q = fold(request.query.get("q", "").strip())[:100]
    rows = [s for s in summary.schools if FILTERS[flt](s)]
    if q:
        rows = [s for s in rows if q in fold(s.name) or q in fold(s.code)]
    rows.sort(key=SORTS[sort], reverse=desc)
    return rows, dict(sort=sort, dir="desc" if desc else "asc", show=flt, q=request.query.get("q", "")[:100])


def _summary(session, cfg: WebConfig, scope: Scope):
    from reports.summary import build_summary

    return build_summary(session, scope=scope, programme=cfg.programme, now=cfg.clock.now())


async def overview(request: web.Request) -> web.StreamResponse:
    cfg: WebConfig = request.app[CFG]
    scope: Scope = request[SCOPE]
    staff = request[STAFF]
    if scope.school_id is not None:
        return redirect(f"/school/{scope.school_id}")
    if scope.is_province:
        return await _province_page(request, cfg, scope, staff)
    return await _district_page(request, cfg, scope, staff, scope.district_id)


async def district_page(request: web.Request) -> web.StreamResponse:
    cfg: WebConfig = request.app[CFG]
    district_id = _int(request, "id")
    allowed = await db(request, lambda s: district_scope(s, request[SCOPE], district_id))
    if allowed is None:
        raise web.HTTPNotFound()
    return await _district_page(request, cfg, allowed, request[STAFF], district_id)


async def _district_page(request, cfg: WebConfig, scope: Scope, staff, district_id: int) -> web.Response:
    def work(s):
        summary = _summary(s, cfg, scope)
        district = s.get(District, district_id)
        websign.record_view(s, staff_id=staff.id, school_id=None, page=request.path_qs, now=cfg.clock.now())
        return summary, district

    summary, district = await db(request, work)
    rows, state = _rows(summary, request)
    base = "/" if request[SCOPE].district_id == district_id else f"/district/{district_id}"
    return render(
        request,
        "district.html",
        summary=summary,
        district=district,
        rows=rows,
        state=state,
        base=base,
        prefix="" if base == "/" else base,
        is_province_view=request[SCOPE].is_province,
    )


async def _province_page(request, cfg: WebConfig, scope: Scope, staff) -> web.Response:
    from reports.summary import _totals

    def work(s):
        summary = _summary(s, cfg, scope)
        province = s.get(Province, scope.province_id)
        districts = (
            s.execute(select(District).where(District.id.in_(scope.district_ids_query())).order_by(District.name))
            .scalars()
            .all()
        )
        websign.record_view(s, staff_id=staff.id, school_id=None, page=request.path_qs, now=cfg.clock.now())
        return summary, province, list(districts)

    summary, province, districts = await db(request, work)
    by_district: dict[int, list] = defaultdict(list)
    for sc in summary.schools:
        by_district[sc.district_id].append(sc)
    rows = []
    for d in districts:
        schools = by_district.get(d.id, [])
        total = _totals(schools, d.name)
        rows.append(
            dict(
                district=d,
                total=total,
                schools=len(schools),
                reports=sum(1 for x in schools if x.needs_report_submitted_at is not None),
                late_schools=sum(1 for x in schools if x.late_csdl),
            )
        )
    return render(request, "province.html", summary=summary, province=province, rows=rows)


async def school_page(request: web.Request) -> web.StreamResponse:
    from reports.detail import school_detail

    cfg: WebConfig = request.app[CFG]
    school_id = _int(request, "id")
    staff = request[STAFF]

    def work(s):
        now = cfg.clock.now()
        detail = school_detail(s, scope=request[SCOPE], school_id=school_id, programme=cfg.programme, now=now)
        if detail is not None:
            websign.record_view(s, staff_id=staff.id, school_id=school_id, page=request.path_qs, now=now)
            district = s.get(District, detail.school.district_id)
            return detail, district
        return None, None

    detail, district = await db(request, work)
    if detail is None:
        raise web.HTTPNotFound()
    return render(
        request,
        "school.html",
        d=detail,
        district=district,
        now=cfg.clock.now(),
        category=lambda code: _category_label(cfg.programme, code, lang_of(request)),
        show_district_link=request[SCOPE].school_id is None,
    )


async def late_page(request: web.Request) -> web.StreamResponse:
    from reports.late import late_items

    cfg: WebConfig = request.app[CFG]
    staff = request[STAFF]

    def work(s):
        now = cfg.clock.now()
        items = late_items(s, scope=request[SCOPE], programme=cfg.programme, now=now)
        districts = {d.id: d.name for d in s.execute(select(District)).scalars()}
        principals = {}
        for sid, name, phone in s.execute(
            select(Staff.school_id, Staff.full_name, Staff.phone)
            .where(request[SCOPE].filter(Staff.school_id), Staff.role == Role.PRINCIPAL, Staff.active)
            .order_by(Staff.school_id, Staff.id)
        ).all():
            principals.setdefault(sid, (name, phone))
        websign.record_view(s, staff_id=staff.id, school_id=None, page=request.path_qs, now=now)
        return items, districts, principals

    items, districts, principals = await db(request, work)
    now = cfg.clock.now()
    return render(
        request,
        "late.html",
        items=items[:MAX_LATE_ROWS],
        total=len(items),
        districts=districts,
        principals=principals,
        now=now,
        many=request[SCOPE].school_id is None,
    )


# --- files: chart, export, photos -----------------------------------------------------------------------------


async def _chart(request: web.Request, scope: Scope) -> web.Response:
    from reports.chart import render_chart

    cfg: WebConfig = request.app[CFG]
    lang = lang_of(request)
    png = await db(request, lambda s: render_chart(_summary(s, cfg, scope), lang=lang))
    return web.Response(body=png, content_type="image/png")


async def chart(request: web.Request) -> web.StreamResponse:
    return await _chart(request, request[SCOPE])


async def district_chart(request: web.Request) -> web.StreamResponse:
    district_id = _int(request, "id")
    allowed = await db(request, lambda s: district_scope(s, request[SCOPE], district_id))
    if allowed is None:
        raise web.HTTPNotFound()
    return await _chart(request, allowed)


async def _export(request: web.Request, scope: Scope, slug: str, school_id: int | None) -> web.Response:
    from reports.export import write_export

    cfg: WebConfig = request.app[CFG]
    folder = cfg.media_dir / "exports"
    out = folder / f"web-{secrets.token_hex(8)}.xlsx"
    staff = request[STAFF]
    lang = lang_of(request)

    def work(s):
        now = cfg.clock.now()
        write_export(s, scope=scope, out=out, programme=cfg.programme, now=now, lang=lang)
        websign.record_view(s, staff_id=staff.id, school_id=school_id, page=request.path_qs, now=now)

    try:
        await db(request, work)
        body = await asyncio.to_thread(out.read_bytes)
    finally:
        out.unlink(missing_ok=True)
    today = cfg.clock.now().astimezone(cfg.programme.tz).strftime("%d-%m-%Y")
    name = f"{tx.FILE_STEM(lang)}-{slug}-{today}.xlsx"
    return web.Response(
        body=body,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _slug(raw: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", fold(raw)).strip("-") or "tong-hop"


async def export(request: web.Request) -> web.StreamResponse:
    scope: Scope = request[SCOPE]

    def slug(s):
        if scope.school_id is not None:
            return s.get(School, scope.school_id).code
        if scope.is_province:
            return s.get(Province, scope.province_id).code
        return s.get(District, scope.district_id).code

    return await _export(request, scope, _slug(await db(request, slug)), scope.school_id)


async def district_export(request: web.Request) -> web.StreamResponse:
    district_id = _int(request, "id")

    def work(s):
        allowed = district_scope(s, request[SCOPE], district_id)
        return (allowed, s.get(District, district_id).code) if allowed else (None, "")

    allowed, code = await db(request, work)
    if allowed is None:
        raise web.HTTPNotFound()
    return await _export(request, allowed, _slug(code), None)


async def school_export(request: web.Request) -> web.StreamResponse:
    school_id = _int(request, "id")

    def work(s):
        allowed = school_scope(s, request[SCOPE], school_id)
        return (allowed, s.get(School, school_id).code) if allowed else (None, "")

    allowed, code = await db(request, work)
    if allowed is None:
        raise web.HTTPNotFound()
    return await _export(request, allowed, _slug(code), school_id)


async def photo(request: web.Request) -> web.StreamResponse:
    from reports.detail import photo_in_scope
    from storage.photos import PhotoStore

    cfg: WebConfig = request.app[CFG]
    photo_id = _int(request, "id")
    thumb = request.match_info.get("size") == "thumb"
    staff = request[STAFF]

    def work(s):
        p = photo_in_scope(s, scope=request[SCOPE], photo_id=photo_id)
        if p is None:
            return None
        if not thumb:
            websign.record_view(s, staff_id=staff.id, school_id=None, page=request.path, now=cfg.clock.now())
        return p.thumb_path if thumb else p.path

    rel = await db(request, work)
    if rel is None:
        raise web.HTTPNotFound()
    try:
        path = PhotoStore(cfg.media_dir).open_path(rel)
    except Exception:
        raise web.HTTPNotFound() from None
    if not path.is_file():
        raise web.HTTPNotFound()
    data = await asyncio.to_thread(path.read_bytes)
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})


async def healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def build_web_app(cfg: WebConfig) -> web.Application:
    app = web.Application(middlewares=[security_headers, authenticate], client_max_size=64 * 1024)
    app[CFG] = cfg
    app[LIMIT] = RateLimit(cfg.sign_in_limit, cfg.clock)
    app.router.add_get("/", overview)
    app.router.add_get("/login/{token}", login_page)
    app.router.add_post("/login", login_post)
    app.router.add_post("/logout", logout)
    app.router.add_get("/tg", tg_page)
    app.router.add_post("/tg/login", tg_login)
    app.router.add_get("/late", late_page)
    app.router.add_get("/chart.png", chart)
    app.router.add_get("/export.xlsx", export)
    app.router.add_get("/district/{id}", district_page)
    app.router.add_get("/district/{id}/chart.png", district_chart)
    app.router.add_get("/district/{id}/export.xlsx", district_export)
    app.router.add_get("/school/{id}", school_page)
    app.router.add_get("/school/{id}/export.xlsx", school_export)
    app.router.add_get("/photo/{id}/{size:thumb|full}.jpg", photo)
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", HERE / "static", append_version=False)
    return app
