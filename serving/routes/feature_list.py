"""`GET /v1/{task}/features`: the fields a live record must hold for the served model, with their types and
category levels, read from the model's package (a caller learned them only from a 422 that lists 50)."""

from __future__ import annotations

from fastapi import APIRouter

from features.feature_sets import FEATURE_DOCS
from serving.access import Action
from serving.dependencies import Caller, Models
from serving.errors import ERROR_RESPONSES
from serving.feature_domain import feature_domain
from serving.schemas import FeatureField, FeaturesResponse, Task

router = APIRouter(tags=["scores"])


@router.get("/v1/{task}/features", response_model=FeaturesResponse, responses=ERROR_RESPONSES)
async def get_features(task: Task, caller: Caller, models: Models) -> FeaturesResponse:
    """What `records` in `POST /v1/{task}/score` must hold: every feature below (null = unknown)."""
    caller.require(Action.SCORE)  # whoever may post records may learn their fields
    model = models.get(task)
    spec = model.package.spec
    return FeaturesResponse(
        task=task,
        model=model.ref,
        features=[_field(name, spec.categorical.get(name)) for name in spec.names],
    )


def _field(name: str, categories: list[str] | None) -> FeatureField:
    domain = feature_domain(name) if categories is None else None
    return FeatureField(
        name=name,
        type="number" if categories is None else "category",
        categories=categories,
        unit=FEATURE_DOCS[name].unit if name in FEATURE_DOCS else None,
        minimum=domain.minimum if domain else None,
        maximum=domain.maximum if domain else None,
        rule=domain.rule if domain else None,
    )
