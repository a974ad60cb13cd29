"""Token authentication, request size limits and path confinement."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

__all__ = ["BodyLimit", "confine", "require_token", "token_ok"]


def token_ok(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a presented token with the server's."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def request_token(request: Request) -> str | None:
    """The token of a request: ``Authorization: Bearer T`` or ``X-GLMX-Token: T``."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-glmx-token")


def require_token(request: Request) -> None:
    """FastAPI dependency: 401 unless the request carries the server's token."""
    if not token_ok(request_token(request), request.app.state.settings.token):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong token: send 'Authorization: Bearer <token>' "
            "(the server's token file, or GLMX_PLATFORM_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )


class BodyLimit:
    """ASGI middleware: 413 for request bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        seen = 0
        too_big = False

        async def limited() -> Any:
            nonlocal seen, too_big
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # the app sees an empty, final body; whatever it answers is replaced
                    too_big = True
                    return {"type": "http.request", "body": b"", "more_body": False}
            return message

        async def guarded_send(message: Any) -> None:
            if not too_big:
                await send(message)

        try:
            await self.app(scope, limited, guarded_send)
        except Exception:
            if not too_big:
                raise
        if too_big:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = b'{"detail":"request body too large (limit %d bytes)"}' % self.max_bytes
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def confine(root: Path, relative: str, what: str = "path") -> Path:
    """``root / relative`` resolved, or HTTP 400 when ``relative`` is absolute or leaves
    ``root`` (``..``, symlinks)."""
    if not relative or relative.startswith(("/", "\\")) or Path(relative).is_absolute():
        raise HTTPException(400, f"{what} '{relative}' must be relative to its root")
    root = root.resolve()
    target = (root / relative).resolve()
    if target != root and root not in target.parents:
        raise HTTPException(400, f"{what} '{relative}' is outside its root")
    return target
