"""/web: a one-time link that opens the web view (progress at a glance) in a browser.

The link is good for 10 minutes and one sign-in (``storage.web``); the page it opens is scoped like the chat.
"""

from __future__ import annotations

from urllib.parse import quote

from conversations.forms.base import Action, Done, FormContext
from core.i18n import T
from core.vocabulary import Role

LINK = T(
    vi="🌐 Mở trang theo dõi tiến độ: {url}\n\nLiên kết chỉ dùng được <b>một lần</b> trong <b>10 phút</b>; "
    "đừng chuyển cho người khác. Phiên đăng nhập kéo dài 12 giờ.",
    en="🌐 Open the progress pages: {url}\n\nThe link works <b>once</b> within <b>10 minutes</b>; "
    "do not forward it. The session lasts 12 hours.",
)
OFF = T(
    vi="Trang web theo dõi tiến độ chưa được bật trên máy chủ này. Vui lòng báo quản trị viên.",
    en="The web view is not enabled on this server. Please tell the administrator.",
)


def sign_in_link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/login/{quote(token)}"


def _web(ctx: FormContext) -> Done:
    from storage.web import create_link

    if not ctx.web_url:
        return Done(OFF)
    token = create_link(ctx.session, staff_id=ctx.staff.id, now=ctx.now)
    return Done(LINK, url=sign_in_link(ctx.web_url, token))


WEB = Action(
    command="web",
    description=T(vi="Mở trang theo dõi tiến độ trên web", en="Open the progress pages in a browser"),
    roles=frozenset({Role.PRINCIPAL, Role.DISTRICT_OFFICER, Role.PROVINCE_OFFICER}),
    run=_web,
)

FORMS = [WEB]
