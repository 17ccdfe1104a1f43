"""A PostgreSQL target's URL: shown without its password, refused when it carries one."""
import pytest

from app.core.engines.postgresql.location import PostgresLocation, without_password
from app.core.errors import ConfigError


def test_label_is_the_url():
    location = PostgresLocation("postgresql://app@db.internal:5433/shop")
    assert location.label == "postgresql://app@db.internal:5433/shop"
    assert location.server == "db.internal:5433"
    assert location.database == "shop"


def test_a_password_is_never_shown():
    assert without_password("postgresql://app:hunter2@db/shop") == "postgresql://app@db/shop"


def test_a_url_with_a_password_is_refused_without_repeating_it():
    with pytest.raises(ConfigError) as caught:
        PostgresLocation("postgresql://app:hunter2@db/shop")
    assert "hunter2" not in caught.value.message
    assert "password_env" in caught.value.message


@pytest.mark.parametrize("url", ["mysql://app@db/shop", "db/shop", "postgresql://app@db"])
def test_what_is_not_a_postgresql_url_naming_a_database(url):
    with pytest.raises(ConfigError):
        PostgresLocation(url)


def test_password_env_is_passed_only_to_the_driver():
    arguments = PostgresLocation("postgresql://app@db/shop", password_env="SHOP_PW").connect_arguments(
        {"SHOP_PW": "hunter2"})
    assert arguments["password"] == "hunter2"
    assert "hunter2" not in arguments["conninfo"]
