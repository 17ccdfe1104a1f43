"""Who acts in a request: the operator logged in, or the API token."""
from flask import g
from flask_login import current_user


def acting_operator() -> str:
    """Who the audit log and the jobs name: the operator, or the API token."""
    return "api-token" if g.get("via_token") else current_user.username
