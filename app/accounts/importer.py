"""Bulk officer import (CSV in UTF-8 or GBK, XLSX): preview every bad row, then all or nothing."""

from __future__ import annotations

from typing import Any

IMPORT_ROUTES: list[Any] = []
