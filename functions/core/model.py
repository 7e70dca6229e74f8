"""The base of CityShare's pydantic models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """Validators and serialisers are built on a model's first use, not when its module is imported:
    a request touches a few of the ~70 models, and every import is paid on each cold start."""

    model_config = ConfigDict(defer_build=True)
