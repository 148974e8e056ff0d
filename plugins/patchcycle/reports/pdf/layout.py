"""The report's layout engine: table cells that wrap and clip long text, tables with the report's
style, section headings, and the canvas that writes each page's footer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.units import inch
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    Paragraph,
    Spacer,
    Table,
    TableStyle,
)

from patchcycle.reports.pdf.style import (
    GRID_COLOUR,
    HEADER_BACKGROUND,
    MARGIN,
    MUTED,
    ZEBRA_COLOUR,
    Styles,
    as_text,
    clip_plain,
)

#: A run of cell text: (text, font name, font size, colour as "#rrggbb").
Run = tuple[str, str, float, str]
#: A table style command: (command, first cell, last cell, its arguments...), cells as (column, row).
TableCommand = tuple[str, tuple[int, int], tuple[int, int], *tuple[object, ...]]
FONT = "Helvetica"
FONT_BOLD = "Helvetica-Bold"
BLACK = "#000000"
_colour_cache: dict[str, colors.Color] = {}


def colour_of(hex_colour: str) -> colors.Color:
    """The reportlab colour of a ``#rrggbb`` string, cached."""
    colour = _colour_cache.get(hex_colour)
    if colour is None:
        colour = _colour_cache[hex_colour] = colors.HexColor(hex_colour)
    return colour


_char_widths: dict[tuple[str, float], dict[str, float]] = {}


def _measure(text: str, font: str, size: float) -> float:
    """Width of ``text`` in points, from per-character widths cached per font and size."""
    table = _char_widths.setdefault((font, size), {})
    total = 0.0
    for char in text:
        width = table.get(char)
        if width is None:
            width = table[char] = stringWidth(char, font, size)
        total += width
    return total


def _wrap_text(text: str, font: str, size: float, width: float) -> list[str]:
    """Greedy line breaking at spaces; words longer than ``width`` are split between characters.

    Linear in the length of ``text`` (reportlab's own long-word splitting re-measures every prefix).
    """
    space = _measure(" ", font, size)
    lines: list[str] = []
    current, current_width = "", 0.0
    for word in text.split(" "):
        word_width = _measure(word, font, size)
        if current and current_width + space + word_width <= width:
            current, current_width = f"{current} {word}", current_width + space + word_width
            continue
        if current:
            lines.append(current)
        if word_width <= width:
            current, current_width = word, word_width
            continue
        piece, piece_width = "", 0.0
        for char in word:
            char_width = _measure(char, font, size)
            if piece and piece_width + char_width > width:
                lines.append(piece)
                piece, piece_width = "", 0.0
            piece, piece_width = piece + char, piece_width + char_width
        current, current_width = piece, piece_width
    if current:
        lines.append(current)
    return lines


class TextCell(Flowable):
    """Table-cell text laid out and drawn directly, without Paragraph markup parsing.

    Laying out Paragraphs (pure-Python line breaking, and reportlab's long-word splitting that
    re-measures every prefix) is what makes long tables slow, and reportlab lays out each cell two or
    three times. A cell is a few lines of runs (text, font, size, colour). A line too wide for the
    column is broken between runs, then at spaces, then between characters, with cached character
    widths; the layout is kept per width. Run text is clipped to :data:`MAX_CELL_CHARS` characters,
    so no cell outgrows a page.
    """

    def __init__(self, lines: list[list[Run]]) -> None:
        super().__init__()
        cleaned = [
            [(clip_plain(text), font, size, colour) for text, font, size, colour in line] for line in lines
        ]
        self._lines = [kept for kept in ([run for run in line if run[0]] for line in cleaned) if kept]
        self._layout_for: float | None = None
        self._laid: list[list[Run]] = []

    @staticmethod
    def _leading(line: list[Run]) -> float:
        return max(size for _, _, size, _ in line) * 1.2

    def _layout(self, width: float) -> list[list[Run]]:
        laid: list[list[Run]] = []
        for line in self._lines:
            current: list[Run] = []
            used = 0.0
            for text, font, size, colour in line:
                run_width = _measure(text, font, size)
                if current and used + run_width <= width:
                    current.append((text, font, size, colour))
                    used += run_width
                    continue
                if current:
                    laid.append(current)
                    text = text.lstrip()
                    run_width = _measure(text, font, size)
                if run_width <= width:
                    current, used = [(text, font, size, colour)], run_width
                    continue
                pieces = _wrap_text(text, font, size, width) or [""]
                laid += [[(piece, font, size, colour)] for piece in pieces[:-1]]
                current, used = [(pieces[-1], font, size, colour)], _measure(pieces[-1], font, size)
            if current:
                laid.append(current)
        return laid

    def wrap(self, availWidth: float, availHeight: float) -> tuple[float, float]:  # noqa: N803
        """Lay the lines out for ``availWidth`` (kept until the width changes); returns (``availWidth``, the
        sum of the lines' leading)."""
        if self._layout_for != availWidth:
            self._laid = self._layout(availWidth)
            self._layout_for = availWidth
        self.width = availWidth
        self.height = sum(self._leading(line) for line in self._laid)
        return self.width, self.height

    def split(self, availWidth: float, availHeight: float) -> list[Any]:  # noqa: N803
        """``[]``: a cell is never split."""
        return []

    def draw(self) -> None:
        """Draw the laid-out lines top down as one text object, setting font and colour only on change."""
        text_object = self.canv.beginText()
        style: tuple[str, float] | None = None
        fill: str | None = None
        top = self.height
        for line in self._laid:
            text_object.setTextOrigin(0, top - max(s for _, _, s, _ in line))
            for text, font, size, colour in line:
                if style != (font, size):
                    text_object.setFont(font, size)
                    style = (font, size)
                if fill != colour:
                    text_object.setFillColor(colour_of(colour))
                    fill = colour
                text_object.textOut(text)
            top -= self._leading(line)
        self.canv.drawText(text_object)


