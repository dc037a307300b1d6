"""Database drivers (SQLite, PostgreSQL) behind the seam in :mod:`cloaca.store.db`."""
