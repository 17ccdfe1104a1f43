"""A PostgreSQL prep plan on a real server: new tables parents first, serial columns, indexes."""
from app.core.engines import engine_for
from app.core.engines.postgresql.location import PostgresLocation
from app.core.prep import generate_prep

REFERENCE = """
CREATE TABLE owners (id serial PRIMARY KEY, name varchar(40) NOT NULL DEFAULT 'x');
CREATE TABLE pets (id bigserial PRIMARY KEY, owner_id int NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
                   born date CHECK (born > '2000-01-01'), tag uuid UNIQUE);
CREATE INDEX pets_owner ON pets (owner_id) WHERE born IS NOT NULL;
"""


def schema_of(engine):
    return engine.read_consistently(lambda connection: engine.read_schema(connection))


def test_a_prep_plan_rebuilds_the_references_tables_in_an_empty_database(pg_server):
    reference_db, target_db = pg_server.create_database("ref"), pg_server.create_database("target")
    try:
        pg_server.psql(REFERENCE, database=reference_db)
        reference = engine_for(PostgresLocation(pg_server.url(reference_db)), "postgresql")
        target = engine_for(PostgresLocation(pg_server.url(target_db)), "postgresql")
        prep = generate_prep(schema_of(target), schema_of(reference), engine=target)
        assert not prep.not_added, prep.not_added
        assert prep.text.index("CREATE TABLE owners") < prep.text.index("CREATE TABLE pets")
        assert "id serial NOT NULL" in prep.text and "id bigserial NOT NULL" in prep.text
        pg_server.psql(prep.text, database=target_db)
        assert not reference.compare(schema_of(reference), schema_of(target), left_label="reference",
                                     right_label="target")
    finally:
        pg_server.drop_database(reference_db)
        pg_server.drop_database(target_db)
