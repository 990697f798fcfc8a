"""The review web page and its JSON API (FastAPI), served by uvicorn on 127.0.0.1 unless given a token.

    GET  /             the page (self-contained HTML + JS; no network)
    POST /api/next     {session, annotator} -> {item | null, progress}
    POST /api/draft    {session, index, labels, reviewed, cursor}
    POST /api/submit   {session, annotator, index, labels} -> progress
    GET  /api/stats    agreement between annotators and how often proposals were changed

With a token every request must carry it (``?token=`` on the page, the ``X-Review-Token`` header on the API).
"""

from __future__ import annotations

import hmac
import ipaddress
from importlib import resources

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from rewardgauge.errors import InputError
from rewardgauge.review.queue import Conflict, ReviewQueue


class Who(BaseModel):
    session: str
    annotator: str


class Draft(BaseModel):
    session: str
    index: int
    labels: list[bool | None]
    reviewed: list[bool]
    cursor: int = 0


class Submission(BaseModel):
    session: str
    annotator: str
    index: int
    labels: list[bool]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    if not is_loopback(host) and not token:
        raise InputError(f"binding {host} exposes the queue beyond this machine: give --token too", field="host")


def create_app(queue: ReviewQueue, token: str | None = None) -> FastAPI:
    app = FastAPI(title="rewardgauge step review", docs_url=None, redoc_url=None, openapi_url=None)
    page = resources.files("rewardgauge.review").joinpath("page.html").read_text(encoding="utf-8")

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if token is not None:
            given = request.headers.get("x-review-token") or request.query_params.get("token") or ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                return JSONResponse({"detail": "missing or wrong token"}, status_code=401)
        return await call_next(request)

    def conflict(e: Conflict):
        return HTTPException(status_code=409, detail=str(e))

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    # Plain ``def`` endpoints run in a thread pool; the queue's lock makes them safe together.
    @app.post("/api/next")
    def next_item(who: Who) -> dict:
        try:
            return queue.next_item(who.session, who.annotator.strip())
        except Conflict as e:
            raise conflict(e) from None

    @app.post("/api/draft")
    def draft(d: Draft) -> dict:
        try:
            queue.save_draft(d.session, d.index, d.labels, d.reviewed, d.cursor)
        except Conflict as e:
            raise conflict(e) from None
        return {"ok": True}

    @app.post("/api/submit")
    def submit(s: Submission) -> dict:
        try:
            return {"progress": queue.submit(s.session, s.annotator.strip(), s.index, s.labels)}
        except Conflict as e:
            raise conflict(e) from None

    @app.get("/api/stats")
    def stats() -> dict:
        return queue.stats()

    return app


def make_server(queue: ReviewQueue, host: str = "127.0.0.1", port: int = 8765, token: str | None = None):
    """A uvicorn server for the queue (call ``.run()``, or run it in a thread in tests)."""
    import uvicorn

    check_bind(host, token)
    config = uvicorn.Config(create_app(queue, token), host=host, port=port, log_level="warning", access_log=False)
    return uvicorn.Server(config)
