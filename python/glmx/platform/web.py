"""The dashboard: one HTML page, small vanilla JS modules and a hand-written SVG chart, all
served by ``glmx server`` from the package (no Node at run time, nothing from a CDN).

Every response carries a strict Content-Security-Policy (scripts and styles only from this
origin, no inline code, no framing). The page holds the token in ``sessionStorage`` and sends
it in a header; there are no cookies, so there is nothing for CSRF to ride on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse

from glmx.platform.security import confine, require_token

router = APIRouter(include_in_schema=False)
WEB_DIR = Path(__file__).with_name("web")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


class SecurityHeaders:
    """ASGI middleware: CSP, no sniffing, no referrer on every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not str(scope.get("path", "")).startswith("/docs"):
                    headers.append((b"content-security-policy", CSP.encode()))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    """The dashboard's single page (the views are rendered by ``/static/app.js``)."""
    return HTMLResponse((WEB_DIR / "index.html").read_text(encoding="utf-8"))


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    """The dashboard's scripts and styles."""
    path = confine(WEB_DIR / "static", name, "file")
    if not path.is_file():
        raise HTTPException(404, f"no file {name}")
    return FileResponse(
        path,
        media_type=_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/api/v1/auth/check", dependencies=[Depends(require_token)], tags=["meta"])
def auth_check(request: Request) -> dict[str, bool]:
    """200 with the right token, 401 otherwise (the dashboard's login)."""
    return {"ok": True}
