"""Seed the database with demo users and orders (run through scripts/seed_db.py)."""

from __future__ import annotations

import argparse

from app import create_app
from app.models import Order, User, db

SEED_USERS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("alice@example.com", "Alice", (1250, 4999)),
    ("bob@example.com", "Bob", (899,)),
    ("carol@example.com", "Carol", ()),
)


def build_users() -> list[User]:
    """Return the seed users with their orders, not yet added to a session."""
    users = []
    for email, name, totals in SEED_USERS:
        user = User(email=email, name=name)
        user.orders = [Order(total_cents=total) for total in totals]
        users.append(user)
    return users


def seed_database() -> int:
    """Create the tables and insert the seed users; return how many were added."""
    db.create_all()
    existing = set(db.session.scalars(db.select(User.email)))
    new_users = [user for user in build_users() if user.email not in existing]
    db.session.add_all(new_users)
    db.session.commit()
    return len(new_users)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default: $DATABASE_URL, else an in-memory SQLite database)",
    )
    args = parser.parse_args(argv)

    config = {"SQLALCHEMY_DATABASE_URI": args.database_url} if args.database_url else None
    create_app(config)
    count = seed_database()
    print(f"Seeded {count} users")
    return 0
