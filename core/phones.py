"""Vietnamese phone numbers, in whatever form people type them, to E.164."""

from __future__ import annotations

import phonenumbers


def normalize_phone(raw: str) -> str:
    """'0912.345.678', '0912 345 678', '+84912345678', '84912345678' -> '+84912345678'.

    Raises ValueError with a Vietnamese reason.
    """
    text = (raw or "").strip()
    if not text:
        raise ValueError("thiếu số điện thoại")
    digits = "".join(ch for ch in text if ch.isdigit())
    # "84912345678": the country code typed without its plus sign.
    if not text.startswith(("+", "0")) and digits.startswith("84") and len(digits) in (11, 12):
        text = "+" + digits
    try:
        number = phonenumbers.parse(text, "VN")
    except phonenumbers.NumberParseException:
        raise ValueError(f"số điện thoại không hợp lệ: {raw}") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"số điện thoại không hợp lệ: {raw}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(e164: str | None) -> str:
    """For logs: never a person's full number."""
    if not e164:
        return "-"
    return e164[:4] + "*" * max(0, len(e164) - 7) + e164[-3:]


def display_phone(e164: str) -> str:
    """+84912345678 -> 0912 345 678, as Vietnamese people write it."""
    try:
        return phonenumbers.format_number(phonenumbers.parse(e164, "VN"), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return e164
