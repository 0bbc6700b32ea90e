"""/nhanmay and /taitro: the principal records computers the school received — from the programme (through
the district office) or from another sponsor. Both end in ``storage.receipts.record_batch``; the rules
(quantity, dates, serials unique in the whole database) are checked as each answer is typed, and again by
the storage on save.
"""

from __future__ import annotations

from typing import Any

from conversations.fields import (
    choice_field,
    date_field,
    number_field,
    parse_past_date,
    phone_field,
    text_field,
    text_parser,
)
from conversations.forms.base import Choice, Done, Field, Form, FormContext, Invalid
from conversations.refusals import refusal
from core import vocabulary
from core.clock import fmt_date
from core.i18n import T
from core.messages import esc
from core.vocabulary import DeviceType, Role, Source, SponsorKind
from storage import errors, receipts

# --- shared questions about the computers -----------------------------------------------------------------

CONDITION_NEW = "new"
CONDITION_USED_GOOD = "used_good"
CONDITION_OTHER = "other"
CONDITION_LABELS = {
    CONDITION_NEW: T(vi="Mới", en="New"),
    CONDITION_USED_GOOD: T(vi="Đã qua sử dụng - tốt", en="Used - good"),
    CONDITION_OTHER: T(vi="Khác (ghi rõ)", en="Other (describe)"),
}
# What is stored in Batch.condition: Vietnamese, as the district's spreadsheets and the CSDL write it.
_CONDITION_STORED = {CONDITION_NEW: "Mới", CONDITION_USED_GOOD: "Đã qua sử dụng - tốt"}


def _serials_parser(text: str, ctx: FormContext) -> list[str]:
    try:
        serials = receipts.parse_serials(text)
        if not serials:
            raise Invalid(
                T(
                    vi="Chưa thấy số sê-ri nào. Gõ mỗi số một dòng hoặc cách nhau bằng dấu phẩy, "
                    "hoặc chọn “Bỏ qua” nếu không có.",
                    en="No serial found. Type one per line or comma-separated, or skip.",
                )
            )
        quantity = ctx.values.get("quantity")
        if quantity is not None:
            receipts.check_serial_count(serials, quantity)
        receipts.check_serials_free(ctx.session, serials)
    except errors.RecordError as exc:
        raise Invalid(refusal(exc, ctx.lang)) from None
    return serials


def _show_serials(value: list[str], _ctx: FormContext) -> str:
    head = ", ".join(value[:5])
    return f"{len(value)}: {head}{', …' if len(value) > 5 else ''}"


def device_fields() -> list[Field]:
    """Quantity, type, brand/model, condition and serials: asked the same way in /nhanmay and /taitro."""
    return [
        number_field(
            "quantity",
            T(vi="Số lượng máy nhận được? (gõ một số, ví dụ: 10)", en="How many computers? (a number, e.g. 10)"),
            T(vi="Số lượng", en="Quantity"),
            minimum=1,
            maximum=receipts.MAX_QUANTITY,
        ),
        choice_field(
            "device_type",
            T(vi="Loại máy?", en="Type of computer?"),
            T(vi="Loại máy", en="Type"),
            [Choice(str(kind), label) for kind, label in vocabulary.DEVICE_TYPE_LABELS.items()],
        ),
        text_field(
            "brand_model",
            T(vi="Hãng và model máy? (ví dụ: Dell Latitude 3420)", en="Brand and model? (e.g. Dell Latitude 3420)"),
            T(vi="Hãng, model", en="Brand, model"),
            max_len=200,
        ),
        choice_field(
            "condition",
            T(vi="Tình trạng máy?", en="Condition?"),
            T(vi="Tình trạng", en="Condition"),
            [Choice(key, label) for key, label in CONDITION_LABELS.items()],
        ),
        text_field(
            "condition_other",
            T(vi="Mô tả tình trạng máy:", en="Describe the condition:"),
            T(vi="Tình trạng (ghi rõ)", en="Condition (details)"),
            max_len=200,
            when=lambda ctx: ctx.values.get("condition") == CONDITION_OTHER,
        ),
        text_field(
            "serials",
            T(
                vi="Số sê-ri của các máy (không bắt buộc): mỗi số một dòng hoặc cách nhau bằng dấu phẩy, "
                "đủ một số cho mỗi máy. Chọn “Bỏ qua” nếu không có.",
                en="Serial numbers (optional): one per line or comma-separated, one per computer. Skip if none.",
            ),
            T(vi="Số sê-ri", en="Serials"),
            parse=_serials_parser,
            required=False,
            max_len=100_000,
            show=_show_serials,
        ),
    ]


def _condition(values: dict[str, Any]) -> str:
    if values.get("condition") == CONDITION_OTHER:
        return values["condition_other"]
    return _CONDITION_STORED[values["condition"]]


# Which question to ask again when the storage refuses the saved answers.
_FIELD_OF_CODE = {
    "quantity": "quantity",
    "future_date": "received_on",
    "serial_count": "serials",
    "serial_taken": "serials",
    "serial_repeated": "serials",
    "serial_invalid": "serials",
    "phone": "contact_phone",
}


def invalid(ctx: FormContext, exc: errors.RecordError) -> Invalid:
    """A storage refusal as the engine's ``Invalid``: the message, and the question to ask again."""
    return Invalid(refusal(exc, ctx.lang), field=_FIELD_OF_CODE.get(exc.code))


