"""What a request that fails validation is told (``app.lib.errors.translate_validation``): the
message msgspec gives, in Chinese, naming the rule the value broke, not only its type. Each case
is msgspec's own message for a value, so the table follows msgspec's wording."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
import pytest
from litestar.exceptions import ClientException

from app.lib.errors import problem_for, translate_validation


class Body(msgspec.Struct, forbid_unknown_fields=True):
    choice: list[Annotated[int, msgspec.Meta(ge=0, le=5)]] = []
    count: Annotated[int, msgspec.Meta(gt=0)] = 1
    below: Annotated[int, msgspec.Meta(lt=10)] = 1
    hours: Annotated[float, msgspec.Meta(ge=0.5, le=40)] = 1.0
    step: Annotated[int, msgspec.Meta(multiple_of=5)] = 5
    name: Annotated[str, msgspec.Meta(min_length=2, max_length=4)] = "ab"
    code: Annotated[str, msgspec.Meta(pattern="^[A-Z]+$")] = "A"
    items: Annotated[list[int], msgspec.Meta(max_length=2)] = []
    flag: bool = False
    day: dt.date = dt.date(2026, 1, 1)
    at: dt.datetime = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    needed: str = ""


def _message(doc: dict[str, Any]) -> str:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(msgspec.json.encode(doc), type=Body)
    return str(caught.value)


@pytest.mark.parametrize(
    ("doc", "told"),
    [
        ({"choice": [-1]}, "不能小于 0"),
        ({"choice": [9]}, "不能大于 5"),
        ({"choice": ["a"]}, "应为整数"),
        ({"choice": [1.5]}, "应为整数"),
        ({"count": 0}, "不能小于 1"),  # gt=0 on an int is msgspec's >= 1
        ({"below": 10}, "不能大于 9"),
        ({"hours": 0.25}, "不能小于 0.5"),
        ({"hours": 41.0}, "不能大于 40.0"),
        ({"hours": "x"}, "应为数字"),
        ({"step": 3}, "应为 5 的倍数"),
        ({"name": "a"}, "长度不能少于 2"),
        ({"name": "abcde"}, "长度不能超过 4"),
        ({"name": 7}, "应为文本"),
        ({"code": "abc"}, "格式不正确"),
        ({"items": [1, 2, 3]}, "长度不能超过 2"),
        ({"items": 1}, "应为数组"),
        ({"flag": "yes"}, "应为布尔值 true 或 false"),
        ({"day": "2026-13-01"}, "应为日期（YYYY-MM-DD）"),
        ({"day": 5}, "应为日期（YYYY-MM-DD）"),
        ({"at": "noon"}, "应为时间（如 2026-01-01T08:00:00+08:00）"),
        ({"other": 1}, "不支持的字段 other"),
    ],
)
def test_a_value_is_told_the_rule_it_broke(doc: dict[str, Any], told: str) -> None:
    assert translate_validation(_message(doc)) == told


def test_a_missing_field_is_named() -> None:
    class Needs(msgspec.Struct):
        title: str

    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b"{}", type=Needs)
    assert translate_validation(str(caught.value)) == "缺少必填字段 title"


def test_malformed_json_and_anything_else() -> None:
    for cut_short in (b"{", b'{"choice": [1'):
        with pytest.raises(msgspec.DecodeError) as caught:
            msgspec.json.decode(cut_short, type=Body)
        assert translate_validation(str(caught.value)) == "请求体不是有效的 JSON"
    assert translate_validation("something msgspec never said") == "取值无效"


def test_a_body_the_framework_could_not_read_is_told_why() -> None:
    """Litestar answers a body it cannot decode with a 400 carrying msgspec's English message."""
    problem = problem_for(ClientException(detail="Input data was truncated"))
    assert (problem.status, problem.detail) == (400, "请求体不是有效的 JSON")
    other = problem_for(ClientException(detail="Something else entirely"))
    assert (other.status, other.detail) == (400, "请求无效，请检查后重试")
