"""Extensions are created unbound here and bound to an app in create_app()."""
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


# Every whole number of the state is 64-bit, as in SQLite (whose INTEGER is, and whose ids the
# routes accept up to 2**63 - 1): BIGINT on PostgreSQL, where INTEGER is 32-bit.
Base.registry.update_type_annotation_map({int: BigInteger().with_variant(Integer(), "sqlite")})


db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
