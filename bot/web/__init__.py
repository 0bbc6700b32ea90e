"""The web view: progress at a glance in a browser and inside Telegram (Mini App), scoped like the chat.

``build_web_app(WebConfig(...))`` gives an aiohttp application; ``fieldbot run`` serves it when
``FIELDBOT_WEB_LISTEN`` is set (``bot/run.py``), ``fieldbot web serve`` alone. Pages are server-rendered
Jinja2 templates with one CSS file and one small script for the Mini App sign-in: no build chain, and the
Content-Security-Policy forbids inline scripts and styles.
"""

from bot.web.app import WebConfig, build_web_app
from conversations.forms.web import sign_in_link as sign_in_url

__all__ = ["WebConfig", "build_web_app", "sign_in_url"]
