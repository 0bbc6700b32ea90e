"""People and their chat accounts: find a roster person by phone or by chat account, link an account, and
decide where a notification to a person goes."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, select

from core.phones import normalize_phone
from storage import audit
from storage.models import ChatIdentity, Conversation, District, Staff


def find_staff_by_phone(session: Session, *, phone: str) -> Staff | None:
    """Any roster person (active or not) with this phone, typed in any common form; None if the phone is not
    a valid number or not in the roster."""
    try:
        e164 = normalize_phone(phone)
    except ValueError:
        return None
    return session.exec(select(Staff).where(Staff.phone == e164)).first()


def find_staff_by_identity(session: Session, *, channel: str, external_id: str) -> Staff | None:
    q = (
        select(Staff)
        .join(ChatIdentity, ChatIdentity.staff_id == Staff.id)
        .where(ChatIdentity.channel == channel, ChatIdentity.external_id == external_id)
    )
    return session.exec(q).first()


def identities_of(session: Session, *, staff_id: int) -> list[ChatIdentity]:
    q = select(ChatIdentity).where(ChatIdentity.staff_id == staff_id).order_by(ChatIdentity.linked_at.desc())
    return list(session.exec(q).all())


def link_identity(
    session: Session,
    *,
    staff_id: int,
    channel: str,
    external_id: str,
    chat_id: str,
    now: datetime,
    actor_id: int | None = None,
) -> ChatIdentity:
    """Link a chat account to a roster person; one account per person per channel.

    - The account already belongs to this person: refresh its chat id.
    - The account belonged to someone else (a shared phone changed hands, a re-issued SIM): it moves to this
      person, with an audit event naming both.
    - This person had another account on this channel (a new phone): the old account is unlinked, audited.
    """
    current = session.exec(
        select(ChatIdentity).where(ChatIdentity.channel == channel, ChatIdentity.external_id == external_id)
    ).first()
    others = session.exec(
        select(ChatIdentity).where(
            ChatIdentity.staff_id == staff_id, ChatIdentity.channel == channel, ChatIdentity.external_id != external_id
        )
    ).all()
    for old in others:
        audit.record(
            session,
            actor_id=actor_id or staff_id,
            action="unlink",
            entity="chat_identity",
            entity_id=old.id,
            before={"staff_id": old.staff_id, "channel": channel, "external_id": old.external_id},
            after=None,
            now=now,
        )
        session.delete(old)
    session.flush()
    if current is not None:
        if current.staff_id != staff_id:
            audit.record(
                session,
                actor_id=actor_id or staff_id,
                action="relink",
                entity="chat_identity",
                entity_id=current.id,
                before={"staff_id": current.staff_id},
                after={"staff_id": staff_id},
                now=now,
            )
            # The previous owner's half-filled form must not be continued by the new owner.
            prev = session.exec(
                select(Conversation).where(Conversation.staff_id == current.staff_id, Conversation.channel == channel)
            ).first()
            if prev is not None:
                session.delete(prev)
            current.staff_id = staff_id
            current.linked_at = now
        current.chat_id = chat_id
        current.blocked_at = None
        session.add(current)
        session.flush()
        return current
    identity = ChatIdentity(staff_id=staff_id, channel=channel, external_id=external_id, chat_id=chat_id, linked_at=now)
    session.add(identity)
    session.flush()
    audit.record(
        session,
        actor_id=actor_id or staff_id,
        action="link",
        entity="chat_identity",
        entity_id=identity.id,
        before=None,
        after={"staff_id": staff_id, "channel": channel},
        now=now,
    )
    return identity


def district_code(session: Session, *, district_id: int) -> str | None:
    district = session.get(District, district_id)
    return district.code if district is not None else None
