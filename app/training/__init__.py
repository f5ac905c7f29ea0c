"""Yearly training (年度培训): courses, the hours ledger, attendance import and compliance."""
