"""The exam page's questions written without the template loop (app.exams.paper_html) are the markup
the loop wrote: same elements, attributes, texts (escaped) and checked states."""

from __future__ import annotations

import re

import jinja2
import pytest

from app.exams.paper_html import questions_html
from app.exams.rules import QuestionType
from app.exams.schemas import PaperQuestion

# take.html's loop before app.exams.paper_html replaced it.
TEMPLATE_LOOP = """
  {% for q in a.questions %}
  <fieldset class="question" id="q{{ q.position }}" data-position="{{ q.position }}" data-type="{{ q.type.value }}" data-seq="{{ seqs.get(q.position, 0) }}">
    <legend><span class="qno">{{ q.position + 1 }}.</span> <span class="badge">{{ q.type_label }}</span> <span class="muted">（{{ '%g' % q.points }} 分）</span></legend>
    <p class="stem">{{ q.stem }}</p>
    {% for opt in q.options %}
      <label class="option"><input type="{{ 'checkbox' if q.type.value == 'multiple' else 'radio' }}" name="q{{ q.position }}" value="{{ loop.index0 }}" {{ 'checked' if loop.index0 in chosen.get(q.position, ()) else '' }}>
        <span>{{ 'ABCDEF'[loop.index0] if q.type.value != 'judge' else '' }}{{ '. ' if q.type.value != 'judge' else '' }}{{ opt }}</span></label>
    {% endfor %}
  </fieldset>
  {% endfor %}
"""


def _question(
    position: int, kind: QuestionType, points: float, stem: str, options: list[str]
) -> PaperQuestion:
    return PaperQuestion(
        position=position,
        type=kind,
        type_label={"single": "单选题", "multiple": "多选题", "judge": "判断题"}[kind.value],
        category_label="公共法律知识",
        points=points,
        stem=stem,
        options=options,
    )


CASES = [
    # (questions, chosen, seqs)
    (
        [
            _question(
                0,
                QuestionType.SINGLE,
                2,
                "依据《行政处罚法》，<b>下列</b> & “说法”",
                ["甲 <x>", "乙 & 丙", '"丁"', "戊'"],
            )
        ],
        {},
        {},
    ),
    (
        [_question(3, QuestionType.MULTIPLE, 2.5, "多选", ["A1", "B1", "C1", "D1", "E1", "F1"])],
        {3: {0, 5}},
        {3: 17},
    ),
    ([_question(9, QuestionType.JUDGE, 1, "判断 <script>", ["正确", "错误"])], {9: {1}}, {9: 2}),
    (
        [
            _question(0, QuestionType.SINGLE, 1.0, "一", ["a", "b"]),
            _question(1, QuestionType.JUDGE, 0.5, "二", ["正确", "错误"]),
            _question(2, QuestionType.MULTIPLE, 4, "三", ["x", "y", "z"]),
        ],
        {0: set(), 2: {1, 2}},
        {0: 5, 2: 9},
    ),
]


def _normal(html: str) -> str:
    """Whitespace between and inside tags does not change the page."""
    return re.sub(r"\s+", " ", re.sub(r">\s+<", "><", html)).strip()


@pytest.mark.parametrize(("questions", "chosen", "seqs"), CASES)
def test_the_questions_are_the_markup_the_template_loop_wrote(
    questions: list[PaperQuestion], chosen: dict[int, set[int]], seqs: dict[int, int]
) -> None:
    env = jinja2.Environment(autoescape=True)
    before = env.from_string(TEMPLATE_LOOP).render(a={"questions": questions}, chosen=chosen, seqs=seqs)
    after = questions_html(questions, chosen, seqs)
    assert _normal(str(after)) == _normal(before)
    assert "<script>" not in after and "<b>" not in after