def _save_batch(ctx: FormContext, *, source: Source, sponsor_id: int | None) -> Any:
    v = ctx.values
    try:
        return receipts.record_batch(
            ctx.session,
            school_id=ctx.staff.school_id,
            by=ctx.staff.id,
            source=source,
            sponsor_id=sponsor_id,
            received_on=v["received_on"],
            quantity=v["quantity"],
            device_type=DeviceType(v["device_type"]),
            brand_model=v["brand_model"],
            condition=_condition(v),
            serials=v.get("serials") or [],
            now=ctx.now,
            tz=ctx.programme.tz,
        )
    except errors.RecordError as exc:
        raise invalid(ctx, exc) from None


_SAVED = T(
    vi="✅ Đã ghi nhận lô máy #{id}: {quantity} {kind} {model}, nhận ngày {day}{serials}.\n"
    "Giáo viên và hiệu trưởng có thể bàn giao máy cho học sinh bằng lệnh /bangiao.",
    en="✅ Batch #{id} recorded: {quantity} {kind} {model}, received {day}{serials}.\n"
    "Hand computers over to students with /bangiao.",
)


def _saved_text(ctx: FormContext, batch: Any) -> str:
    serials = len(ctx.values.get("serials") or [])
    return ctx.t(
        _SAVED,
        id=batch.id,
        quantity=batch.quantity,
        kind=vocabulary.DEVICE_TYPE_LABELS[batch.device_type](ctx.lang).lower(),
        model=esc(batch.brand_model),
        day=fmt_date(batch.received_on),
        serials=ctx.t(T(vi=", {n} số sê-ri", en=", {n} serials"), n=serials) if serials else "",
    )


def _received_on_field() -> Field:
    return date_field(
        "received_on",
        T(vi="Ngày nhận máy? (dd/mm/yyyy, ví dụ 15/11/2021)", en="Date received? (dd/mm/yyyy)"),
        T(vi="Ngày nhận", en="Date received"),
        parse=parse_past_date,
        default_today=True,
    )


# --- /nhanmay -------------------------------------------------------------------------------------------


def _save_programme_batch(ctx: FormContext) -> Done:
    return Done(_saved_text(ctx, _save_batch(ctx, source=Source.PROGRAMME, sponsor_id=None)))


NHANMAY = Form(
    name="nhanmay",
    command="nhanmay",
    title=T(vi="Nhận máy tính từ Phòng GD&ĐT", en="Computers received from the district office"),
    description=T(vi="Ghi nhận máy tính trường nhận từ chương trình", en="Record computers received"),
    roles=frozenset({Role.PRINCIPAL}),
    fields=[_received_on_field(), *device_fields()],
    on_complete=_save_programme_batch,
)


# --- /taitro --------------------------------------------------------------------------------------------

SPONSOR_KINDS = (SponsorKind.BUSINESS, SponsorKind.ORGANISATION, SponsorKind.INDIVIDUAL)


def _save_sponsored_batch(ctx: FormContext) -> Done:
    v = ctx.values
    try:
        sponsor = receipts.record_sponsor(
            ctx.session,
            school_id=ctx.staff.school_id,
            by=ctx.staff.id,
            name=v["sponsor_name"],
            kind=SponsorKind(v["sponsor_kind"]),
            contact_name=v.get("contact_name"),
            contact_phone=v.get("contact_phone"),
            now=ctx.now,
        )
    except errors.RecordError as exc:
        raise invalid(ctx, exc) from None
    batch = _save_batch(ctx, source=Source.OTHER, sponsor_id=sponsor.id)
    return Done(
        T(vi="{base}\nNhà tài trợ: {sponsor}.", en="{base}\nSponsor: {sponsor}."),
        base=_saved_text(ctx, batch),
        sponsor=esc(sponsor.name),
    )


TAITRO = Form(
    name="taitro",
    command="taitro",
    title=T(vi="Máy tính tài trợ từ nguồn khác", en="Computers donated by another sponsor"),
    description=T(vi="Ghi nhận máy tính do nhà tài trợ khác trao", en="Record a donation from a sponsor"),
    roles=frozenset({Role.PRINCIPAL}),
    fields=[
        text_field(
            "sponsor_name",
            T(vi="Tên nhà tài trợ? (ví dụ: Công ty CP ABC)", en="Sponsor's name?"),
            T(vi="Nhà tài trợ", en="Sponsor"),
            parse=text_parser(min_len=2, max_len=200),
        ),
        choice_field(
            "sponsor_kind",
            T(vi="Nhà tài trợ là:", en="The sponsor is:"),
            T(vi="Loại nhà tài trợ", en="Kind"),
            [Choice(str(kind), vocabulary.SPONSOR_KIND_LABELS[kind]) for kind in SPONSOR_KINDS],
        ),
        text_field(
            "contact_name",
            T(vi="Họ tên người liên hệ của nhà tài trợ?", en="Contact person's name?"),
            T(vi="Người liên hệ", en="Contact person"),
            parse=text_parser(min_len=2, max_len=120),
        ),
        phone_field(
            "contact_phone",
            T(
                vi="Số điện thoại người liên hệ? (ví dụ: 0913 860 438; chọn “Bỏ qua” nếu không có)",
                en="Contact phone? (skip if none)",
            ),
            T(vi="Điện thoại liên hệ", en="Contact phone"),
            required=False,
        ),
        *device_fields(),
        _received_on_field(),
    ],
    on_complete=_save_sponsored_batch,
)

FORMS = [NHANMAY, TAITRO]
