"""The HTTP side of ``gateway batch``: the OpenAI Files and Batch APIs of a running gateway, one small
synchronous ``httpx`` client, and where it finds the gateway and the key.

Every failure is a ``BatchApiError`` whose message says what to do next: the gateway not running, the
key missing or refused, or the server's own OpenAI error message (``{"error": {"message": ...}}``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import IO, Any
from urllib.parse import quote

import httpx

from infra.settings import Settings

KEY_VARIABLES = ("GATEWAY_API_KEY", "OPENAI_API_KEY")
"""Where the API key comes from when ``--api-key`` is not given, in this order."""
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=5.0)  # a 200 MB batch file on a slow link


class BatchApiError(Exception):
    """A call failed; ``str()`` is the message for the user, ``status`` the HTTP status (0: no answer)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def resolve_base_url(flag: str | None, env: Mapping[str, str] | None = None) -> str:
    """``--url``, else ``GATEWAY_URL``, else the local gateway on ``Settings().port``; without a trailing
    ``/`` or ``/v1`` (an OpenAI SDK style base URL works too)."""
    env = os.environ if env is None else env
    url = flag or env.get("GATEWAY_URL") or f"http://127.0.0.1:{Settings().port}"
    url = url.rstrip("/")
    return url.removesuffix("/v1")


def resolve_api_key(flag: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """``--api-key``, else the first of ``KEY_VARIABLES`` that is set; ``None`` when none is."""
    env = os.environ if env is None else env
    return flag or next((env[name] for name in KEY_VARIABLES if env.get(name)), None)


def error_message(response: httpx.Response) -> str:
    """The server's OpenAI error message, else the start of whatever it answered."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str) and message:
            return message
    text = response.text.strip()[:200]
    return f"HTTP {response.status_code}" + (f": {text}" if text else "")


class BatchClient:
    """The Files and Batch API calls ``gateway batch`` makes, against one gateway with one key."""

    def __init__(self, base_url: str, api_key: str | None, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url
        self._has_key = api_key is not None
        headers = {"authorization": f"Bearer {api_key}"} if api_key is not None else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=TIMEOUT, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upload(self, filename: str, stream: IO[bytes]) -> dict[str, Any]:
        """``POST /v1/files`` (multipart, ``purpose=batch``), the stream sent as it is read."""
        files = {"file": (filename, stream, "application/jsonl")}
        return self._json("POST", "/v1/files", files=files, data={"purpose": "batch"}, timeout=UPLOAD_TIMEOUT)

    def create_batch(self, input_file_id: str, endpoint: str, metadata: dict[str, str] | None) -> dict[str, Any]:
        body: dict[str, Any] = {"input_file_id": input_file_id, "endpoint": endpoint, "completion_window": "24h"}
        if metadata:
            body["metadata"] = metadata
        return self._json("POST", "/v1/batches", json=body)

    def get_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/batches/{quote(batch_id, safe='')}")

    def list_batches(self, limit: int, after: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if after is not None:
            params["after"] = after
        return self._json("GET", "/v1/batches", params=params)

    def cancel_batch(self, batch_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/batches/{quote(batch_id, safe='')}/cancel")

    @contextmanager
    def file_content(self, file_id: str) -> Iterator[Iterator[bytes]]:
        """``GET /v1/files/{id}/content`` as chunks, read while the response is open."""
        with self._call(lambda: self._http.stream("GET", f"/v1/files/{quote(file_id, safe='')}/content")) as response:
            yield response.iter_bytes()

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        with self._call(lambda: self._http.stream(method, path, **kwargs)) as response:
            response.read()
            try:
                body = response.json()
            except ValueError:
                raise BatchApiError(f"the gateway at {self.base_url} answered {method} {path} with something "
                                    "that is not JSON: is GATEWAY_URL / --url the gateway?",
                                    response.status_code) from None
        if not isinstance(body, dict):
            raise BatchApiError(f"the gateway answered {method} {path} with unexpected JSON", response.status_code)
        return body

    @contextmanager
    def _call(self, open_stream: Callable[[], AbstractContextManager[httpx.Response]]) -> Iterator[httpx.Response]:
        """Open a response, turning transport failures and error statuses into a ``BatchApiError``."""
        try:
            with open_stream() as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._refused(response)
                yield response
        except httpx.ConnectError:
            raise BatchApiError(f"cannot reach the gateway at {self.base_url}: start it with `make run`, or "
                                "point GATEWAY_URL (or --url) at a running one") from None
        except httpx.TimeoutException:
            raise BatchApiError(f"the gateway at {self.base_url} did not answer in time: check it is healthy "
                                "(its logs are under .gateway/logs/) and try again") from None
        except httpx.TransportError as exc:
            raise BatchApiError(f"talking to the gateway at {self.base_url} failed: {exc}") from None

    def _refused(self, response: httpx.Response) -> BatchApiError:
        message = error_message(response)
        if response.status_code == 401:
            if not self._has_key:
                message = (f"no API key given ({message}): set GATEWAY_API_KEY (or OPENAI_API_KEY, or pass "
                           "--api-key) to a gateway key, e.g. the demo key sk-gateway-demo")
            else:
                message = (f"the gateway refused the API key ({message}): set GATEWAY_API_KEY (or OPENAI_API_KEY, "
                           "or --api-key) to a key in the gateway's config")
        return BatchApiError(message, response.status_code)
