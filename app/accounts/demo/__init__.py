"""The accounts domain's demo data: the province's agency tree (``tree``), its officers
(``people``) and their loading with the demo logins (``load``).

The whole demo province (every domain's part, `app demo-data`) is put together by ``app.demo``.
"""

from __future__ import annotations

from app.accounts.demo.load import DEMO_ACCOUNTS, DemoAccount
from app.accounts.demo.people import AS_OF

__all__ = ["AS_OF", "DEMO_ACCOUNTS", "DemoAccount"]
