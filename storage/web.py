"""Sign-in for the web view without passwords: one-time links and browser sessions.

A link token and a session token are 32 random bytes (urlsafe base64) handed out once; the database keeps
only their SHA-256, so a copy of the database opens nothing. A link is good for ``LINK_TTL`` and one use:
``redeem_link`` marks it used with a conditional UPDATE (``used_at IS NULL``), so the same link opened twice
at once in two processes still opens one session. A session lasts ``SESSION_TTL`` from sign-in.

``record_view`` is the one place a view of pupil data is written down (who, when, which school, which page):
it writes an audit event today, and the access log of the privacy work can take it over in one place.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlmodel import Session

from storage.models import Staff, WebSession, WebSignIn

LINK_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def create_link(session: Session, *, staff_id: int, now: datetime) -> str:
    """A fresh one-time sign-in token for ``staff_id`` (the caller builds the URL)."""
    token = new_token()
    session.add(WebSignIn(staff_id=staff_id, token_hash=token_hash(token), created_at=now, expires_at=now + LINK_TTL))
    session.flush()
    return token


@dataclass(frozen=True)
class LinkState:
    ok: bool
    reason: str = ""  # unknown, used, expired, inactive


def check_link(session: Session, *, token: str, now: datetime) -> LinkState:
    """Would this link sign in now? Reads only (a page shows the button; a preview bot uses nothing up)."""
    row = session.execute(select(WebSignIn).where(WebSignIn.token_hash == token_hash(token))).scalar_one_or_none()
    if row is None:
        return LinkState(False, "unknown")
    if row.used_at is not None:
        return LinkState(False, "used")
    if row.expires_at <= now:
        return LinkState(False, "expired")
    staff = session.get(Staff, row.staff_id)
    if staff is None or not staff.active:
        return LinkState(False, "inactive")
    return LinkState(True)


def redeem_link(session: Session, *, token: str, now: datetime) -> tuple[int | None, str]:
    """(staff id, "") when the link was good and is now used up; (None, reason) otherwise."""
    state = check_link(session, token=token, now=now)
    if not state.ok:
        return None, state.reason
    h = token_hash(token)
    done = session.execute(
        update(WebSignIn)
        .where(WebSignIn.token_hash == h, WebSignIn.used_at.is_(None), WebSignIn.expires_at > now)
        .values(used_at=now)
    )
    if done.rowcount != 1:  # someone else used it between the check and now
        return None, "used"
    staff_id = session.execute(select(WebSignIn.staff_id).where(WebSignIn.token_hash == h)).scalar_one()
    return staff_id, ""


def open_session(session: Session, *, staff_id: int, via: str, now: datetime) -> str:
    """A new browser session; returns the cookie value."""
    token = new_token()
    session.add(
        WebSession(
            staff_id=staff_id, token_hash=token_hash(token), via=via, created_at=now, expires_at=now + SESSION_TTL
        )
    )
    session.flush()
    return token


def session_staff(session: Session, *, token: str, now: datetime) -> Staff | None:
    """The active person behind a cookie, or None (unknown, expired, signed out, deactivated)."""
    if not token or len(token) > 100:
        return None
    row = session.execute(select(WebSession).where(WebSession.token_hash == token_hash(token))).scalar_one_or_none()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    staff = session.get(Staff, row.staff_id)
    if staff is None or not staff.active:
        return None
    return staff


def end_session(session: Session, *, token: str, now: datetime) -> str | None:
    """Sign out: the session ends now. Returns how it was opened (``link`` or ``telegram``: the web view deletes
    the cookie with the attributes it was set with), or None when no open session had this token."""
    h = token_hash(token)
    done = session.execute(
        update(WebSession).where(WebSession.token_hash == h, WebSession.ended_at.is_(None)).values(ended_at=now)
    )
    if done.rowcount != 1:
        return None
    return session.execute(select(WebSession.via).where(WebSession.token_hash == h)).scalar_one()


def csrf_for(token: str) -> str:
    """The CSRF token of a session (or of a pre-sign-in cookie): derived, so nothing more is stored."""
    return hmac.new(token.encode("utf-8"), b"fieldbot-csrf", hashlib.sha256).hexdigest()


def csrf_ok(token: str, sent: str | None) -> bool:
    return bool(token) and bool(sent) and hmac.compare_digest(csrf_for(token), str(sent))


def record_view(
    session: Session, *, staff_id: int, school_id: int | None, page: str, now: datetime, via: str = "web"
) -> None:
    """Who looked at pupil data on which page, when: one row of the access log (``storage.access_log``), the
    same record of processing the chat's summaries and exports write; scoped to the school when the page is
    one school's, else to the person's own scope."""
    from storage.access_log import record_access
    from storage.scope import Scope

    staff = session.get(Staff, staff_id)
    if staff is None:
        return
    scope = Scope(district_id=staff.district_id, school_id=school_id) if school_id is not None else None
    if scope is None:
        try:
            scope = Scope.for_staff(staff)
        except Exception:  # a roster row without a district or school: still logged, by label
            scope = "none"
    what = f"{via}:{page.split('?', 1)[0].strip('/').split('/', 1)[0] or 'overview'}"
    record_access(session, actor=staff, role=staff.role, what=what, scope=scope, pupils=0, now=now)
