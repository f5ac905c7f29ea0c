"""The accounts domain's demo data: the province's agency tree (``tree``), its officers
(``people``) and their loading with the demo logins (``load``).

The whole demo province (every domain's part, `app demo-data`) is put together by ``app.demo``.
``generate_demo`` and ``DemoDataRefused`` are still importable from here for the callers written
when the orchestration lived in this module.
"""

from __future__ import annotations

from typing import Any

from app.accounts.demo.load import DEMO_ACCOUNTS, DemoAccount
from app.accounts.demo.people import AS_OF

__all__ = ["AS_OF", "DEMO_ACCOUNTS", "DemoAccount", "DemoDataRefused", "generate_demo"]


def __getattr__(name: str) -> Any:
    # Lazily: app.demo imports this package, so it cannot be imported at the top.
    if name in ("generate_demo", "DemoDataRefused"):
        import app.demo.province

        return getattr(app.demo.province, name)
    raise AttributeError(name)
