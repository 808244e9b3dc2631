"""HTTP API."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request
from flask.typing import ResponseReturnValue

from app.models import Order, User, db

bp = Blueprint("api", __name__)


@bp.get("/health")
def health() -> ResponseReturnValue:
    return jsonify(status="ok")


@bp.get("/users")
def list_users() -> ResponseReturnValue:
    users = db.session.scalars(db.select(User).order_by(User.id)).all()
    return jsonify([user.to_dict() for user in users])


@bp.post("/users")
def create_user() -> ResponseReturnValue:
    payload = request.get_json(silent=True) or {}
    email = payload.get("email")
    name = payload.get("name")
    if not email or not name:
        return jsonify(error="email and name are required"), 400
    if db.session.scalar(db.select(User).filter_by(email=email)) is not None:
        return jsonify(error="email already registered"), 409
    user = User(email=email, name=name)
    db.session.add(user)
    db.session.commit()
    return jsonify(user.to_dict()), 201


@bp.get("/users/<int:user_id>")
def get_user(user_id: int) -> ResponseReturnValue:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return jsonify(user.to_dict())


@bp.get("/users/<int:user_id>/orders")
def list_orders(user_id: int) -> ResponseReturnValue:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return jsonify([order.to_dict() for order in user.orders])


@bp.post("/users/<int:user_id>/orders")
def create_order(user_id: int) -> ResponseReturnValue:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    payload = request.get_json(silent=True) or {}
    total_cents = payload.get("total_cents")
    if not isinstance(total_cents, int) or total_cents <= 0:
        return jsonify(error="total_cents must be a positive integer"), 400
    order = Order(user=user, total_cents=total_cents)
    db.session.add(order)
    db.session.commit()
    return jsonify(order.to_dict()), 201
