"""Repositories on the host: URL rules, mirrors, checkouts, patch application (every git call)."""
