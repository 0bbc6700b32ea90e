"""Menus and help: what each role can do, as buttons that start the forms, and the command list that the
Telegram adapter sets with ``setMyCommands``."""

from __future__ import annotations

from conversations.forms import registry
from conversations.forms.base import Person
from core.i18n import T
from core.messages import Option, Outgoing
from core.vocabulary import role_label

# The order commands appear in menus, help and Telegram's command list.
MENU_ORDER = (
    "dangky",
    "nhapds",
    "maunhap",
    "bangiao",
    "nhanmay",
    "taitro",
    "duyet",
    "chotbaocao",
    "cuatoi",
    "tonghop",
    "xuatfile",
    "web",
    "taoma",
)


GLOBAL_COMMANDS: list[tuple[str, T]] = [
    ("menu", T(vi="Xem các việc bạn có thể làm", en="What you can do")),
    ("huy", T(vi="Hủy việc đang làm dở", en="Cancel the current form")),
    ("trogiup", T(vi="Hướng dẫn sử dụng", en="Help")),
]

MENU_HEAD = T(
    vi="Bạn muốn làm gì? Bấm một mục bên dưới hoặc gõ lệnh.",
    en="What would you like to do? Tap an item or type a command.",
)
GREETING = T(vi="Xin chào {name} ({role}).", en="Hello {name} ({role}).")
HELP = T(
    vi="<b>Hướng dẫn</b>\nBot giúp báo cáo chương trình «Sóng và máy tính cho em» ngay trên điện thoại.\n\n"
    "{commands}\n\n"
    "Trong lúc điền: bấm nút hoặc gõ câu trả lời (gõ số thứ tự hoặc chữ, có dấu hay không dấu đều được); "
    "gõ «quay lại» để sửa câu trước, «bỏ qua» cho mục không bắt buộc, /huy để hủy — chưa bấm «Lưu» thì "
    "chưa có gì được lưu. Ngày gõ theo dạng ngày/tháng/năm (dd/mm/yyyy).\n"
    "Cần hỗ trợ: {contact}.",
    en="<b>Help</b>\nThis bot reports the “Internet and computers for you” programme from your phone.\n\n"
    "{commands}\n\n"
    "While filling in a form: tap a button or type the answer (the number, or the text with or without "
    "accents); type “back” to change the previous answer, “skip” for optional ones, /huy to cancel — "
    "nothing is saved before “Save”. Dates are day/month/year (dd/mm/yyyy).\n"
    "Support: {contact}.",
)


def _ordered() -> list[str]:
    """Every registered command (own names, not aliases): MENU_ORDER first, then the others by name."""
    commands = registry().primary()
    return [c for c in MENU_ORDER if c in commands] + sorted(c for c in commands if c not in MENU_ORDER)


def _allowed(person: Person) -> list[tuple[str, T]]:
    """What this person's role may start, read from the registry (a new form shows up by itself)."""
    commands = registry().primary()
    items = []
    for cmd in _ordered():
        item = commands[cmd]
        if person.role in item.roles and item.description is not None:
            items.append((cmd, item.description))
    return items


MENU_AS_NOTE = T(
    vi="Các việc bạn có thể làm (gõ lệnh sau khi xong hoặc hủy việc đang làm):",
    en="What you can do (type the command once the current form is done or cancelled):",
)


def menu_message(
    person: Person, lang: str = "vi", *, greeting: bool = False, note: str | None = None, buttons: bool = True
) -> Outgoing:
    """The role's commands as buttons. ``buttons=False`` (a form is in progress): the same list as plain
    lines of text, so the question asked right after keeps the only numbered options on screen and a typed
    digit can mean nothing but an answer to it."""
    parts = []
    if note:
        parts.append(note)
    if greeting:
        parts.append(GREETING(lang, name=person.full_name, role=role_label(person.role, lang)))
    allowed = _allowed(person)
    if not buttons:
        parts.append(MENU_AS_NOTE(lang))
        parts += [f"/{cmd} — {desc(lang)}" for cmd, desc in allowed]
        return Outgoing(text="\n".join(parts))
    parts.append(MENU_HEAD(lang))
    options = [Option(key=f"/{cmd}", label=f"{desc(lang)} (/{cmd})") for cmd, desc in allowed]
    return Outgoing(text="\n".join(parts), options=options, remove_keyboard=True)


def help_message(person: Person, lang: str = "vi", *, contact: str = "") -> Outgoing:
    lines = [f"/{cmd} — {desc(lang)}" for cmd, desc in _allowed(person)]
    lines += [f"/{cmd} — {desc(lang)}" for cmd, desc in GLOBAL_COMMANDS]
    return Outgoing(text=HELP(lang, commands="\n".join(lines), contact=contact))


def _commands() -> list[tuple[str, T]]:
    commands = registry().primary()
    out = [(cmd, commands[cmd].description) for cmd in _ordered() if commands[cmd].description is not None]
    return out + GLOBAL_COMMANDS  # type: ignore[return-value]


def __getattr__(name: str):
    # COMMANDS is computed on first use so that importing the menu never imports every form module early.
    if name == "COMMANDS":
        return _commands()
    raise AttributeError(name)
