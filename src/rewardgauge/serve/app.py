"""The reward server's HTTP API (FastAPI).

    POST /v1/score     native: {"prompts", "responses", "meta"?} -> Scores.to_dict() (reward, members,
                       aspects, uncertainty, steps, extras)
    POST /get_reward   OpenRLHF: {"query", "prompts", "labels"} -> {"rewards", "scores", "extra_logs"}
    GET  /health       liveness: the process answers (never needs the token)
    GET  /ready        readiness: the model is loaded and the server takes work (503 while draining)
    GET  /metrics      Prometheus text format
    GET  /openapi.json the schema

With a token configured, every endpoint but ``/health`` needs ``Authorization: Bearer <token>``, ``/metrics``
included: request counts and latencies describe the traffic of a training run, and Prometheus sends a bearer
token with ``authorization: {credentials_file: ...}`` in its scrape config. Tokens are compared in constant time.
Every error is JSON, ``{"error": "..."}``; a malformed request gets a 4xx.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from rewardgauge.rewards.base import RewardModel
from rewardgauge.serve import openrlhf
from rewardgauge.serve.batching import Batcher, QueueFull, ShuttingDown
from rewardgauge.serve.config import ServeConfig
from rewardgauge.serve.metrics import Metrics

LIVENESS = "/health"
ENDPOINTS = ("/v1/score", "/get_reward", LIVENESS, "/ready", "/metrics", "/openapi.json")


# ---- wire format -------------------------------------------------------------------------------------------

class Message(BaseModel):
    role: str
    content: str


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prompts: list[str | list[Message]] = Field(description="one prompt per response: a text or chat messages")
    responses: list[str]
    meta: list[dict[str, Any] | None] | None = Field(
        default=None, description="optional per-response facts for the reward model (task_id, group_id, ...)")


class ScoresAnswer(BaseModel):
    """``Scores.to_dict()``: fields the reward model does not produce are left out."""

    reward: list[float] = Field(description="[B] the reward (for an ensemble: the aggregate)")
    members: list[list[float]] | None = Field(default=None, description="[K][B] each ensemble member's reward")
    aspects: dict[str, list[float]] | None = Field(default=None, description="{aspect: [B]} multi-objective models")
    uncertainty: list[float] | None = Field(default=None, description="[B] disagreement or predicted spread")
    steps: list[list[float]] | None = Field(default=None, description="[B][n_i] step scores (process RMs)")
    extras: dict[str, list[Any]] | None = Field(default=None, description="{name: [B]} per-response facts")


class OpenRLHFRequest(BaseModel):
    query: list[str] = Field(description="prompt + response, as decoded by the policy's tokenizer")
    prompts: list[str] | None = Field(default=None, description="the prompt each query starts with")
    labels: list[Any] | None = Field(default=None, description="dataset labels, given to the model as meta['label']")


class OpenRLHFAnswer(BaseModel):
    rewards: list[float]
    scores: list[float]
    extra_logs: dict[str, list[float]] = Field(description="member_k, uncertainty, aspect_<name>: one value per query")


class ErrorAnswer(BaseModel):
    error: str


class Health(BaseModel):
    status: str
    model: str | None = None
    queued: int | None = None


def _errors(*codes: int) -> dict[int, dict]:
    what = {401: "missing or wrong token", 413: "request too large", 422: "malformed request",
            503: "queue full (see Retry-After) or shutting down", 504: "not scored within the request timeout"}
    return {c: {"model": ErrorAnswer, "description": what[c]} for c in codes}


# ---- the app -----------------------------------------------------------------------------------------------

def create_app(rm: RewardModel, cfg: ServeConfig, token: str | None = None) -> FastAPI:
    """The server for ``rm``. ``token``: when given, required on every endpoint but ``/health``."""
    metrics = Metrics()
    batcher = Batcher(rm, max_batch_size=cfg.max_batch_size, max_wait=cfg.max_wait_ms / 1000.0,
                      max_queue=cfg.max_queue, on_batch=metrics.observe_batch, on_queue=metrics.queue_depth.set)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.close()  # uvicorn has waited for in-flight requests; the queue is empty or drains here

    app = FastAPI(title="rewardgauge reward server", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)  # the docs pages load scripts from a CDN: not offline
    app.state.batcher, app.state.metrics = batcher, metrics
    _add_error_handlers(app)
    app.add_middleware(Guard, token=token, metrics=metrics, max_body=int(cfg.max_body_mb * 1024 * 1024))
    if token:
        _document_bearer_auth(app)

    async def scored(prompts: list, responses: list[str], meta: list | None) -> dict[str, Any]:
        n = len(responses)
        if n > cfg.max_request_items:
            raise HTTPException(413, f"{n} responses in one request; this server takes at most {cfg.max_request_items}")
        try:
            return await batcher.submit(prompts, responses, meta, timeout=cfg.request_timeout)
        except QueueFull as e:
            raise HTTPException(503, str(e), headers={"Retry-After": str(e.retry_after)}) from None
        except ShuttingDown as e:
            raise HTTPException(503, str(e), headers={"Retry-After": "1"}) from None
        except asyncio.TimeoutError:  # noqa: UP041 (Python 3.10: not the builtin TimeoutError)
            raise HTTPException(504, f"not scored within {cfg.request_timeout:g} s") from None
        except (ValueError, KeyError, TypeError) as e:  # the model refused this request's content
            raise HTTPException(422, f"the reward model could not score this request: {e}") from None

    @app.post("/v1/score", response_model=ScoresAnswer, responses=_errors(401, 413, 422, 503, 504),
              summary="Score responses: every field of Scores")
    async def score(body: ScoreRequest) -> Response:
        if len(body.prompts) != len(body.responses) or (body.meta is not None and len(body.meta) != len(body.responses)):
            given = f"{len(body.prompts)} prompts, {len(body.responses)} responses" + (
                "" if body.meta is None else f", {len(body.meta)} meta")
            raise HTTPException(422, f"prompts, responses and meta need one entry per response; got {given}")
        prompts = [p if isinstance(p, str) else [m.model_dump() for m in p] for p in body.prompts]
        return _json(await scored(prompts, body.responses, body.meta))

    @app.post("/get_reward", response_model=OpenRLHFAnswer, responses=_errors(401, 413, 422, 503, 504),
              summary="OpenRLHF remote reward model protocol")
    async def get_reward(body: OpenRLHFRequest) -> Response:
        try:
            responses = openrlhf.split_queries(body.query, body.prompts, cfg.strip_suffix)
        except openrlhf.SplitError as e:
            raise HTTPException(422, str(e)) from None
        if body.labels is not None and len(body.labels) != len(body.query):
            raise HTTPException(422, f"'query' has {len(body.query)} entries but 'labels' has {len(body.labels)}")
        meta = None if body.labels is None else [{"label": label} for label in body.labels]
        return _json(openrlhf.answer(await scored(list(body.prompts), responses, meta)))

    @app.get(LIVENESS, response_model=Health, response_model_exclude_none=True,
             summary="Liveness: the process answers")
    async def health() -> Health:
        return Health(status="alive")

    @app.get("/ready", response_model=Health, responses=_errors(401, 503), summary="Readiness: takes work")
    async def ready() -> Response:
        if batcher.closing:
            return JSONResponse({"error": "shutting down"}, status_code=503)
        return _json({"status": "ready", "model": rm.name, "queued": batcher.queued})

    @app.get("/metrics", responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}, **_errors(401)},
             response_class=Response, summary="Prometheus metrics (text format)")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    return app


def _json(content: Any) -> Response:
    # Scores.to_dict() may hold NaN/Infinity from a broken model; json.dumps writes them (as the wire format
    # documents) instead of failing the request with a 500.
    return Response(json.dumps(content, separators=(",", ":")), media_type="application/json")


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's answer to a body it cannot decode: one code for malformed bodies
            return JSONResponse({"error": f"invalid request: {exc.detail} (not UTF-8 JSON)"}, status_code=422)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            problems.append(f"{where}: {err.get('msg', 'invalid')}")
        more = len(exc.errors()) - len(problems)
        message = "invalid request: " + "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")
        return JSONResponse({"error": message}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


def _document_bearer_auth(app: FastAPI) -> None:
    """Put the bearer token into the OpenAPI schema (checked by Guard, not per route)."""
    def openapi() -> dict:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            for path, ops in schema["paths"].items():
                if path != LIVENESS:
                    for op in ops.values():
                        op["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema
    app.openapi = openapi


class Guard:
    """ASGI middleware in front of every route: counts and times requests, checks the token before anything
    reads the body, and refuses bodies over ``max_body`` bytes (by Content-Length, or while reading)."""

    def __init__(self, app, *, token: str | None, metrics: Metrics, max_body: int):
        self.app, self.metrics, self.max_body = app, metrics, max_body
        self.token = None if not token else token.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            headers = dict(scope["headers"])
            if self.token is not None and path != LIVENESS and not self._authorized(headers):
                return await _reply(send_status, 401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                                    {"www-authenticate": "Bearer"})
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                return await _reply(send_status, 413, f"request body over {self.max_body} bytes")
            await self.app(scope, self._limited(receive), send_status)
        finally:
            self.metrics.observe_request(endpoint, status, time.perf_counter() - start)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, given = headers.get(b"authorization", b"").partition(b" ")
        # compare_digest takes time independent of where the tokens differ (not of their lengths)
        return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), self.token)

    def _limited(self, receive):
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise HTTPException(413, f"request body over {self.max_body} bytes")
            return message
        return limited


async def _reply(send, status: int, error: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps({"error": error}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
