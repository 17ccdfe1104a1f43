"""The audit log's hash chain: an edited entry and a deleted entry are found. Deleting the
last entry leaves a valid (shorter) chain, so a chain alone cannot show it: the head hash
kept beside the chain (instance/audit.head) does."""
import pytest
from sqlalchemy import delete, select

from app import audit
from app.extensions import db
from app.models import AuditEntry

FIELDS = ["time", "actor", "action", "target", "result", "detail"]


@pytest.fixture
def chain(app):
    """Five real entries, appended the way the application appends them."""
    with app.app_context():
        for n in range(5):
            audit.record(f"operator{n}", "sign-off", target="production", detail=f"run 1 step {n}")
        ids = db.session.scalars(select(AuditEntry.id).order_by(AuditEntry.id)).all()
        assert len(ids) == 5 and audit.verify_chain() is None
        yield ids


def entry(entry_id: int) -> AuditEntry:
    return db.session.get(AuditEntry, entry_id)


@pytest.mark.parametrize("field", FIELDS)
def test_an_edited_entry_breaks_the_chain_where_it_was_edited(chain, field):
    middle = entry(chain[2])
    if field == "time":
        from datetime import timedelta

        middle.time = middle.time - timedelta(seconds=1)
    else:
        setattr(middle, field, getattr(middle, field) + "!")
    db.session.commit()
    assert audit.verify_chain() == chain[2]


def test_an_edit_with_its_own_hash_recomputed_still_breaks_the_chain(chain):
    """Re-hashing the edited entry moves the break to the next one, which still names the old hash."""
    middle = entry(chain[2])
    middle.actor = "someone-else"
    middle.entry_hash = audit._entry_hash(middle.previous_hash, middle)
    db.session.commit()
    assert audit.verify_chain() == chain[3]


def test_a_deleted_entry_in_the_middle_breaks_the_chain(chain):
    db.session.execute(delete(AuditEntry).where(AuditEntry.id == chain[2]))
    db.session.commit()
    assert audit.verify_chain() == chain[3]


def test_the_chain_still_grows_after_a_deletion_is_found(chain):
    db.session.execute(delete(AuditEntry).where(AuditEntry.id == chain[1]))
    db.session.commit()
    audit.record("admin", "login")
    assert audit.verify_chain() == chain[2]  # a new entry does not paper over the gap


def test_deleting_the_last_entry_is_detected(chain):
    """Not visible in the chain itself: only the head hash kept beside it shows it."""
    db.session.execute(delete(AuditEntry).where(AuditEntry.id == chain[-1]))
    db.session.commit()
    assert audit.verify_chain() is not None
