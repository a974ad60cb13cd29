"""A small synchronous client of ``glmx serve`` (the ``glmx client`` commands use it)."""

from __future__ import annotations

import os
from typing import Any

from glmx.errors import GlmxError


class ServeError(GlmxError):
    """The server answered with an error (``status`` and its one-line message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"server answered {status}: {message}")
        self.status = status


class Client:
    """Talks to a ``glmx serve`` server.

    Args:
        url: base URL, e.g. ``http://127.0.0.1:8010``.
        token: bearer token (default: ``$GLMX_SERVE_TOKEN``).
        timeout: seconds per request.
    """

    def __init__(
        self, url: str = "http://127.0.0.1:8010", token: str | None = None, timeout: float = 120
    ) -> None:
        import httpx

        token = token if token is not None else os.environ.get("GLMX_SERVE_TOKEN") or None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)
        self.url = url
        self._limit: int | None = None

    def close(self) -> None:
        """Closes the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        try:
            resp = self._http.request(method, path, json=body)
        except httpx.HTTPError as err:
            raise GlmxError(f"cannot reach {self.url}{path}: {err}") from None
        if resp.status_code >= 400:
            try:
                msg = resp.json()["error"]["message"]
            except Exception:  # noqa: BLE001 - not our JSON error shape
                msg = resp.text[:200]
            raise ServeError(resp.status_code, msg)
        return resp.json()

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``."""
        return self._call("GET", "/v1/models")

    def embeddings(self, sequences: str | list[str], pooling: str = "mean") -> list[list[float]]:
        """Embeddings of ``sequences`` (``POST /v1/embeddings``), in input order."""
        out = self._call("POST", "/v1/embeddings", {"input": sequences, "pooling": pooling})
        return [d["embedding"] for d in sorted(out["data"], key=lambda d: d["index"])]

    def logits(
        self, sequence: str, mask: list[int] | None = None, mask_separately: bool = False
    ) -> dict[str, Any]:
        """A/C/G/T probabilities per position (``POST /v1/logits``)."""
        body = {"sequence": sequence, "mask": mask or [], "mask_separately": mask_separately}
        return self._call("POST", "/v1/logits", body)

    def score(
        self,
        variants: list[dict[str, Any]] | None = None,
        windows: list[dict[str, str]] | None = None,
        embeddings: bool = True,
    ) -> list[dict[str, float]]:
        """Variant scores (``POST /v1/score``): ``variants`` as chrom/pos/ref/alt rows, or
        ref/alt ``windows``; one dict of scores per item, in order."""
        key, items = ("variants", variants) if variants is not None else ("windows", windows)
        if items is None:
            raise ValueError("give variants or windows")
        if key == "variants":
            items = [
                {
                    k: (int(v[k]) if k == "pos" else str(v[k]))
                    for k in ("chrom", "pos", "ref", "alt")
                }
                for v in items
            ]
        step = self._max_items()
        res: list[dict[str, float]] = []
        # requests of at most the server's item limit, in order
        for lo in range(0, len(items), step):
            body = {key: items[lo : lo + step], "embeddings": embeddings}
            out = self._call("POST", "/v1/score", body)
            res += [
                {k: v for k, v in d.items() if k != "index"}
                for d in sorted(out["data"], key=lambda d: d["index"])
            ]
        return res

    def _max_items(self) -> int:
        if self._limit is None:
            self._limit = int(self.models()["data"][0]["limits"]["max_items"])
        return self._limit
