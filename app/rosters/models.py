"""Indexes the read side adds to other domains' tables (it owns no table of its own).

Declared here, on the tables' columns, so that the models and the migrations agree without the
owning domains' models changing: the roster's keyset orders need an index that ends in the id.
"""

from __future__ import annotations

from sqlalchemy import Index

from app.accounts.models import Officer

# Keyset pages sorted by name (name, id) and by agency (agency_id, name, id): each page is one
# index range scan after the cursor.
ix_officers_roster_name = Index("ix_officers_roster_name", Officer.name, Officer.id)
ix_officers_roster_agency = Index("ix_officers_roster_agency", Officer.agency_id, Officer.name, Officer.id)

__all__ = ["ix_officers_roster_agency", "ix_officers_roster_name"]