def text_run(
    value: Any, *, default: str = "", size: float = 7.5, bold: bool = False, colour: str = BLACK
) -> Run:
    """A :data:`Run` of ``value`` as cell text (``default`` for None, stripped), in Helvetica, or
    Helvetica-Bold when ``bold``."""
    return (as_text(value, default).strip(), FONT_BOLD if bold else FONT, size, colour)


def text_cell(
    main: Any,
    detail: Any = None,
    *,
    default: str = "-",
    bold: bool = False,
    colour: str = BLACK,
    small: bool = False,
) -> TextCell:
    """A table cell: ``main`` and, when given, ``detail`` in small grey type under it."""
    text = as_text(main, default) or default
    lines = [[text_run(text, size=6.5 if small else 7.5, bold=bold, colour=colour)]]
    if detail:
        lines.append([text_run(detail, size=6, colour=MUTED)])
    return TextCell(lines)


class FooterCanvas(Canvas):
    """Canvas that defers pages so every footer can say "page N of M"."""

    # reportlab's Canvas internals this class relies on, which types-reportlab leaves out.
    _pagesize: tuple[float, float]
    _startPage: Callable[[], None]

    def __init__(self, *args: Any, footer_text: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer_text = footer_text
        self._deferred_pages: list[dict[str, Any]] = []

    def showPage(self) -> None:  # noqa: N802 - reportlab API
        """Keep the finished page's state instead of writing it, and start a new page."""
        self._deferred_pages.append(dict(self.__dict__))
        self._startPage()

    def save(self) -> None:
        """Write every kept page with its "page N of M" footer, then the document."""
        total = len(self._deferred_pages)
        for number, state in enumerate(self._deferred_pages, start=1):
            self.__dict__.update(state)
            self._draw_footer(number, total)
            super().showPage()
        super().save()

    def _draw_footer(self, number: int, total: int) -> None:
        width = self._pagesize[0]
        y = 0.35 * inch
        self.saveState()
        self.setStrokeColor(GRID_COLOUR)
        self.setLineWidth(0.5)
        self.line(MARGIN, y + 10, width - MARGIN, y + 10)
        self.setFont("Helvetica", 7.5)
        self.setFillColor(colors.HexColor("#455a64"))
        self.drawString(MARGIN, y, self._footer_text)
        self.drawRightString(width - MARGIN, y, f"page {number} of {total}")
        self.restoreState()


def styled_table(rows: list[list[Any]], widths: list[float], *, numeric_from: int | None = None) -> Table:
    """A table in the report's style: bold white-on-dark header row repeated on each page, zebra rows, grid,
    7.5 pt text; columns from ``numeric_from`` on right-aligned."""
    table = Table(rows, colWidths=widths, repeatRows=1)
    style: list[TableCommand] = [
        ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
        ("FONT", (0, 1), (-1, -1), "Helvetica", 7.5),
        ("TEXTCOLOR", (0, 0), (-1, 0), colors.white),
        ("BACKGROUND", (0, 0), (-1, 0), HEADER_BACKGROUND),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, ZEBRA_COLOUR]),
        ("GRID", (0, 0), (-1, -1), 0.25, GRID_COLOUR),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
        ("LEFTPADDING", (0, 0), (-1, -1), 3),
        ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ]
    if numeric_from is not None:
        style.append(("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"))
    table.setStyle(TableStyle(style))
    return table


def heading(title: str, styles: Styles, keep: float = 1.6 * inch) -> list[Any]:
    """A section title, on a new page unless ``keep`` points are left on this one."""
    return [CondPageBreak(keep), Paragraph(escape(title), styles.h2)]


def no_section_data(what: str, key: str, styles: Styles) -> Paragraph:
    """A paragraph saying the evidence document records no ``what`` data (no ``key`` section)."""
    return Paragraph(
        f"No {escape(what)} data is recorded in this evidence document (no <i>{escape(key)}</i> section; "
        "documents written before this section was added do not have one).",
        styles.body,
    )


def more_rows(remaining: int, what: str, styles: Styles) -> list[Any]:
    """A note that ``remaining`` more ``what`` are only in evidence.json; nothing when none remain."""
    if remaining <= 0:
        return []
    return [
        Spacer(1, 3),
        Paragraph(
            f"<b>{remaining:,} more {escape(what)} are not shown here</b>; "
            "they are listed in evidence.json of this evidence pack.",
            styles.body,
        ),
    ]


def status_style(column: int, row: int, colour: colors.Color) -> list[TableCommand]:
    """Table style commands making one cell's text bold and of ``colour``."""
    return [
        ("TEXTCOLOR", (column, row), (column, row), colour),
        ("FONT", (column, row), (column, row), "Helvetica-Bold", 7.5),
    ]
