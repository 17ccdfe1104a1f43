"""The one error hierarchy's helper for quoting what a driver or a program said."""
from app.core.errors import said_by


def test_the_first_line_of_what_was_said_is_quoted():
    assert said_by(ValueError('relation "t" does not exist\nLINE 1: SELECT ...\nHINT: x')) == 'relation "t" does not exist'


def test_an_exception_that_said_nothing_is_named():
    assert said_by(RuntimeError("")) == "RuntimeError" and said_by(KeyError()) == "KeyError"
