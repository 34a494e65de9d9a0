"""Plugins (DESIGN.md §4): the custom layers and models this server lets specs name."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from app.deps import settings, spec_checker
from app.problems import Problem
from app.sessions import SessionReleasingRoute
from app.settings import Settings
from app.spec_checker import CheckerFailed, CheckerRejected, SpecChecker

router = APIRouter(prefix="/v1/plugins", tags=["plugins"], route_class=SessionReleasingRoute)


@router.get("", summary="The enabled server-side plugins: layers and models a spec may name (tutorial §4.2, §4.3)",
            description="Clients never send code: custom layers and subclassed models are Python packages the "
                        "server enables (KERASD_PLUGINS). Name a layer by `class_name` in a spec, a model with "
                        "`{\"type\": \"plugin_model\", \"class_name\": ...}`; Keras JSON names them by "
                        "`registered_name`. The list is read in the spec checker's sandbox, which imports them.")
def list_plugins(checker: SpecChecker = Depends(spec_checker), config: Settings = Depends(settings)) -> dict[str, Any]:
    try:
        objects = checker.cached("catalog")["plugins"]
    except (CheckerFailed, CheckerRejected) as exc:
        raise Problem(503, "Plugins Unavailable", f"The spec checker could not load the plugins: {exc}. "
                      "Check KERASD_PLUGINS on the server.") from None
    return {"enabled": config.plugin_modules, "items": objects}
