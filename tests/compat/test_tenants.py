"""Tenants on PostgreSQL (SPEC 5.1): ``DatabaseAdmin`` creates a schema, a login role limited
to it and cloaca's tables; a runner on the returned connection string runs workflows and
cannot read another tenant's tables; ``remove_tenant`` drops both."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

import cloaca
from cloaca import Context, DatabaseAdmin, TenantConfig, TenantCredentials
from pg_support import require_postgres, run_sql


def test_database_admin_requires_postgresql() -> None:
    with pytest.raises(ValueError, match="requires a PostgreSQL URL"):
        DatabaseAdmin("sqlite://tenants.db")


@pytest.mark.parametrize("password", [None, ""])
def test_a_missing_password_is_generated(password: str | None) -> None:
    config = TenantConfig("acme", "acme_user", password)
    assert isinstance(config.password, str) and len(config.password) == 32
    assert config.password.isalnum()
    assert config.password != TenantConfig("acme", "acme_user").password
    assert config.password not in repr(config)


@pytest.mark.parametrize(
    ("schema", "username", "match"),
    [
        ("", "u", "Tenant schema name cannot be empty"),
        ("acme; DROP TABLE x", "u", "only alphanumeric characters and underscores"),
        ("acme", 'u" SUPERUSER', "only alphanumeric characters and underscores"),
        ("s" * 64, "u", "over PostgreSQL's identifier limit of 63"),
        ("acme", "postgres", "reserved by PostgreSQL"),
        ("pg_acme", "u", "reserved by PostgreSQL"),
    ],
)
def test_identifiers_are_validated(schema: str, username: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TenantConfig(schema, username)


@pytest.fixture
def tenants() -> Iterator[Callable[[str], TenantCredentials]]:
    """``make(prefix)``: a new tenant; every tenant made is removed afterwards."""
    admin = DatabaseAdmin(require_postgres())
    made: list[TenantCredentials] = []

    def make(prefix: str) -> TenantCredentials:
        suffix = uuid.uuid4().hex[:8]
        credentials = admin.create_tenant(
            TenantConfig(f"{prefix}_{suffix}", f"{prefix}_u_{suffix}")
        )
        made.append(credentials)
        return credentials

    yield make
    for credentials in made:
        admin.remove_tenant(credentials.schema_name, credentials.username)


def test_a_tenant_runs_workflows_in_its_schema_and_cannot_read_another(
    tenants: Callable[[str], TenantCredentials],
) -> None:
    import psycopg

    acme, globex = tenants("acme"), tenants("globex")
    assert acme.password not in repr(acme) and acme.password in acme.connection_string

    @cloaca.task(id="greet")
    def greet(context: Context) -> None:
        context.set("greeting", f"hello {context['who']}")

    cloaca.workflow("tenant_wf", [greet])
    with cloaca.DefaultRunner(acme.connection_string) as runner:
        result = runner.execute("tenant_wf", {"who": "acme"})
    assert result.status == "Completed" and result.final_context["greeting"] == "hello acme"

    admin_url = require_postgres()
    owners = run_sql(
        admin_url,
        "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = :schema",
        {"schema": acme.schema_name},
    )
    assert owners == [(acme.username,)]  # the tables exist, and the tenant owns them
    rows = run_sql(admin_url, f'SELECT count(*) FROM "{acme.schema_name}".cloaca_executions')
    assert rows == [(1,)]
    denied = psycopg.errors.InsufficientPrivilege
    with psycopg.connect(acme.connection_string) as conn, pytest.raises(denied):
        conn.execute(f'SELECT * FROM "{globex.schema_name}".cloaca_executions')
    with psycopg.connect(acme.connection_string) as conn, pytest.raises(denied):
        conn.execute("CREATE SCHEMA h3_escape")
    with cloaca.DefaultRunner(globex.connection_string) as other:
        assert other.list_executions() == []  # its own, empty tables


def test_remove_tenant_drops_schema_and_role(
    tenants: Callable[[str], TenantCredentials],
) -> None:
    gone = tenants("gone")
    admin_url = require_postgres()
    DatabaseAdmin(admin_url).remove_tenant(gone.schema_name, gone.username)
    assert (
        run_sql(admin_url, "SELECT 1 FROM pg_namespace WHERE nspname = :n", {"n": gone.schema_name})
        == []
    )
    assert (
        run_sql(admin_url, "SELECT 1 FROM pg_roles WHERE rolname = :n", {"n": gone.username}) == []
    )


def test_an_existing_role_is_not_taken_over(tenants: Callable[[str], TenantCredentials]) -> None:
    first = tenants("dup")
    admin = DatabaseAdmin(require_postgres())
    with pytest.raises(ValueError, match="already exists"):
        admin.create_tenant(TenantConfig(f"{first.schema_name}_b", first.username))
