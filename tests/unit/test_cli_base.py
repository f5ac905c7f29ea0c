"""What every console command shares (app.cli.base): the ``--json`` answer's form."""

from __future__ import annotations

import json

import click
from click.testing import CliRunner

from app.cli.base import echo_json


def test_echo_json_writes_one_line_with_chinese_as_is() -> None:
    @click.command()
    def answer() -> None:
        echo_json({"reason": "证件已吊销", "checked": 3, "head": None})

    out = CliRunner().invoke(answer).output
    assert out == '{"reason": "证件已吊销", "checked": 3, "head": null}\n'
    assert json.loads(out) == {"reason": "证件已吊销", "checked": 3, "head": None}
