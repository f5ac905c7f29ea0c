"""Read-only queries of the training domain: ``courses``, ``records`` (the ledger and an officer's
year), ``compliance`` (an agency tree's year), ``batches`` (imports), ``totals`` (against the ledger)."""
