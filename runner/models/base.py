"""The base of every boundary model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Base for every boundary model: unknown fields are errors."""

    model_config = ConfigDict(extra="forbid")
