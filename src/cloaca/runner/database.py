"""Opening the database a URL names, for a runner (migrated, created if missing) or for a
management client (never created unless asked)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from cloaca.errors import ValidationError
from cloaca.store.core import Store
from cloaca.store.drivers.probe import has_cloaca_tables
from cloaca.store.drivers.sqlite import SqliteDatabase
from cloaca.store.drivers.urls import parse_database_url


def open_store(database_url: str, schema: str | None = None, pool_size: int = 10) -> Store:
    """A Store on the database a URL names (not migrated yet)."""
    url = parse_database_url(database_url)
    if url.dialect == "postgres":
        from cloaca.store.drivers.postgres import PostgresDatabase  # psycopg is an optional extra

        return Store(PostgresDatabase(url.target, schema=schema, pool_size=pool_size))
    return Store(SqliteDatabase(url.target))


def open_migrated(database_url: str, schema: str | None = None, pool_size: int = 10) -> Store:
    """A Store on the database a URL names, created and migrated to the latest schema."""
    store = open_store(database_url, schema, pool_size)
    try:
        store.migrate()
    except Exception:
        store.close()
        raise
    return store


def open_existing(database_url: str, schema: str | None = None, pool_size: int = 10) -> Store:
    """A Store on an existing cloaca database; ``ValueError`` naming the URL (password
    masked) when the database, the schema or cloaca's tables are missing. Creates nothing."""
    url = parse_database_url(database_url)
    if not has_cloaca_tables(url, schema):
        where = f" (schema {schema!r})" if schema else ""
        raise ValidationError(
            f"cloaca database not found at {mask_url(database_url)}{where}: it does not exist "
            f"or holds no cloaca tables; create it with `cloaca db migrate` or by starting a "
            f"runner on it"
        )
    return open_store(database_url, schema, pool_size)


def mask_url(database_url: str) -> str:
    """``database_url`` with any password replaced by ``***`` (for messages and logs)."""
    parts = urlsplit(database_url)
    if parts.password is None:
        return database_url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
