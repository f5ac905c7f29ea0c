"""Labels of different enums with the same value must not overwrite each other."""

from __future__ import annotations

from app.certificates.rules import CertificateKind
from app.lib.enums import LABELS, Post, StaffType


def test_labels_are_per_enum_class() -> None:
    assert Post.ENFORCEMENT.value == CertificateKind.ENFORCEMENT.value == "enforcement"
    assert Post.ENFORCEMENT.label == "执法岗位"
    assert CertificateKind.ENFORCEMENT.label != Post.ENFORCEMENT.label
    assert LABELS[StaffType.ASSISTANT] == "执法辅助人员"
    assert Post.from_label_or_value("执法岗位") is Post.ENFORCEMENT
