"""Reading a real PostgreSQL database's schema from its catalogs: every kind of object,
its facts, row counts exact or estimated, and a fingerprint that only structure changes."""
import psycopg
import pytest

from app.core.engines.postgresql.catalog import inspect_catalog, normalise_definition, read_catalog
from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import TargetUnavailable, UsageError
from tests.core.engines.postgresql.catalogs import BOTH_SCHEMAS, FULL_SCHEMA, read


@pytest.fixture(scope="module")
def full_database(pg_server):
    """A database holding every kind of object, built once: the tests only read it."""
    name = pg_server.create_database("full")
    pg_server.psql(FULL_SCHEMA, name)
    yield name
    pg_server.drop_database(name)


@pytest.fixture(scope="module")
def full(pg_server, full_database):
    """Its catalog, both schemas read (a Catalog is immutable, so one read serves every test)."""
    return read(pg_server, full_database, schemas=BOTH_SCHEMAS)


def test_tables_are_named_by_schema_outside_the_default_one(full):
    assert [t.name for t in full.tables] == [
        "app.invoices", "Order Items", "customers", "odd.name", "orders", "products", "readings",
        "readings_2026", "scratch"]
    assert full.table("app.invoices").schema == "app"
    assert (full.table("odd.name").schema, full.table("odd.name").row_count) == ("public", 3)
    assert full.table("scratch").persistence == "unlogged"
    assert full.table("orders").kind == "table"
    # A partitioned table holds no rows itself: its partitions are counted.
    readings, partition = full.table("readings"), full.table("readings_2026")
    assert (readings.kind, readings.row_count, readings.row_count_exact) == ("partitioned", None, False)
    assert (partition.kind, partition.row_count, partition.row_count_exact) == ("table", 1, True)
    assert readings.index("readings_at").definition == "CREATE INDEX readings_at ON ONLY readings USING btree (at)"


def test_columns_keep_their_order_type_default_identity_generation_and_collation(full):
    customers, products = full.table("customers"), full.table("products")
    assert [c.name for c in customers.columns] == ["id", "email", "name", "created_at"]
    identity, email, name, created = customers.columns
    assert (identity.type, identity.identity, identity.default, identity.not_null) == ("bigint", "always", None, True)
    assert (email.collation, email.not_null) == ('"C"', True)
    assert (name.type, name.collation, name.not_null) == ("character varying(80)", None, False)
    assert created.default == "now()"
    assert products.column("id").default == "nextval('products_id_seq'::regclass)"
    assert products.column("status").default == "'draft'::status"
    assert products.column("price_with_tax").generated == "(price * 1.2)"
    assert products.column("price_with_tax").default is None
    assert full.table("orders").column("id").identity == "by default"
    # A dropped column leaves no trace; the column added after it comes last.
    assert [c.name for c in full.table("orders").columns][-1] == "flag"
    assert full.table("app.invoices").column("mood").type == "app.mood"


def test_constraints_carry_their_kind_columns_and_foreign_key_rules(full):
    orders = full.table("orders")
    assert {c.name: c.kind for c in orders.constraints} == {
        "note_short": "check", "orders_customer_id_fkey": "foreign_key", "orders_pkey": "primary_key",
        "orders_product_id_fkey": "foreign_key", "orders_room_during_excl": "exclusion"}
    deferred = orders.constraint("orders_product_id_fkey")
    assert (deferred.references, deferred.referenced_columns, deferred.columns) == ("products", ("id",), ("product_id",))
    assert (deferred.on_update, deferred.on_delete, deferred.match) == ("SET NULL", "NO ACTION", "FULL")
    assert deferred.deferrable and deferred.initially_deferred and deferred.validated
    cascade = orders.constraint("orders_customer_id_fkey")
    assert (cascade.on_delete, cascade.match, cascade.deferrable) == ("CASCADE", "SIMPLE", False)
    assert not orders.constraint("note_short").validated
    assert orders.constraint("note_short").definition.endswith("NOT VALID")
    assert orders.constraint("orders_room_during_excl").columns == ("room", "during")
    assert full.table("products").constraint("products_price_check").definition == "CHECK ((price > (0)::numeric))"
    assert full.table("customers").constraint("customers_email_key").kind == "unique"
    assert full.table("app.invoices").constraint("invoices_order_id_fkey").references == "orders"


