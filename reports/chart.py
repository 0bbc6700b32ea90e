"""The summary as a picture for a phone: per school, registered vs received vs handed over, late in a
warning colour.

Drawn on a ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so rendering touches no
global state and may run in a worker thread. Every text uses matplotlib's bundled DejaVu Sans, loaded from
its file, which has the Vietnamese letters (ă â đ ê ô ơ ư and the five tones, precomposed): a deployment's
matplotlibrc or missing system fonts cannot turn names into boxes (tests/test_reports_chart.py checks it).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import MaxNLocator

from core.clock import fmt_local
from core.i18n import T
from reports.summary import SchoolSummary, Summary, short_school_name

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONT_REGULAR = FONT_DIR / "DejaVuSans.ttf"
FONT_BOLD = FONT_DIR / "DejaVuSans-Bold.ttf"

WIDTH_PX = 1080  # a phone screen's width in pixels: the picture is shown 1:1, not shrunk
DPI = 100
BASE_PT = 15  # ~21 px tall letters at 1080 px: readable without zooming
# Telegram keeps photos up to 2,560 px on the long side; beyond this many schools the bars would be too thin
# or the picture too tall, so the chart shows the schools with the most to look at and says so.
MAX_SCHOOLS = 30
INCH_PER_SCHOOL = 0.74

# Colour-blind safe (Okabe-Ito); "late" is also hatched, so it does not rely on colour alone.
C_REGISTERED = "#0072B2"
C_RECEIVED = "#E69F00"
C_HANDED = "#009E73"
C_LATE = "#D55E00"
C_TEXT = "#222222"
C_MUTED = "#666666"

TITLE = T(vi="Tổng hợp — {title}", en="Summary — {title}")
SUBTITLE = T(vi="Số liệu lúc {at}", en="As of {at}")
L_REGISTERED = T(vi="Học sinh đăng ký", en="Students registered")
L_RECEIVED = T(vi="Máy đã nhận", en="Computers received")
L_HANDED = T(vi="Đã bàn giao", en="Handed over")
L_LATE = T(vi="Bàn giao trễ cập nhật CSDL ngành", en="Handovers late for the sector database")
LATE_NOTE = T(vi="trễ {n}", en="late {n}")
EMPTY = T(vi="Chưa có dữ liệu", en="No data yet")
EMPTY_HINT = T(
    vi="Biểu đồ sẽ hiện khi các trường đăng ký học sinh và nhận máy.",
    en="The chart appears once schools register students and receive computers.",
)
PARTIAL = T(
    vi="{shown}/{total} trường (ưu tiên trường có việc trễ và số liệu lớn); đầy đủ trong /xuatfile",
    en="{shown} of {total} schools (late and largest first); the full list is in /xuatfile",
)
AXIS = T(vi="Số lượng", en="Count")


def _font(size: float, *, bold: bool = False) -> FontProperties:
    return FontProperties(fname=str(FONT_BOLD if bold else FONT_REGULAR), size=size)


def _plain(text: str) -> str:
    """Matplotlib reads $...$ as math: a '$' in a school name must stay a dollar sign."""
    return text.replace("$", r"\$")


def render_chart(summary: Summary, *, lang: str = "vi") -> bytes:
    """A PNG ~1080 px wide. A scope with no schools or no figures yet gives a clear 'Chưa có dữ liệu' card."""
    return _png(build_figure(summary, lang=lang))


def build_figure(summary: Summary, *, lang: str = "vi") -> Figure:
    """The chart as a matplotlib Figure (what ``render_chart`` encodes; tests read its texts)."""
    tz = ZoneInfo(summary.tz_name)
    title = _plain(TITLE(lang, title=summary.title or "—"))
    subtitle = SUBTITLE(lang, at=fmt_local(summary.generated_at, tz))
    schools = list(summary.schools)
    if not schools or not any(s.has_data for s in schools):
        return _empty(title, subtitle, lang)

    shown = schools
    note = None
    if len(schools) > MAX_SCHOOLS:
        ranked = sorted(schools, key=lambda s: (s.late_csdl > 0, s.late_csdl, s.registered + s.received), reverse=True)
        keep = {id(s) for s in ranked[:MAX_SCHOOLS]}
        shown = [s for s in schools if id(s) in keep]
        note = PARTIAL(lang, shown=len(shown), total=len(schools))
    return _bars(shown, title, subtitle, note, lang)


def _png(fig: Figure) -> bytes:
    canvas = FigureCanvasAgg(fig)
    buf = io.BytesIO()
    canvas.print_png(buf, metadata={"Software": None})
    return buf.getvalue()


def _empty(title: str, subtitle: str, lang: str) -> Figure:
    fig = Figure(figsize=(WIDTH_PX / DPI, 6.0), dpi=DPI, facecolor="white")
    fig.text(
        0.5,
        0.88,
        "\n".join(textwrap.wrap(title, 48)),
        ha="center",
        va="top",
        color=C_TEXT,
        fontproperties=_font(BASE_PT + 5, bold=True),
    )
    fig.text(0.5, 0.70, subtitle, ha="center", va="top", color=C_MUTED, fontproperties=_font(BASE_PT))
    fig.text(
        0.5, 0.45, EMPTY(lang), ha="center", va="center", color=C_TEXT, fontproperties=_font(BASE_PT + 17, bold=True)
    )
    fig.text(
        0.5,
        0.25,
        "\n".join(textwrap.wrap(EMPTY_HINT(lang), 60)),
        ha="center",
        va="top",
        color=C_MUTED,
        fontproperties=_font(BASE_PT),
    )
    return fig


def _label(s: SchoolSummary) -> str:
    return _plain("\n".join(textwrap.wrap(short_school_name(s.name), 26)[:2]))


def _bars(schools: list[SchoolSummary], title: str, subtitle: str, note: str | None, lang: str) -> Figure:
    n = len(schools)
    title_lines = _wrap_lines(title, 56)
    sub_lines = [subtitle, *(_wrap_lines(note, 80) if note else [])]
    # Laid out by hand in inches from the top and bottom (matplotlib's constrained layout costs a second
    # full drawing pass): title, subtitle, plot, x label, legend.
    head_in = 0.25 + 0.34 * len(title_lines) + 0.28 * len(sub_lines) + 0.2
    foot_in = 0.65 + 0.7  # tick labels and axis label, then the two-row legend
    width_in = WIDTH_PX / DPI
    height_in = head_in + INCH_PER_SCHOOL * n + 0.3 + foot_in
    fig = Figure(figsize=(width_in, height_in), dpi=DPI, facecolor="white")
    canvas = FigureCanvasAgg(fig)
    y = 1 - 0.2 / height_in
    for line in title_lines:
        fig.text(0.5, y, line, ha="center", va="top", color=C_TEXT, fontproperties=_font(BASE_PT + 3, bold=True))
        y -= 0.34 / height_in
    for line in sub_lines:
        fig.text(0.5, y, line, ha="center", va="top", color=C_MUTED, fontproperties=_font(BASE_PT - 1))
        y -= 0.28 / height_in
    ax = fig.add_subplot()

    bar_h = 0.26
    # Top to bottom in the summary's (name) order: school i sits at y = n-1-i.
    ys = [n - 1 - i for i in range(n)]
    registered = [s.registered for s in schools]
    received = [s.received for s in schools]
    on_time = [max(0, s.handed_over - s.late_csdl) for s in schools]
    late = [min(s.late_csdl, s.handed_over) for s in schools]

    r1 = ax.barh([y + bar_h for y in ys], registered, height=bar_h, color=C_REGISTERED, label=L_REGISTERED(lang))
    r2 = ax.barh(ys, received, height=bar_h, color=C_RECEIVED, label=L_RECEIVED(lang))
    yh = [y - bar_h for y in ys]
    ax.barh(yh, on_time, height=bar_h, color=C_HANDED, label=L_HANDED(lang))
    ax.barh(
        yh,
        late,
        left=on_time,
        height=bar_h,
        color=C_LATE,
        hatch="///",
        edgecolor="white",
        linewidth=0,
        label=L_LATE(lang),
    )

    value_font = _font(BASE_PT - 3)
    for container in (r1, r2):
        ax.bar_label(container, padding=4, fontproperties=value_font, color=C_TEXT)
    for y, s in zip(yh, schools):
        text = str(s.handed_over)
        if s.late_csdl:
            text += f" ({LATE_NOTE(lang, n=s.late_csdl)})"
        ax.text(
            s.handed_over,
            y,
            " " + text,
            va="center",
            ha="left",
            fontproperties=value_font,
            color=C_LATE if s.late_csdl else C_TEXT,
        )

    # School names are drawn as texts of their own, not tick labels: matplotlib rebuilds tick labels when it
    # draws and they would fall back to the configured default font.
    ax.set_yticks(ys, labels=[])
    ax.tick_params(axis="y", length=0)
    names = [
        ax.text(
            -0.015,
            y,
            _label(s),
            transform=ax.get_yaxis_transform(),
            ha="right",
            va="center",
            fontproperties=_font(BASE_PT - 1, bold=bool(s.late_csdl)),
            color=C_LATE if s.late_csdl else C_TEXT,
        )
        for y, s in zip(ys, schools)
    ]
    peak = max([*registered, *received, *(s.handed_over for s in schools), 1])
    ax.set_xlim(0, peak * 1.22 + 1)  # room for the value labels right of the longest bar
    ax.set_ylim(-0.6, n - 0.4)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=6))
    ax.tick_params(axis="x", labelsize=BASE_PT - 3, labelfontfamily="DejaVu Sans")  # digits only
    ax.set_xlabel(AXIS(lang), fontproperties=_font(BASE_PT - 2), color=C_MUTED)
    ax.grid(axis="x", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    # The left margin is the widest school name, measured with the real font.
    renderer = canvas.get_renderer()
    label_px = max((t.get_window_extent(renderer).width for t in names), default=0)
    left = min(0.45, (label_px + 24) / WIDTH_PX)
    fig.subplots_adjust(left=left, right=0.97, top=1 - head_in / height_in, bottom=foot_in / height_in)
    fig.legend(
        loc="lower center", bbox_to_anchor=(0.5, 0.12 / height_in), ncols=2, prop=_font(BASE_PT - 2), frameon=False
    )
    return fig


def _wrap_lines(text: str, width: int) -> list[str]:
    out: list[str] = []
    for line in text.split("\n"):
        out.extend(textwrap.wrap(line, width) or [""])
    return out
