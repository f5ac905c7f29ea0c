"""评分: the share of a question's points one answer earns, from the question as drawn (pure).

Without weights every type is all-or-nothing: the chosen options must be exactly the key. With
weights (imported from Moodle GIFT or written in a bank file) the Moodle rule applies: the sum of
the chosen options' percentages / 100, floored at 0 and capped at 1. A single-choice question
admits one choice, so choosing several earns nothing.
"""

from __future__ import annotations

from app.exams.bankfile import Question

__all__ = ["score_answer"]

_DECIMALS = 6
"""Moodle's thirds (3 x 33.33333 %) must round to a full mark, not 0.9999999."""


def score_answer(question: Question, chosen: tuple[int, ...] | bool | None) -> float:
    """The fraction (0..1) of the question's points earned by ``chosen``.

    ``chosen`` is the 0-based indexes of the options ticked (choice questions; order and repeats
    do not matter) or a bool (judge); ``None`` or ``()`` is unanswered and earns 0. Raises
    ``ValueError`` for an answer of the wrong kind or an index outside the options: the caller must
    have validated what the candidate sent.
    """
    if chosen is None:
        return 0.0
    if question.type == "judge":
        if not isinstance(chosen, bool):
            raise ValueError("a judge question is answered with a bool")
        return 1.0 if chosen == question.answer else 0.0
    if isinstance(chosen, bool) or isinstance(question.answer, bool):
        raise ValueError("a choice question is answered with option indexes")
    picked = set(chosen)
    if any(not 0 <= i < len(question.options) for i in picked):
        raise ValueError(f"option index out of range: {sorted(picked)}")
    if not picked:
        return 0.0
    if question.type == "single" and len(picked) > 1:
        return 0.0
    if question.weights is None:
        return 1.0 if sorted(picked) == list(question.answer) else 0.0
    total = sum(question.weights[i] for i in picked) / 100
    return round(min(1.0, max(0.0, total)), _DECIMALS)
