"""The sandbox as a FastAPI app: the phone-agent API's four routes, its errors, and the admin routes.

Faithful to the real API where a client can tell the difference: 201 on create, a bare array on list, no
`GET /phone/{id}` (an unknown route, answered with NestJS's "Cannot GET ..." 404), 400 (not FastAPI's 422)
with class-validator style messages, and the `{statusCode, error, message}` envelope on every error.
"""

from __future__ import annotations

import secrets
import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ._faults import Faults
from ._middleware import SandboxMiddleware, error_envelope, install_drop_log_filter
from ._schema import Agent, AgentCreate, AgentUpdate, ErrorEnvelope, validation_messages
from ._state import SandboxConfig, SandboxState

ADMIN_PREFIX = "/_sandbox"

# Fields newer API versions add to every agent (the `extra_fields` fault), with the values they default to.
NEWER_API_FIELDS: dict[str, Any] = {
    "speed": 1.0,
    "flow": None,
    "manual_mode": False,
    "custom_llm": None,
    "use_org_knowledgebase": True,
    "recording_enabled": False,
}

_NO_CHANGES = AgentUpdate()

# Documentation only: the bearer check itself lives in SandboxMiddleware, because the real API checks the
# token before it validates the body (NestJS guards run before pipes), and never for an unknown route.
_bearer_docs = HTTPBearer(auto_error=False, description="Authorization: Bearer <token> (default sandbox-token)")
_admin_bearer = HTTPBearer(auto_error=False)

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in {
        400: "Invalid body: `message` lists one problem per field",
        401: "Missing or wrong bearer token",
        429: "Rate limited; see Retry-After",
    }.items()
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorEnvelope, "description": "No agent with this id"}}


class ApiError(Exception):
    """An error answered with the envelope, raised from a handler."""

    def __init__(self, status: int, message: str | list[str]) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


# FastAPI builds each route's body model with pydantic when the route is added, and pydantic's schema building is
# not safe from two threads at once: two sandboxes started side by side (tests/test_scenarios.py runs the two
# adapters so) once met a half-built `Faults` schema and a spurious UnsupportedFieldAttributeWarning (seen in CI).
_BUILDING = threading.Lock()


def create_app(config: SandboxConfig | None = None) -> FastAPI:
    """Build a sandbox app; its runtime state (faults, store, stats) is `app.state.sandbox`.

    The app can be served by any ASGI server, or in a background thread with `serve`. Whoever created it
    closes the database with `app.state.sandbox.close()` when done.
    """
    with _BUILDING:
        return _create_app(config)


def _create_app(config: SandboxConfig | None) -> FastAPI:
    state = SandboxState(config if config is not None else SandboxConfig())
    app = FastAPI(
        title="oppie sandbox: the phone-agent API",
        description="A local stand-in of the phone-agent API for tests and demos, with fault injection "
        "under `/_sandbox`. There is deliberately no `GET /phone/{id}`, as in the real API.",
        version="1",
    )
    app.state.sandbox = state
    api = _api_router(state)
    app.include_router(api)
    app.include_router(_admin_router(state))
    _add_error_handlers(app)
    exempt = [ADMIN_PREFIX] + [
        path for path in (app.docs_url, app.redoc_url, app.openapi_url, app.swagger_ui_oauth2_redirect_url) if path
    ]
    app.add_middleware(SandboxMiddleware, state=state, routes=api.routes, exempt_paths=exempt)
    install_drop_log_filter()
    return app


def present(agent: dict[str, Any], faults: Faults) -> dict[str, Any]:
    """The agent as the API version being emulated returns it."""
    shown = dict(agent)
    if faults.language_as_list:
        shown["language"] = None if shown["language"] is None else [shown["language"]]
    if faults.extra_fields:
        shown.update(NEWER_API_FIELDS)
    return shown


