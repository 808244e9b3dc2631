from __future__ import annotations

from app.models import User, db


def test_health(client):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_create_and_list_users(client):
    created = client.post("/users", json={"email": "fay@example.com", "name": "Fay"})
    listed = client.get("/users")

    assert created.status_code == 201
    assert created.get_json()["email"] == "fay@example.com"
    assert [user["email"] for user in listed.get_json()] == ["fay@example.com"]


def test_create_user_requires_email_and_name(client):
    response = client.post("/users", json={"email": "gus@example.com"})

    assert response.status_code == 400
    assert "required" in response.get_json()["error"]


def test_create_user_rejects_duplicate_email(client):
    client.post("/users", json={"email": "hal@example.com", "name": "Hal"})
    response = client.post("/users", json={"email": "hal@example.com", "name": "Hal 2"})

    assert response.status_code == 409


def test_get_unknown_user_is_404(client):
    assert client.get("/users/999").status_code == 404


def test_create_and_list_orders(client):
    user = User(email="ivy@example.com", name="Ivy")
    db.session.add(user)
    db.session.commit()

    created = client.post(f"/users/{user.id}/orders", json={"total_cents": 2500})
    rejected = client.post(f"/users/{user.id}/orders", json={"total_cents": -1})
    listed = client.get(f"/users/{user.id}/orders")

    assert created.status_code == 201
    assert rejected.status_code == 400
    assert [order["total_cents"] for order in listed.get_json()] == [2500]
