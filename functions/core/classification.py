"""Classifications of datasets, in order of sensitivity: a tag grant up to "confidential" covers
public, internal and confidential datasets; a derived dataset is as sensitive as its most
sensitive input. The one table of this order, for the models and for the policies alike."""

from __future__ import annotations

CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")
CLASSIFICATION_RANK: dict[str, int] = {name: rank for rank, name in enumerate(CLASSIFICATIONS)}
