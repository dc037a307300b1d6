"""Tenants on PostgreSQL (compat): a schema, a login role limited to it, and cloaca's tables.

``DatabaseAdmin(admin_url).create_tenant(TenantConfig("acme", "acme_user"))`` returns
:class:`TenantCredentials` whose ``connection_string`` opens a ``DefaultRunner`` that sees
only the tenant's schema: the role owns that schema, has ``search_path`` set to it, and is
granted nothing on any other tenant's schema. ``remove_tenant`` drops both.

psycopg (the ``postgres`` extra) is imported only when an admin connects, so ``import cloaca``
never needs it.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from cloaca.errors import ValidationError
from cloaca.names import check_schema_name

__all__ = ["DatabaseAdmin", "TenantConfig", "TenantCredentials"]

PASSWORD_LENGTH = 32
_PASSWORD_ALPHABET = string.ascii_letters + string.digits
# Roles a tenant must never be mistaken for: the superuser, PostgreSQL's own, PUBLIC.
_RESERVED_ROLES = frozenset({"postgres", "public", "none", "current_user", "session_user"})


def _generate_password() -> str:
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(PASSWORD_LENGTH))


def _check_identifier(kind: str, value: Any) -> str:
    """An identifier safe to quote: ASCII letters, digits, underscores, <= 63 bytes, not a
    PostgreSQL-reserved name."""
    try:
        check_schema_name(value)
    except ValidationError as exc:
        raise ValidationError(str(exc).replace("Schema name", f"Tenant {kind}", 1)) from None
    if value.lower().startswith("pg_") or value.lower() in _RESERVED_ROLES:
        raise ValidationError(f"Tenant {kind} {value!r} is reserved by PostgreSQL")
    return str(value)


@dataclass(frozen=True)
class TenantConfig:
    """What to create: ``schema_name``, ``username``, and a ``password`` (None or empty:
    a random 32-character one is generated)."""

    schema_name: str
    username: str
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        _check_identifier("schema name", self.schema_name)
        _check_identifier("username", self.username)
        if self.password is not None and not isinstance(self.password, str):
            raise ValidationError(
                f"password must be a string or None, got {type(self.password).__name__}"
            )
        if not self.password:
            object.__setattr__(self, "password", _generate_password())


@dataclass(frozen=True)
class TenantCredentials:
    """A created tenant: pass ``connection_string`` to ``DefaultRunner``."""

    username: str
    password: str = field(repr=False)
    schema_name: str
    connection_string: str = field(repr=False)


class DatabaseAdmin:
    """Creates and removes tenants on the PostgreSQL database ``admin_url`` names; the URL's
    role needs CREATEROLE and CREATE on the database (a superuser has both)."""

    def __init__(self, admin_url: str) -> None:
        if not isinstance(admin_url, str) or not admin_url.startswith(
            ("postgres://", "postgresql://")
        ):
            raise ValidationError(
                "DatabaseAdmin requires a PostgreSQL URL (postgres://... or postgresql://...)"
            )
        self.admin_url = admin_url

    def _connect(self) -> Any:
        import psycopg  # the optional extra, only when a tenant is managed

        return psycopg.connect(self.admin_url)

    def create_tenant(self, config: TenantConfig) -> TenantCredentials:
        """Create the tenant's role and schema (one transaction: all or nothing), then its
        tables as that role. An existing role or schema of that name is an error."""
        if not isinstance(config, TenantConfig):
            raise ValidationError(f"create_tenant expects a TenantConfig, got {config!r}")
        from psycopg import sql

        assert config.password is not None  # filled in by TenantConfig
        role, schema = sql.Identifier(config.username), sql.Identifier(config.schema_name)
        with self._connect() as conn:
            taken = conn.execute(
                "SELECT (SELECT count(*) FROM pg_roles WHERE rolname = %s),"
                " (SELECT count(*) FROM pg_namespace WHERE nspname = %s)",
                (config.username, config.schema_name),
            ).fetchone()
            if taken and taken[0]:
                raise ValidationError(f"Tenant username {config.username!r} already exists")
            if taken and taken[1]:
                raise ValidationError(f"Tenant schema {config.schema_name!r} already exists")
            conn.execute(
                sql.SQL(
                    "CREATE ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB NOCREATEROLE"
                ).format(role, sql.Literal(config.password))
            )
            conn.execute(sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(schema, role))
            conn.execute(sql.SQL("ALTER ROLE {} SET search_path = {}").format(role, schema))
        credentials = TenantCredentials(
            username=config.username,
            password=config.password,
            schema_name=config.schema_name,
            connection_string=self._tenant_url(config.username, config.password),
        )
        try:
            _migrate(credentials)
        except Exception:
            self.remove_tenant(config.schema_name, config.username)
            raise
        return credentials

    def remove_tenant(self, schema_name: str, username: str) -> None:
        """Drop the tenant's schema (with its tables) and its role; closes the role's open
        sessions first. Missing ones are skipped."""
        _check_identifier("schema name", schema_name)
        _check_identifier("username", username)
        from psycopg import sql

        role = sql.Identifier(username)
        with self._connect() as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (username,),
            )
            conn.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema_name))
            )
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,))
            if exists.fetchone():
                conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
                conn.execute(sql.SQL("DROP ROLE {}").format(role))

    def _tenant_url(self, username: str, password: str) -> str:
        """The admin URL with the tenant's credentials; a ``search_path`` option is dropped
        (the role's own search_path applies)."""
        parts = urlsplit(self.admin_url)
        host = parts.hostname or ""
        if ":" in host:  # IPv6 literal
            host = f"[{host}]"
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("options", "user")]
        query = [(k, v) for k, v in query if k != "password"]
        return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), ""))

    def __repr__(self) -> str:
        from cloaca.store.drivers.urls import masked_url

        return f"DatabaseAdmin({masked_url(self.admin_url)!r})"


def _migrate(credentials: TenantCredentials) -> None:
    """Create cloaca's tables in the tenant's schema, as the tenant (who then owns them)."""
    from cloaca.store.core import Store
    from cloaca.store.drivers.postgres import PostgresDatabase

    store = Store(PostgresDatabase(credentials.connection_string, pool_size=1))
    try:
        store.migrate()
    finally:
        store.close()