def test_indexes_backing_constraints_are_the_constraints_own(full):
    assert [i.name for i in full.table("customers").indexes] == []  # pkey and email_key back constraints
    assert [i.name for i in full.table("orders").indexes] == ["orders_customer"]  # the excl index too
    by_customer = full.table("orders").index("orders_customer")
    assert (by_customer.method, by_customer.columns, by_customer.include) == ("btree", ("customer_id",), ("note",))
    assert "customer_id DESC NULLS LAST" in by_customer.definition
    lower = full.table("products").index("products_sku_lower")
    assert (lower.unique, lower.columns, lower.where) == (True, ("lower(sku)",), "qty > 0")
    assert full.table("products").index("products_tags").method == "gin"
    assert full.table("Order Items").index("Items By Price").columns == ('"Unit Price"',)


def test_sequences_views_triggers_enums_and_extensions(full):
    sequences = {s.name: s for s in full.sequences}
    assert set(sequences) == {"app.invoice_numbers", "products_id_seq"}  # identity sequences are their column's
    invoices = sequences["app.invoice_numbers"]
    assert (invoices.type, invoices.start, invoices.increment, invoices.minimum, invoices.maximum, invoices.cycle) == (
        "integer", 1000, 5, 10, 99999, True)
    assert invoices.owned_by is None and sequences["products_id_seq"].owned_by == "products.id"
    assert "last_value" not in invoices.to_dict()  # where a sequence stands is data, not schema
    [view] = full.views
    assert view.name == "active_products" and "WHERE products.status = 'active'::status" in view.definition
    [sales] = full.materialized_views
    assert sales.materialized and [i.name for i in sales.indexes] == ["sales_customer"]
    assert [(t.table, t.name, t.enabled) for t in full.triggers] == [
        ("orders", "orders_touch", "origin"), ("products", "products_touch", "disabled"),
        ("readings", "readings_touch", "origin"), ("readings_2026", "readings_touch", "origin")]
    assert "WHEN (new.note IS NOT NULL)" in full.triggers[0].definition
    assert {e.name: e.labels for e in full.enums} == {
        "app.mood": ("happy", "sad"), "status": ("draft", "paused", "active", "archived")}
    assert {(e.name, e.schema) for e in full.extensions} == {
        ("btree_gist", "public"), ("pg_stat_statements", "public"), ("plpgsql", "pg_catalog")}


def test_facts_name_the_server_and_the_database(full, full_database):
    facts = full.facts
    assert facts.database == full_database
    assert facts.server_version_num >= 150000 and facts.server_version.startswith("15")
    assert facts.size_bytes > 1_000_000 and facts.connections >= 1
    assert full.to_dict()["facts"]["server_version_num"] == facts.server_version_num


def test_only_the_schemas_named_are_read(pg_server, full_database):
    public = read(pg_server, full_database)
    assert "app.invoices" not in [t.name for t in public.tables]
    assert [e.name for e in public.enums] == ["status"]
    app_only = read(pg_server, full_database, schemas=("app",))
    assert [t.name for t in app_only.tables] == ["invoices"]  # the default schema is the first named
    foreign_key = app_only.table("invoices").constraint("invoices_order_id_fkey")
    assert foreign_key.references == "public.orders"


def test_small_tables_are_counted_exactly_big_ones_estimated(pg_server, pg_database):
    pg_server.psql("CREATE TABLE events (n int) WITH (autovacuum_enabled = false);"
                   "INSERT INTO events SELECT generate_series(1, 5000); ANALYZE events;"
                   "CREATE TABLE fresh (n int) WITH (autovacuum_enabled = false);"
                   "INSERT INTO fresh SELECT generate_series(1, 300);", pg_database)
    exact = read(pg_server, pg_database)
    assert [(t.name, t.row_count, t.row_count_exact) for t in exact.tables] == [
        ("events", 5000, True), ("fresh", 300, True)]  # fresh: never analyzed but small
    pg_server.psql("DELETE FROM events WHERE n > 10", pg_database)  # the estimate does not see this
    estimated = read(pg_server, pg_database, exact_count_below_rows=1000, exact_count_below_pages=1)
    events, fresh = estimated.tables
    assert (events.row_count, events.row_count_exact) == (5000, False)
    assert (fresh.row_count, fresh.row_count_exact) == (None, False)  # never analyzed, too big to count


