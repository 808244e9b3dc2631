from __future__ import annotations

from app.models import Order, User, db
from app.seed import build_users, seed_database


def test_build_users_returns_unsaved_users_with_orders():
    users = build_users()

    assert [user.email for user in users] == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
    ]
    assert [len(user.orders) for user in users] == [2, 1, 0]
    assert all(user.id is None for user in users)


def test_seed_database_inserts_users(app):
    count = seed_database()

    assert count == 3
    assert db.session.scalar(db.select(db.func.count(User.id))) == 3
    assert db.session.scalar(db.select(db.func.count(Order.id))) == 3


def test_seed_database_is_idempotent(app):
    seed_database()

    assert seed_database() == 0
    assert db.session.scalar(db.select(db.func.count(User.id))) == 3
