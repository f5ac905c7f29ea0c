"""Cross-cutting pieces: security, guards, errors, audit log, policy."""
