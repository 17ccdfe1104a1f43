"""One check result: its one-line form names the check once."""
from app.core.results import CheckResult


def test_a_summary_that_names_its_check_is_not_given_the_name_twice():
    assert CheckResult("integrity_check", True, "integrity_check: ok").line() == "✓ integrity_check: ok"


def test_a_summary_that_does_not_is_given_it():
    assert CheckResult("smoke", False, "2 statements failed").line() == "✗ smoke: 2 statements failed"
