"""The FastAPI application of ``glmx serve``: models, embeddings, logits and variant scores.

Errors are JSON ``{"error": {"message", "type", "param", "code"}}`` (the OpenAI shape) with a
4xx status: 401 without the token, 413 for a body, sequence or batch over a limit, 422 for a
malformed request, 429 when the batching queue is full (a request's rows are admitted
to it as a whole; one larger than ``--max-queue`` runs when nothing else waits).
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from glmx.serve import compute
from glmx.serve.batcher import Batcher, QueueFull
from glmx.serve.compute import RequestError

log = logging.getLogger("glmx.serve")

# most numbers one response may carry (pooling "none" returns L x hidden per input)
MAX_VALUES = 2**24


@dataclass
class ServeSettings:
    """Limits and batching of a server (the ``glmx serve`` options)."""

    name: str = "glmx-gpn"
    window: int = 512
    max_seq_len: int = 4096
    max_items: int = 64
    max_body_bytes: int = 2_000_000
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    batching: bool = True
    token: str | None = None
    check_ref: bool = True
    genome_path: str | None = None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmbeddingsRequest(_Strict):
    """OpenAI embeddings request: ``input`` is one DNA sequence or a list of them."""

    input: str | list[str]
    model: str | None = None
    pooling: Literal["mean", "max", "none"] = "mean"
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None


class LogitsRequest(_Strict):
    """One sequence; ``mask``: 0-based positions replaced by ``[MASK]``."""

    sequence: str
    model: str | None = None
    mask: list[int] = Field(default_factory=list)
    mask_separately: bool = False


class Variant(_Strict):
    """An SNV on the server's genome, 1-based position."""

    chrom: str
    pos: int
    ref: str
    alt: str


class WindowPair(_Strict):
    """Ref and alt windows of equal length that differ at one base."""

    ref: str
    alt: str


class ScoreRequest(_Strict):
    """Either ``variants`` (against the genome loaded at start) or ref/alt ``windows``."""

    variants: list[Variant] | None = None
    windows: list[WindowPair] | None = None
    model: str | None = None
    embeddings: bool = True


def _error(status: int, message: str, param: str | None = None, kind: str | None = None):
    kind = kind or ("rate_limit_error" if status == 429 else "invalid_request_error")
    if status == 401:
        kind = "authentication_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": status}},
        status_code=status,
    )