def test_the_fingerprint_covers_structure_and_column_order_not_data(pg_server, pg_database):
    other = pg_server.create_database()
    try:
        pg_server.psql("CREATE TABLE t (a int, b text CHECK (b <> ''))", pg_database)
        pg_server.psql("CREATE TABLE t (a int, b text CHECK (b <> ''));"
                       "INSERT INTO t VALUES (1, 'x')", other)
        first, second = read(pg_server, pg_database), read(pg_server, other)
        assert first.fingerprint() == second.fingerprint() and first.row_counts() != second.row_counts()
        pg_server.psql("DROP TABLE t; CREATE TABLE t (b text CHECK (b <> ''), a int)", other)
        assert read(pg_server, other).fingerprint() != first.fingerprint()
    finally:
        pg_server.drop_database(other)


def test_the_canonical_form_holds_no_oids_counts_or_sizes(full):
    canonical = full.canonical()
    assert set(canonical) == {"tables", "sequences", "views", "materialized_views", "triggers", "enums",
                              "extensions"}
    text = repr(canonical)
    assert "row_count" not in text and "size_bytes" not in text and "oid" not in text
    # An index is compared by its statement without its own name: the name is its key.
    assert canonical["tables"]["Order Items"]["indexes"]["Items By Price"]["definition"] == (
        'CREATE INDEX ON "Order Items" USING btree ("Unit Price")')


def test_the_read_is_one_transaction_that_leaves_nothing_open(pg_url):
    with connect(PostgresLocation(pg_url)) as connection:
        read_catalog(connection)
        assert connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert connection.execute("SHOW search_path").fetchone()[0] == '"$user", public'
    with connect(PostgresLocation(pg_url), autocommit=False) as connection:
        with pytest.raises(UsageError, match="autocommit"):
            read_catalog(connection)


def test_a_table_this_user_cannot_read_is_one_clear_error(pg_server, pg_database):
    pg_server.psql("DROP ROLE IF EXISTS reader; CREATE ROLE reader LOGIN PASSWORD 'pw'", pg_database)
    try:
        pg_server.psql("CREATE TABLE secret (n int); REVOKE ALL ON secret FROM PUBLIC", pg_database)
        location = PostgresLocation(pg_server.url(pg_database, user="reader"), password_env="READER_PW")
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("READER_PW", "pw")
            with pytest.raises(TargetUnavailable) as refused:
                inspect_catalog(location)
        assert refused.value.reason == "unreadable"
        assert "permission denied for table secret" in refused.value.message
        assert "SELECT on its tables" in refused.value.message
    finally:
        pg_server.psql("DROP ROLE IF EXISTS reader")


def test_a_table_locked_by_a_migration_gives_up_after_the_lock_timeout(pg_server, pg_url):
    pg_server.psql("CREATE TABLE busy (n int)", pg_url.rsplit("/", 1)[1])
    with connect(PostgresLocation(pg_url), autocommit=False) as migration:
        migration.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(TargetUnavailable) as refused:
            inspect_catalog(PostgresLocation(pg_url), lock_timeout_ms=200)
    assert refused.value.reason == "locked"
    assert "lock timeout" in refused.value.message and "try again" in refused.value.message


@pytest.mark.parametrize("printed, normalised", [
    (" SELECT a,\n    b\n   FROM t;", "SELECT a, b FROM t;"),
    ("CHECK ((note <> 'two  spaces'::text))", "CHECK ((note <> 'two  spaces'::text))"),
    ('SELECT "odd\tname"  FROM t', 'SELECT "odd\tname" FROM t'),
    (None, None),
])
def test_normalising_a_definition_only_touches_whitespace_outside_quotes(printed, normalised):
    assert normalise_definition(printed) == normalised
