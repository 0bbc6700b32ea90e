"""Walks a person through a ``Form``: asks the next question, validates the answer, goes back, skips, shows
the summary, edits one field, completes. Pure logic over a ``Progress`` (the JSON kept in the
Conversation row) and a ``FormContext``; the engine loads and saves it around each message.

Option keys are ``<question nonce>.<index>``: the nonce is random per question, so a button from an old
message or from another form never matches the current question, and the value behind an index is the one
stored when the question was asked — a forged key can at most pick one of the options that were offered.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from conversations.fields import show_value
from conversations.forms.base import Done, Field, Form, FormContext, Invalid, Kind
from conversations.state import from_json, to_json
from core.i18n import T
from core.messages import DocumentInput, Incoming, Option, Outgoing, PhotoInput, esc
from core.text import fold, is_word, match_label

FILL, SUMMARY, PICK, EDIT = "fill", "summary", "pick", "edit"

BACK_WORDS = ("quay lại", "trở lại", "quay lai", "back", "lùi")
SKIP_WORDS = ("bỏ qua", "bo qua", "skip", "không có", "khong co")
DONE_WORDS = ("xong", "done", "hết", "het", "đủ rồi")
YES_WORDS = ("có", "co", "ok", "đồng ý", "dong y", "yes", "y", "c", "vâng", "ừ")
NO_WORDS = ("không", "khong", "ko", "k", "no", "n")

L_BACK = T(vi="↩ Quay lại", en="↩ Back")
L_SKIP = T(vi="Bỏ qua", en="Skip")
L_DONE = T(vi="✅ Xong", en="✅ Done")
L_SAVE = T(vi="💾 Lưu", en="💾 Save")
L_EDIT = T(vi="✏️ Sửa một mục", en="✏️ Change an answer")
L_CANCEL = T(vi="✖ Hủy", en="✖ Cancel")

STALE = T(
    vi="Lựa chọn này đã hết hạn (nút của một tin nhắn cũ). Vui lòng trả lời câu hỏi dưới đây.",
    en="That choice has expired (a button from an old message). Please answer the question below.",
)
NOT_AN_OPTION = T(
    vi="«{v}» không khớp lựa chọn nào. Vui lòng bấm một nút hoặc gõ số thứ tự.",
    en="“{v}” matches no option. Please tap a button or type its number.",
)
AMBIGUOUS = T(
    vi="«{v}» khớp nhiều lựa chọn: {labels}. Vui lòng gõ rõ hơn hoặc gõ số thứ tự.",
    en="“{v}” matches several options: {labels}. Please be more specific or type the number.",
)
WANT_PHOTO = T(
    vi="Ở bước này cần gửi một ảnh (chụp hoặc chọn từ thư viện), không phải chữ.",
    en="This step needs a photo (take one or pick from the gallery), not text.",
)
NO_PHOTO_HERE = T(
    vi="Ở bước này chưa cần ảnh; vui lòng trả lời bằng chữ hoặc bấm nút.",
    en="No photo is needed here; please answer with text or a button.",
)
WANT_DOCUMENT = T(
    vi="Ở bước này cần gửi một tệp (Excel .xlsx hoặc .csv) bằng nút đính kèm 📎, không phải chữ.",
    en="This step needs a file (Excel .xlsx or .csv) sent with the 📎 button, not text.",
)
NO_DOCUMENT_HERE = T(
    vi="Ở bước này chưa cần tệp; vui lòng trả lời bằng chữ hoặc bấm nút.",
    en="No file is needed here; please answer with text or a button.",
)
FIRST_QUESTION = T(vi="Đây đã là câu hỏi đầu tiên.", en="This is already the first question.")
REQUIRED = T(vi="Mục này bắt buộc, không bỏ qua được.", en="This answer is required.")
SUMMARY_HEAD = T(vi="<b>Kiểm tra lại thông tin — {title}</b>", en="<b>Please check — {title}</b>")
SUMMARY_ASK = T(vi="Lưu thông tin này?", en="Save this?")
PICK_ASK = T(vi="Bạn muốn sửa mục nào?", en="Which answer do you want to change?")
PHOTO_MORE = T(
    vi="Đã nhận {n} ảnh. Gửi thêm ảnh, hoặc bấm «Xong».", en="{n} photo(s) received. Send more, or tap “Done”."
)
PHOTO_AGAIN = T(
    vi="Ảnh này bạn đã gửi rồi, không tính thêm.", en="You already sent this photo; it is not counted twice."
)
PHOTO_MIN = T(vi="Cần ít nhất {n} ảnh.", en="At least {n} photo(s) are needed.")
MULTI_HINT = T(
    vi="(Bấm để chọn/bỏ chọn, rồi bấm «Xong»; hoặc gõ các số, ví dụ: 1,3)",
    en="(Tap to select/unselect, then “Done”; or type the numbers, e.g. 1,3)",
)
NONE_SELECTED = T(vi="Chưa chọn mục nào.", en="Nothing selected yet.")
NO_OPTIONS = T(vi="Hiện không có lựa chọn nào cho bước này.", en="There is nothing to choose from right now.")


@dataclass
class Progress:
    """Where a person is in a form; serialised as the Conversation row's ``data``."""

    form: str
    values: dict[str, Any] = field(default_factory=dict)
    hist: list[str] = field(default_factory=list)
    mode: str = FILL
    step: str = ""
    q: str = ""
    opts: list[list[Any]] = field(default_factory=list)  # [label, value-or-control] offered with ``q``
    sel: list[Any] = field(default_factory=list)  # multi-choice selection / photos collected so far
    labels: dict[str, str] = field(default_factory=dict)  # label of each chosen option, for the summary

    def dump(self) -> dict[str, Any]:
        return {
            "v": to_json(self.values),
            "h": self.hist,
            "m": self.mode,
            "q": self.q,
            "o": self.opts,
            "s": to_json(self.sel),
            "l": self.labels,
        }

    @classmethod
    def load(cls, form: str, step: str, data: dict[str, Any]) -> Progress:
        return cls(
            form=form,
            values=from_json(data.get("v", {})),
            hist=list(data.get("h", [])),
            mode=data.get("m", FILL),
            step=step,
            q=data.get("q", ""),
            opts=list(data.get("o", [])),
            sel=from_json(data.get("s", [])),
            labels=dict(data.get("l", {})),
        )


