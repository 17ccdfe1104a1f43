"""Has a PostgreSQL database changed since a stamp? Told by the server's own counters for it.

The stamp must move with every write to this database and with nothing else, so that "the
target is unchanged since its backup" can be granted on a server where other databases (and
Cutover's own scratch databases) are written all the time. It holds:
- the database's OID: dropped and re-created under the same name never matches;
- rows inserted, updated and deleted in its tables (pg_stat_all_tables, system catalogs
  included, so DDL counts; rolled-back writes count too, which errs towards "changed");
  pg_statistic, which ANALYZE rewrites without changing any data, is left out, and so are
  the catalogs shared by every database (creating a scratch database writes pg_database);
- each table's file (relfilenode): TRUNCATE and table rewrites move it without counting rows;
- each sequence's position, where this user may read it;
- when the counters were last reset: a reset never reads as "unchanged".
A session flushes its counters when it ends and at least every few seconds while it runs, so a
write by a session still connected may show a moment late. That is why a migration refuses
while another session is connected (unless the environment is declared `online`, and then it
does not claim the target unchanged at all).
"""
from __future__ import annotations

import psycopg

from app.core.engines.postgresql.connections import connect
from app.core.engines.postgresql.location import PostgresLocation
from app.core.errors import TargetUnavailable

_STAMP = """
SELECT d.oid, coalesce(s.stats_reset::text, ''),
       (SELECT coalesce(sum(t.n_tup_ins + t.n_tup_upd + t.n_tup_del), 0)::text
          FROM pg_stat_all_tables t JOIN pg_class c ON c.oid = t.relid
          WHERE NOT c.relisshared AND t.relid <> 'pg_catalog.pg_statistic'::regclass),
       (SELECT md5(coalesce(string_agg(c.oid::text || ':' || c.relfilenode::text, ',' ORDER BY c.oid), ''))
          FROM pg_class c WHERE c.relkind IN ('r', 'p', 'm', 't')),
       (SELECT md5(coalesce(string_agg(q.schemaname || '.' || q.sequencename || ':'
                                       || coalesce(q.last_value::text, '-'), ',' ORDER BY 1), ''))
          FROM pg_sequences q)
FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid
WHERE d.datname = current_database()"""


def stamp_of(location: PostgresLocation) -> list:
    """["postgresql", oid, stats reset, rows written, table files, sequences], or
    ["unavailable", reason] when the database cannot be reached."""
    try:
        with connect(location) as connection:
            connection.execute("SET stats_fetch_consistency = none")  # counters as they are now
            row = connection.execute(_STAMP).fetchone()
    except (TargetUnavailable, psycopg.Error) as exc:
        return ["unavailable", getattr(exc, "reason", type(exc).__name__)]
    return ["postgresql", *row]
