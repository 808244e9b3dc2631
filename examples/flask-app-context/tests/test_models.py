from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from app.models import Order, User, db


def test_user_defaults_to_active(app):
    user = User(email="dana@example.com", name="Dana")
    db.session.add(user)
    db.session.commit()

    assert user.id is not None
    assert user.is_active is True


def test_user_email_is_unique(app):
    db.session.add(User(email="dana@example.com", name="Dana"))
    db.session.commit()
    db.session.add(User(email="dana@example.com", name="Another Dana"))

    with pytest.raises(IntegrityError):
        db.session.commit()


def test_order_defaults_to_pending_and_links_user(app):
    user = User(email="erin@example.com", name="Erin")
    order = Order(user=user, total_cents=1500)
    db.session.add(order)
    db.session.commit()

    assert order.status == "pending"
    assert user.orders == [order]
    assert order.to_dict() == {
        "id": order.id,
        "user_id": user.id,
        "total_cents": 1500,
        "status": "pending",
    }