def _ctl(name: str, value: Any = None) -> dict[str, Any]:
    return {"c": name, "v": to_json(value)} if value is not None else {"c": name}


def _photo_key(value: Any) -> Any:
    """What makes two accepted photos the same: the content hash when the acceptor returns one."""
    return value.get("sha256", value) if isinstance(value, dict) else value


def _is_ctl(value: Any, name: str | None = None) -> bool:
    return isinstance(value, dict) and "c" in value and (name is None or value["c"] == name)


@dataclass
class Outcome:
    """What one step produced: messages, and whether the form is over (``done``) or continues."""

    messages: list[Outgoing]
    done: Done | None = None
    cancelled: bool = False


class Runner:
    def __init__(self, form: Form, ctx: FormContext, progress: Progress) -> None:
        self.form = form
        self.ctx = ctx
        self.p = progress
        self.ctx.values = progress.values

    # --- entry points --------------------------------------------------------------------------------------

    def begin(self, *, pick: bool = False) -> Outcome:
        if pick:
            self.p.mode = PICK
            self.p.step = "pick"
            return Outcome([self._ask_new()])
        return self._advance()

    def answer(self, incoming: Incoming, photo: bytes | None = None, document: bytes | None = None) -> Outcome:
        """One message from the person while this form is active."""
        f = self._current_field()
        if incoming.document is not None and incoming.choice is None:
            if f is None or f.kind != Kind.DOCUMENT or document is None:
                return Outcome([self._reask(error=self.ctx.t(NO_DOCUMENT_HERE))])
            return self._take_document(f, document, incoming.document)
        if incoming.choice is not None:
            picked = self._picked(incoming.choice)
            if picked is None:
                return Outcome([self._reask(error=self.ctx.t(STALE))])
            return self._take(f, picked, label=picked[0])
        if incoming.photo is not None:
            if f is None or f.kind != Kind.PHOTO or photo is None:
                return Outcome([self._reask(error=self.ctx.t(NO_PHOTO_HERE))])
            return self._take_photo(f, photo, incoming.photo)
        text = (incoming.text or "").strip()
        if not text:
            return Outcome([self._reask()])
        return self._typed(f, text)

    def reask(self, note: str | None = None) -> Outgoing:
        return self._reask(note=note)

    # --- answers --------------------------------------------------------------------------------------------

    def _picked(self, key: str) -> list[Any] | None:
        q, _, idx = key.partition(".")
        if not self.p.q or q != self.p.q or not idx.isdigit():
            return None
        i = int(idx)
        return self.p.opts[i] if 0 <= i < len(self.p.opts) else None

    def _typed(self, f: Field | None, text: str) -> Outcome:
        ctx = self.ctx
        if is_word(text, *BACK_WORDS):
            return self._take(f, [None, _ctl("back")])
        if f is not None and self.p.mode in (FILL, EDIT) and is_word(text, *SKIP_WORDS) and not f.required:
            return self._take(f, [None, _ctl("skip")])
        labels = [o[0] for o in self.p.opts]
        if self.p.mode in (SUMMARY, PICK) or (f is not None and f.kind in (Kind.CHOICE, Kind.CONFIRM)):
            if f is not None and f.kind == Kind.CONFIRM and self.p.mode in (FILL, EDIT):
                if is_word(text, *YES_WORDS):
                    return self._take(f, [labels[0] if labels else "", True], label=labels[0] if labels else None)
                if is_word(text, *NO_WORDS):
                    return self._take(
                        f, [labels[1] if len(labels) > 1 else "", False], label=labels[1] if len(labels) > 1 else None
                    )
            m = match_label(text, labels)
            if m.index is not None:
                return self._take(f, self.p.opts[m.index], label=labels[m.index])
            if m.ambiguous:
                shown = ", ".join(f"«{esc(labels[i])}»" for i in m.indexes)
                return Outcome([self._reask(error=ctx.t(AMBIGUOUS, v=esc(text[:40]), labels=shown))])
            return Outcome([self._reask(error=ctx.t(NOT_AN_OPTION, v=esc(text[:40])))])
        if f is None:
            return Outcome([self._reask()])
        if f.kind == Kind.MULTI:
            return self._typed_multi(f, text)
        if f.kind == Kind.PHOTO:
            if is_word(text, *DONE_WORDS) and f.max_photos > 1:
                return self._take(f, [None, _ctl("done")])
            return Outcome([self._reask(error=ctx.t(WANT_PHOTO))])
        if f.kind == Kind.DOCUMENT:
            return Outcome([self._reask(error=ctx.t(WANT_DOCUMENT))])
        for label, value in self.p.opts:  # "hôm nay" for a date offered as today
            if _is_ctl(value, "default") and (fold(text) == fold(label) or fold(label).startswith(fold(text) + " ")):
                return self._take(f, [label, value], label=None)
        try:
            value = f.parse(text, ctx) if f.parse is not None else text
        except Invalid as exc:
            return Outcome([self._reask(error=exc.text(ctx.lang))])
        return self._accept(f, value, None)

    def _typed_multi(self, f: Field, text: str) -> Outcome:
        if is_word(text, *DONE_WORDS):
            return self._take(f, [None, _ctl("done")])
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p]
        choice_opts = [o for o in self.p.opts if not _is_ctl(o[1])]
        if parts and all(p.isascii() and p.isdigit() and 1 <= int(p) <= len(choice_opts) for p in parts):
            chosen = [choice_opts[int(p) - 1] for p in parts]
            values = list(dict.fromkeys(o[1] for o in chosen))
            label = ", ".join(o[0] for o in chosen)
            return self._accept(f, values, label)
        m = match_label(text, [o[0] for o in choice_opts], by_number=False)
        if m.index is not None:
            return self._toggle(f, choice_opts[m.index][1])
        return Outcome([self._reask(error=self.ctx.t(NOT_AN_OPTION, v=esc(text[:40])))])

    def _take(self, f: Field | None, opt: list[Any], label: str | None = None) -> Outcome:
        """An option was chosen (tapped or typed) or a control word typed."""
        value = opt[1]
        ctx = self.ctx
        if _is_ctl(value):
            c = value["c"]
            if c == "back":
                return self._back()
            if c == "cancel":
                return Outcome([], cancelled=True)
            if c == "save":
                return self._complete()
            if c == "edit":
                self.p.mode, self.p.step = PICK, "pick"
                return Outcome([self._ask_new()])
            if c == "summary":
                self.p.mode, self.p.step = SUMMARY, "summary"
                return Outcome([self._ask_new()])
            if c == "pick":
                target = self.form.field(value.get("v") or "")
                if target is None:
                    return Outcome([self._reask(error=ctx.t(STALE))])
                self.p.mode, self.p.step, self.p.sel = EDIT, target.name, []
                return Outcome([self._ask_new()])
            if f is None:
                return Outcome([self._reask()])
            if c == "skip":
                if f.required:
                    return Outcome([self._reask(error=ctx.t(REQUIRED))])
                return self._accept(f, None, None)
            if c == "default":
                return self._accept(f, from_json(value.get("v")), label)
            if c == "done":
                if f.kind == Kind.MULTI:
                    if not self.p.sel and f.required:
                        return Outcome([self._reask(error=ctx.t(NONE_SELECTED))])
                    labels = [o[0] for o in self.p.opts if not _is_ctl(o[1]) and o[1] in self.p.sel]
                    return self._accept(f, list(self.p.sel), ", ".join(labels))
                if f.kind == Kind.PHOTO:
                    if len(self.p.sel) < f.min_photos:
                        return Outcome([self._reask(error=ctx.t(PHOTO_MIN, n=f.min_photos))])
                    return self._accept(f, list(self.p.sel), None)
            return Outcome([self._reask(error=ctx.t(STALE))])
        if f is None:
            return Outcome([self._reask(error=ctx.t(STALE))])
        if f.kind == Kind.MULTI:
            return self._toggle(f, value)
        if f.kind == Kind.CONFIRM:
            value = bool(value)
        return self._accept(f, value, label if f.kind == Kind.CHOICE else None)

    def _toggle(self, f: Field, value: Any) -> Outcome:
        if value in self.p.sel:
            self.p.sel.remove(value)
        else:
            self.p.sel.append(value)
        return Outcome([self._reask()])

    def _take_photo(self, f: Field, data: bytes, photo: PhotoInput) -> Outcome:
        try:
            value = f.accept_photo(self.ctx, data, photo) if f.accept_photo else None
        except Invalid as exc:
            return Outcome([self._reask(error=exc.text(self.ctx.lang))])
        if f.max_photos <= 1:
            return self._accept(f, value, None)
        if any(_photo_key(v) == _photo_key(value) for v in self.p.sel):
            return Outcome([self._reask(note=self.ctx.t(PHOTO_AGAIN))])
        self.p.sel.append(value)
        if len(self.p.sel) >= f.max_photos:
            return self._accept(f, list(self.p.sel), None)
        return Outcome([self._reask()])

    def _take_document(self, f: Field, data: bytes, document: DocumentInput) -> Outcome:
        try:
            value = f.accept_document(self.ctx, data, document) if f.accept_document else None
        except Invalid as exc:
            return Outcome([self._reask(error=exc.text(self.ctx.lang))])
        if isinstance(value, Done):
            return Outcome(self._done_messages(value), done=value)
        return self._accept(f, value, None)

    def _accept(self, f: Field, value: Any, label: str | None) -> Outcome:
        ctx = self.ctx
        previous = ctx.values.get(f.name, _MISSING)
        ctx.values[f.name] = value
        if f.after is not None:
            try:
                done = f.after(ctx, value)
            except Invalid as exc:
                if previous is _MISSING:
                    ctx.values.pop(f.name, None)
                else:
                    ctx.values[f.name] = previous
                return Outcome([self._reask(error=exc.text(ctx.lang))])
            if done is not None:
                return Outcome(self._done_messages(done), done=done)
        if label is not None:
            self.p.labels[f.name] = label
        else:
            self.p.labels.pop(f.name, None)
        if self.p.mode == FILL and f.name not in self.p.hist:
            self.p.hist.append(f.name)
        self.p.sel = []
        if self.p.mode == EDIT:
            self.p.mode = FILL
        return self._advance()

    def _back(self) -> Outcome:
        p = self.p
        if p.mode in (EDIT, PICK):
            p.mode, p.step, p.sel = SUMMARY, "summary", []
            return Outcome([self._ask_new()])
        if p.mode == SUMMARY or p.mode == FILL:
            if not p.hist and self.form.back_to and p.mode == FILL:
                done = Done(next_form=self.form.back_to)
                return Outcome([], done=done)
            if not p.hist:
                return Outcome([self._reask(error=self.ctx.t(FIRST_QUESTION))])
            last = p.hist.pop()
            p.values.pop(last, None)
            p.labels.pop(last, None)
            p.mode, p.sel = FILL, []
        return self._advance()

    # --- moving on ---------------------------------------------------------------------------------------------

    def _drop_inapplicable(self) -> None:
        for f in self.form.fields:
            if f.name in self.p.values and f.when is not None and not f.applies(self.ctx):
                self.p.values.pop(f.name, None)
                self.p.labels.pop(f.name, None)
                if f.name in self.p.hist:
                    self.p.hist.remove(f.name)

    def _advance(self) -> Outcome:
        self._drop_inapplicable()
        for f in self.form.fields:
            if f.name in self.p.values or not f.applies(self.ctx):
                continue
            if f.kind in (Kind.CHOICE, Kind.MULTI) and not f.choices(self.ctx):
                if f.required:
                    done = Done(f.empty or NO_OPTIONS)
                    return Outcome(self._done_messages(done), done=done)
                self.p.values[f.name] = None
                continue
            self.p.mode, self.p.step, self.p.sel = FILL, f.name, []
            return Outcome([self._ask_new()])
        if self.form.summary:
            self.p.mode, self.p.step = SUMMARY, "summary"
            return Outcome([self._ask_new()])
        return self._complete()

    def _complete(self) -> Outcome:
        ctx = self.ctx
        try:
            done = self.form.on_complete(ctx)
        except Invalid as exc:
            target = self.form.field(exc.field) if exc.field else None
            if target is not None:
                self.p.mode, self.p.step, self.p.sel = EDIT, target.name, []
                return Outcome([self._ask_new(error=exc.text(ctx.lang))])
            if self.form.summary:
                self.p.mode, self.p.step = SUMMARY, "summary"
                return Outcome([self._ask_new(error=exc.text(ctx.lang))])
            done = Done(exc.text(ctx.lang))
        return Outcome(self._done_messages(done), done=done)

    def _done_messages(self, done: Done) -> list[Outgoing]:
        out: list[Outgoing] = []
        text = done.text(self.ctx.lang)
        if text:
            out.append(Outgoing(text=text, remove_keyboard=False))
        out.extend(done.messages)
        return out

    # --- questions ---------------------------------------------------------------------------------------------

    def _current_field(self) -> Field | None:
        if self.p.mode in (FILL, EDIT):
            return self.form.field(self.p.step)
        return None

    def _ask_new(self, error: str | None = None) -> Outgoing:
        """A new question: fresh nonce, options computed now and remembered with it."""
        self.p.q = secrets.token_hex(3)
        self.p.opts = self._options()
        return self._render(error=error)

    def _reask(self, error: str | None = None, note: str | None = None) -> Outgoing:
        if not self.p.q:
            return self._ask_new(error=error)
        return self._render(error=error, note=note)

    def _options(self) -> list[list[Any]]:
        ctx, p = self.ctx, self.p
        lang = ctx.lang
        if p.mode == SUMMARY:
            return [[L_SAVE(lang), _ctl("save")], [L_EDIT(lang), _ctl("edit")], [L_CANCEL(lang), _ctl("cancel")]]
        if p.mode == PICK:
            opts = [
                [f.label(lang), _ctl("pick", f.name)]
                for f in self.form.fields
                if f.editable and f.name in p.values and f.applies(ctx)
            ]
            return opts + [[L_BACK(lang), _ctl("summary")]]
        f = self._current_field()
        if f is None:
            return []
        opts: list[list[Any]] = []
        if f.kind in (Kind.CHOICE, Kind.CONFIRM, Kind.MULTI):
            opts = [[c.text(lang), to_json(c.value)] for c in f.choices(ctx)]
        if f.default is not None:
            d = f.default(ctx)
            if d is not None:
                opts.append([d[1], _ctl("default", d[0])])
        if f.kind == Kind.MULTI:
            opts.append([L_DONE(lang), _ctl("done")])
        if f.kind == Kind.PHOTO and f.max_photos > 1:
            opts.append([L_DONE(lang), _ctl("done")])
        if not f.required:
            opts.append([L_SKIP(lang), _ctl("skip")])
        if f.kind == Kind.NUMBER:
            # Text-only channels answer numbered options by number: a "1" typed as a quantity must not
            # become option 1. Number questions carry no buttons; "quay lại" and /huy still work typed.
            return []
        if p.hist or p.mode == EDIT or self.form.back_to:
            opts.append([L_BACK(lang), _ctl("back")])
        return opts

    def _render(self, error: str | None = None, note: str | None = None) -> Outgoing:
        ctx, p = self.ctx, self.p
        lang = ctx.lang
        if p.mode == SUMMARY:
            body = self._summary_text() + "\n\n" + SUMMARY_ASK(lang)
        elif p.mode == PICK:
            body = PICK_ASK(lang)
        else:
            f = self._current_field()
            body = f.prompt_text(ctx) if f is not None else ""
            if f is not None and f.kind == Kind.MULTI:
                chosen = [o[0] for o in p.opts if not _is_ctl(o[1]) and o[1] in p.sel]
                body += "\n" + MULTI_HINT(lang)
                if chosen:
                    body += "\n✓ " + esc(", ".join(chosen))
            if f is not None and f.kind == Kind.PHOTO and p.sel:
                body = PHOTO_MORE(lang, n=len(p.sel))
        parts = [x for x in (note, f"⚠️ {error}" if error else None, body) if x]
        options = []
        for i, (label, value) in enumerate(p.opts):
            shown = label
            if p.mode in (FILL, EDIT) and not _is_ctl(value) and value in p.sel:
                shown = f"✓ {label}"
            options.append(Option(key=f"{p.q}.{i}", label=shown))
        f = self._current_field()
        columns = f.columns if f is not None else (3 if p.mode == SUMMARY else 1)
        return Outgoing(text="\n\n".join(parts), options=options, columns=columns)

    def _summary_text(self) -> str:
        ctx = self.ctx
        lines = [SUMMARY_HEAD(ctx.lang, title=self.form.title(ctx.lang))]
        for f in self.form.fields:
            if f.name not in self.p.values or not f.applies(ctx) or f.kind == Kind.CONFIRM or not f.in_summary:
                continue
            value = self.p.values[f.name]
            lines.append(f"• {f.label(ctx.lang)}: <b>{show_value(f, value, ctx, self.p.labels.get(f.name))}</b>")
        return "\n".join(lines)


class _Missing:
    pass


_MISSING = _Missing()
