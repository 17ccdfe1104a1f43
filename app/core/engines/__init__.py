"""Database engines: everything that depends on the kind of database, one folder each."""
