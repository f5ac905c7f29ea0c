"""The questions of the exam page (``exams/take.html``), written as HTML without the template engine.

The page carries the whole paper: 100 questions with their options, each an input with its checked
state. Through Jinja's loop (a loop context, attribute lookups and an escape call per output, about
600 outputs) that cost several milliseconds of CPU per page, and at the start of an exam every
candidate loads it within the same minute. The texts of a question version never change, so each
stem and option is escaped once and kept (``escaped``); a page joins the kept pieces with the
candidate's positions, option order, answers and sequence numbers.
"""

from __future__ import annotations

from collections.abc import Iterable

from markupsafe import Markup, escape

from app.exams.rules import QuestionType
from app.exams.schemas import PaperQuestion

LETTERS = "ABCDEF"

_ESCAPED: dict[str, str] = {}
_ESCAPED_MAX = 200_000


def escaped(text: str) -> str:
    """``text`` escaped for HTML, kept (question texts repeat across thousands of pages)."""
    found = _ESCAPED.get(text)
    if found is None:
        if len(_ESCAPED) >= _ESCAPED_MAX:
            _ESCAPED.clear()
        found = _ESCAPED[text] = str(escape(text))
    return found


def _points(value: float) -> str:
    return f"{value:g}"  # the template's ``'%g' % q.points``


def questions_html(
    questions: Iterable[PaperQuestion], chosen: dict[int, set[int]], seqs: dict[int, int]
) -> Markup:
    """Each question's ``fieldset`` as ``take.html`` shows it: its position and type, the saved
    answer's sequence number (``data-seq``), the options in this candidate's order, the saved
    choice checked."""
    out: list[str] = []
    for q in questions:
        p = q.position
        kind = q.type.value
        judge = q.type == QuestionType.JUDGE
        box = "checkbox" if q.type == QuestionType.MULTIPLE else "radio"
        picked = chosen.get(p, ())
        out.append(
            f'<fieldset class="question" id="q{p}" data-position="{p}" data-type="{kind}" '
            f'data-seq="{seqs.get(p, 0)}">\n'
            f'    <legend><span class="qno">{p + 1}.</span> <span class="badge">{escaped(q.type_label)}</span> '
            f'<span class="muted">（{_points(q.points)} 分）</span></legend>\n'
            f'    <p class="stem">{escaped(q.stem)}</p>\n'
        )
        for i, option in enumerate(q.options):
            label = "" if judge else f"{LETTERS[i]}. "
            out.append(
                f'      <label class="option"><input type="{box}" name="q{p}" value="{i}" '
                f"{'checked' if i in picked else ''}>\n"
                f"        <span>{label}{escaped(option)}</span></label>\n"
            )
        out.append("  </fieldset>\n")
    return Markup("".join(out))  # noqa: S704 - every text in it went through ``escaped``


__all__ = ["escaped", "questions_html"]
