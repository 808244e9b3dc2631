"""Orders service: a small Flask + Flask-SQLAlchemy app built by a factory."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from app.models import db
from app.views import bp

DEFAULT_DATABASE_URL = "sqlite:///:memory:"


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the application; `config` overrides the defaults (tests pass their own)."""
    app = Flask(__name__)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        SQLALCHEMY_TRACK_MODIFICATIONS=False,
    )
    if config:
        app.config.update(config)

    db.init_app(app)
    app.register_blueprint(bp)
    return app
