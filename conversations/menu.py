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
    "maketoken",
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
    "chưa có gì được lưu. Ngày gõ theo dạng ngày/tháng/năm, ví dụ 05/09/2012.\n"
    "Cần hỗ trợ: {contact}.",
    en="<b>Help</b>\nThis bot reports the “Internet and computers for you” programme from your phone.\n\n"
    "{commands}\n\n"
    "While filling in a form: tap a button or type the answer (the number, or the text with or without "
    "accents); type “back” to change the previous answer, “skip” for optional ones, /huy to cancel — "
    "nothing is saved before “Save”. Dates are day/month/year, e.g. 05/09/2012.\n"
    "Support: {contact}.",
)


def _allowed(person: Person) -> list[tuple[str, T]]:
    reg = registry()
    items = []
    for cmd in MENU_ORDER:
        item = reg.commands.get(cmd)
        if item is not None and person.role in item.roles and item.description is not None:
            items.append((cmd, item.description))
    return items


def menu_message(person: Person, lang: str = "vi", *, greeting: bool = False, note: str | None = None) -> Outgoing:
    parts = []
    if note:
        parts.append(note)
    if greeting:
        parts.append(GREETING(lang, name=person.full_name, role=role_label(person.role, lang)))
    parts.append(MENU_HEAD(lang))
    options = [Option(key=f"/{cmd}", label=f"{desc(lang)} (/{cmd})") for cmd, desc in _allowed(person)]
    return Outgoing(text="\n".join(parts), options=options, remove_keyboard=True)


def help_message(person: Person, lang: str = "vi", *, contact: str = "") -> Outgoing:
    lines = [f"/{cmd} — {desc(lang)}" for cmd, desc in _allowed(person)]
    lines += [f"/{cmd} — {desc(lang)}" for cmd, desc in GLOBAL_COMMANDS]
    return Outgoing(text=HELP(lang, commands="\n".join(lines), contact=contact))


def _commands() -> list[tuple[str, T]]:
    reg = registry()
    out = [
        (cmd, reg.commands[cmd].description)
        for cmd in MENU_ORDER
        if cmd in reg.commands and reg.commands[cmd].description is not None
    ]
    out += [
        (cmd, reg.commands[cmd].description)
        for cmd in sorted(reg.commands)
        if cmd not in MENU_ORDER and reg.commands[cmd].description is not None
    ]
    return out + GLOBAL_COMMANDS  # type: ignore[return-value]


def __getattr__(name: str):
    # COMMANDS is computed on first use so that importing the menu never imports every form module early.
    if name == "COMMANDS":
        return _commands()
    raise AttributeError(name)