def _api_router(state: SandboxState) -> APIRouter:
    router = APIRouter(tags=["phone"], dependencies=[Depends(_bearer_docs)], responses=_ERRORS)

    @router.post("/phone", status_code=201, response_model=Agent, summary="Create an agent")
    def create_agent(body: AgentCreate) -> Response:
        """Provision an agent and its phone number. Not idempotent: each call makes a new agent."""
        agent = state.store.create(body.model_dump(by_alias=True))
        status = 200 if state.faults.post_status_200 else 201
        return JSONResponse(present(agent, state.faults), status_code=status)

    @router.get("/phone", response_model=list[Agent], summary="List all agents")
    def list_agents() -> Response:
        """Every agent of the organisation, oldest first: no pagination, no filters."""
        faults = state.faults
        return JSONResponse([present(agent, faults) for agent in state.store.agents()])

    @router.patch("/phone/{id}", response_model=Agent, responses=_NOT_FOUND, summary="Change an agent")
    def update_agent(agent_id: Annotated[str, Path(alias="id")], body: AgentUpdate = _NO_CHANGES) -> Response:
        """Change any subset of the fields; `model` cannot change (the agent must be replaced)."""
        changes = body.changes()
        current = state.store.get(agent_id)
        if current is None:
            raise ApiError(404, f"Phone agent {agent_id} not found")
        if "model" in changes and changes["model"] != current["model"]:
            raise ApiError(400, "model cannot be changed after creation")
        agent = state.store.update(agent_id, changes)
        if agent is None:  # deleted between the read and the write
            raise ApiError(404, f"Phone agent {agent_id} not found")
        if state.faults.patch_empty_body:
            return Response(status_code=200)
        return JSONResponse(present(agent, state.faults))

    @router.delete(
        "/phone/{id}",
        response_class=Response,
        responses={**_NOT_FOUND, 200: {"description": "Deleted; empty body"}},
        summary="Delete an agent",
    )
    def delete_agent(agent_id: Annotated[str, Path(alias="id")]) -> Response:
        """Delete an agent and release its phone number."""
        if not state.store.delete(agent_id):
            raise ApiError(404, f"Phone agent {agent_id} not found")
        return Response(status_code=200)

    return router


def _admin_router(state: SandboxState) -> APIRouter:
    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_bearer)],
    ) -> None:
        expected = state.config.token.encode()
        if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected):
            raise ApiError(401, "Missing or invalid bearer token")

    router = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox admin"], dependencies=[Depends(require_token)])

    @router.get("/faults")
    def get_faults() -> Faults:
        """The faults in force."""
        return state.faults

    @router.put("/faults")
    def replace_faults(faults: Faults) -> Faults:
        """Replace every fault: what the body leaves out is turned off."""
        state.faults = faults
        return state.faults

    @router.patch("/faults")
    def change_faults(changes: dict[str, Any]) -> Faults:
        """Change the named faults and keep the others."""
        try:
            return state.fault_state.update(**changes)
        except ValidationError as exc:
            raise ApiError(400, validation_messages(exc.errors())) from exc

    @router.get("/stats")
    def get_stats() -> dict[str, Any]:
        """Counts of API requests by route and status, and of the connections they came on."""
        return state.stats.snapshot()

    @router.post("/reset-stats")
    def reset_stats() -> dict[str, Any]:
        """Count from zero."""
        state.stats.reset()
        return state.stats.snapshot()

    @router.post("/reset")
    def reset() -> dict[str, Any]:
        """Delete every agent, count from zero, and go back to the startup faults."""
        state.reset()
        return {"faults": state.faults.model_dump(), "stats": state.stats.snapshot()}

    return router


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_envelope(exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code in (404, 405):
            # Express answers an unmatched method+path (even a known path) with this 404, never a 405.
            return error_envelope(404, f"Cannot {request.method} {request.url.path}")
        return error_envelope(exc.status_code, str(exc.detail))

    async def invalid_body(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        errors = exc.errors()
        unparsable = next((error for error in errors if error.get("type") == "json_invalid"), None)
        if unparsable is not None:
            # A body that is not JSON fails in the parser, whose message is one string, not a list.
            position = unparsable.get("loc", ("body", "?"))[-1]
            detail = unparsable.get("ctx", {}).get("error", "invalid JSON")
            return error_envelope(400, f"Unexpected token in JSON: {detail} at position {position}")
        required = ("name",) if request.method == "POST" and request.url.path == "/phone" else ()
        return error_envelope(400, validation_messages(errors, required))

    async def unexpected(request: Request, exc: Exception) -> Response:
        return error_envelope(500, "Internal server error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_body)
    app.add_exception_handler(Exception, unexpected)
