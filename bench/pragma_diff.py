"""The baseline for bench_diff_scale: a plain schema diff of two SQLite files from PRAGMAs.

    python bench/pragma_diff.py LEFT.db RIGHT.db

What a careful operator would write in a few minutes: for every table of either side,
PRAGMA table_info, index_list (+ index_info) and foreign_key_list, compared as plain
tuples; triggers and views by their SQL text. One line per difference; exit 1 when there
is any, like diff(1). No normalisation, no explanations, no fix classes: a lower bound for
what reading and comparing two schemas costs, Python start-up included.
"""
import sqlite3
import sys


def read_schema(path: str) -> dict:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        objects = conn.execute(
            "SELECT type, name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'").fetchall()
        tables = {}
        for kind, name, _sql in objects:
            if kind != "table":
                continue
            quoted = '"' + name.replace('"', '""') + '"'
            indexes = {}
            for _seq, index, unique, origin, partial in conn.execute(f"PRAGMA index_list({quoted})"):
                quoted_index = '"' + index.replace('"', '""') + '"'
                columns = tuple(row[2] for row in conn.execute(f"PRAGMA index_info({quoted_index})"))
                indexes[index.lower()] = (columns, unique, origin, partial)
            tables[name.lower()] = {
                "columns": {row[1].lower(): row[2:] for row in conn.execute(f"PRAGMA table_info({quoted})")},
                "indexes": indexes,
                "foreign_keys": sorted(row[2:] for row in conn.execute(f"PRAGMA foreign_key_list({quoted})")),
            }
        others = {(kind, name.lower()): sql for kind, name, sql in objects if kind in ("view", "trigger")}
        return {"tables": tables, "others": others}
    finally:
        conn.close()


def diff(left: dict, right: dict) -> list[str]:
    lines = []
    for name in sorted(left["tables"].keys() | right["tables"].keys()):
        ours, theirs = left["tables"].get(name), right["tables"].get(name)
        if ours is None or theirs is None:
            lines.append(f"table {name}: only in {'right' if ours is None else 'left'}")
            continue
        for part, kind in (("columns", "column"), ("indexes", "index")):
            for item in sorted(ours[part].keys() | theirs[part].keys()):
                if ours[part].get(item) != theirs[part].get(item):
                    lines.append(f"{kind} {name}.{item}: {ours[part].get(item)} vs {theirs[part].get(item)}")
        if ours["foreign_keys"] != theirs["foreign_keys"]:
            lines.append(f"foreign keys of {name} differ")
    for key in sorted(left["others"].keys() | right["others"].keys()):
        if left["others"].get(key) != right["others"].get(key):
            lines.append(f"{key[0]} {key[1]} differs")
    return lines


if __name__ == "__main__":
    differences = diff(read_schema(sys.argv[1]), read_schema(sys.argv[2]))
    print("\n".join(differences) or "No differences.")
    sys.exit(1 if differences else 0)
