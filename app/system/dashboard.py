"""The pages a person opens: the API docs at /docs and the live dashboard at /dashboard.

Both work on a machine without internet: Swagger UI's files come from the `swagger-ui-bundle-v2` package
(no CDN), and the dashboard is plain HTML and JavaScript from app/system/static/, with no build step (its charting
library, uPlot, is a vendored file in static/vendor/ with its licence).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.system import api_docs

DASHBOARD_DIR = Path(__file__).resolve().parent / "static"
SWAGGER_UI = "/static/swagger-ui"

router = APIRouter(tags=["dashboard"])


def install(application: FastAPI) -> None:
    """Mount the static files and the page routes; create the app with docs_url=None, redoc_url=None."""
    api_docs.install(application)
    application.mount(SWAGGER_UI, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    application.mount("/dashboard/static", StaticFiles(directory=DASHBOARD_DIR), name="dashboard-static")
    application.include_router(router)


@router.get("/docs", include_in_schema=False)
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    return get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title="kerasd · API docs",
        swagger_js_url=f"{root}{SWAGGER_UI}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{SWAGGER_UI}/swagger-ui.css",
        swagger_favicon_url=f"{root}{SWAGGER_UI}/favicon-32x32.png",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        # No badge from the online validator: nothing on the page leaves this server.
        swagger_ui_parameters={"validatorUrl": None, "displayRequestDuration": True, "filter": True,
                               "tryItOutEnabled": False, "defaultModelsExpandDepth": 0},
    )


@router.get("/docs/oauth2-redirect", include_in_schema=False)
def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/dashboard", response_class=FileResponse,
            summary="The live dashboard: jobs, progress curves, epochs, artifacts, cancel, runs compared",
            description="A page for people: the job list (name, tags, status, model, queue position, progress, "
                        "chosen parameter and metric columns; filtered and sorted), a form that starts the "
                        "tutorial's §3.2 job, each job's live loss and metric curves fed by "
                        "`GET /v1/jobs/{id}/events`, its epochs, artifact downloads and a cancel button, and the "
                        "selected runs compared: curves overlaid per metric, parameters and metrics side by side "
                        "with what differs marked, one parameter against one metric. Open it in a browser: "
                        "`http://127.0.0.1:8000/dashboard`.",
            responses={200: {"content": {"text/html": {}}, "description": "The dashboard page"}})
def get_dashboard() -> FileResponse:
    return FileResponse(DASHBOARD_DIR / "index.html", media_type="text/html")


@router.get("/dashboard/", include_in_schema=False)
def dashboard_slash() -> RedirectResponse:
    return RedirectResponse("../dashboard")
