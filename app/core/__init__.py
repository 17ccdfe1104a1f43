"""Pure core: inspection, comparison and (later) every operation that can change a target.

Nothing in this package imports Flask or the dashboard's models, so each function can be
read top to bottom and tested against real SQLite files in a temporary folder.
"""