class _BodyLimit:
    """Rejects request bodies over ``limit`` bytes with 413 before the handler reads them."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_big = length is not None and length.isdigit() and int(length) > self.limit
        if not too_big and length is None and scope.get("method") in ("POST", "PUT"):
            chunks, total, more = [], 0, True
            while more:
                msg = await receive()
                chunks.append(msg.get("body", b""))
                total += len(chunks[-1])
                more = msg.get("more_body", False)
                if total > self.limit:
                    too_big = True
                    break
            if not too_big:
                body = b"".join(chunks)
                sent = False

                async def replay() -> Any:
                    nonlocal sent
                    if sent:
                        return await receive()
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}

                return await self.app(scope, replay, send)
        if too_big:
            resp = _error(413, f"request body exceeds the server's limit of {self.limit} bytes")
            return await resp(scope, receive, send)
        return await self.app(scope, receive, send)


def create_app(
    net: torch.nn.Module,
    settings: ServeSettings,
    genome: dict[str, str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> FastAPI:
    """The application serving ``net`` (a GPN in eval mode on ``device``)."""
    dev = torch.device(device)
    batcher = Batcher(
        net,
        dev,
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        max_queue=settings.max_queue,
        enabled=settings.batching,
        dtype=dtype,
    )
    created = int(time.time())
    n_params = sum(p.numel() for p in net.parameters())

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="glmx serve", lifespan=lifespan)
    app.state.batcher = batcher

    def auth(request: Request) -> None:
        if settings.token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").strip().partition(" ")
        # the auth scheme is case-insensitive (RFC 7235); the token is not
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), settings.token.encode()
        ):
            raise RequestError(
                "missing or wrong bearer token (Authorization: Bearer ...)", None, 401
            )

    @app.exception_handler(RequestError)
    async def _req_error(_r: Request, err: RequestError):
        return _error(err.status, str(err), err.param)

    @app.exception_handler(QueueFull)
    async def _full(_r: Request, err: QueueFull):
        return _error(429, f"server busy: {err}")

    @app.exception_handler(Exception)
    async def _internal(_r: Request, err: Exception):
        log.exception("request failed")
        return _error(500, f"internal error: {type(err).__name__}: {err}", kind="server_error")

    @app.exception_handler(RequestValidationError)
    async def _invalid(_r: Request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        return _error(422, f"{loc or 'body'}: {first.get('msg', 'invalid request')}", loc or None)

    def check_model(name: str | None) -> None:
        if name is not None and name != settings.name:
            raise RequestError(
                f"unknown model {name!r}; this server serves {settings.name!r}", "model", 404
            )

    def check_items(n: int, param: str) -> None:
        if n == 0:
            raise RequestError("no items in the request", param)
        if n > settings.max_items:
            raise RequestError(
                f"{n} items exceed the server's limit of {settings.max_items} per request",
                param,
                413,
            )

    @app.get("/v1/models", dependencies=[Depends(auth)])
    async def models() -> dict[str, Any]:
        cfg = getattr(net, "cfg", None)
        info = {
            "id": settings.name,
            "object": "model",
            "created": created,
            "owned_by": "glmx",
            "parameters": n_params,
            "config": asdict(cfg) if cfg is not None else None,
            "device": str(dev),
            "genome": settings.genome_path,
            "limits": {
                "max_seq_len": settings.max_seq_len,
                "max_items": settings.max_items,
                "max_body_bytes": settings.max_body_bytes,
                "window": settings.window,
            },
            "batching": {
                "enabled": settings.batching,
                "max_batch": settings.max_batch,
                "max_wait_ms": settings.max_wait_ms,
                "max_queue": settings.max_queue,
                "stats": asdict(batcher.stats),
            },
        }
        return {"object": "list", "data": [info]}

    @app.post("/v1/embeddings", dependencies=[Depends(auth)])
    async def embeddings(req: EmbeddingsRequest) -> dict[str, Any]:
        check_model(req.model)
        seqs = [req.input] if isinstance(req.input, str) else req.input
        check_items(len(seqs), "input")
        hidden = getattr(getattr(net, "cfg", None), "hidden_size", 1024)
        if req.pooling == "none" and sum(len(s) for s in seqs) * hidden > MAX_VALUES:
            raise RequestError(
                f"pooling 'none' would return {sum(len(s) for s in seqs) * hidden:,} numbers "
                f"(limit {MAX_VALUES:,}); send fewer or shorter sequences, or pool them",
                "pooling",
                413,
            )
        vecs = await compute.embeddings(batcher, seqs, req.pooling, settings.max_seq_len)
        data = []
        for i, v in enumerate(vecs):
            if req.encoding_format == "base64":
                emb: Any = base64.b64encode(v.numpy().astype("<f4").tobytes()).decode()
            else:
                emb = v.tolist()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(s) for s in seqs)
        return {
            "object": "list",
            "data": data,
            "model": settings.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post("/v1/logits", dependencies=[Depends(auth)])
    async def logits(req: LogitsRequest) -> dict[str, Any]:
        check_model(req.model)
        if req.mask_separately and len(set(req.mask)) + 1 > settings.max_items:
            raise RequestError(
                f"{len(set(req.mask))} separately masked positions exceed the limit of "
                f"{settings.max_items - 1}",
                "mask",
                413,
            )
        probs = await compute.probabilities(
            batcher, req.sequence, req.mask, req.mask_separately, settings.max_seq_len
        )
        return {
            "object": "logits",
            "model": settings.name,
            "alphabet": compute.NUCLEOTIDES,
            "length": len(req.sequence),
            "masked": sorted(set(req.mask)),
            "probs": probs.tolist(),
        }

    @app.post("/v1/score", dependencies=[Depends(auth)])
    async def score(req: ScoreRequest) -> dict[str, Any]:
        check_model(req.model)
        if (req.variants is None) == (req.windows is None):
            raise RequestError("give exactly one of 'variants' or 'windows'", None)
        if req.variants is not None:
            check_items(len(req.variants), "variants")
            if genome is None:
                raise RequestError(
                    "this server has no genome (start it with --fasta) to score chrom/pos "
                    "variants; send ref/alt 'windows' instead",
                    "variants",
                )
            rows = [v.model_dump() for v in req.variants]
            ids, pos, refs, alts = compute.variant_windows(
                genome, rows, settings.window, settings.check_ref
            )
        else:
            assert req.windows is not None
            check_items(len(req.windows), "windows")
            ids, pos, refs, alts = compute.pair_windows(
                [w.model_dump() for w in req.windows], settings.max_seq_len
            )
        scores = await compute.score(batcher, ids, pos, refs, alts, req.embeddings)
        data = [
            {"index": i, **{k: float(v[i]) for k, v in scores.items()}} for i in range(len(pos))
        ]
        return {"object": "list", "model": settings.name, "data": data}

    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)
    return app
