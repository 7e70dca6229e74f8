"""The embedded API gateway: turns each HTTP request on 127.0.0.1 into the REST API proxy event that
API Gateway sends, runs the same REQUEST authorizer first, then the same API handler."""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from infra.local.console import ConsoleFiles
from infra.local.lambdas import LocalLambdas
from infra.request_models import BODY_REFUSED, body_refused
from infra.spec import (
    AUTHORIZER_CACHE_SECONDS,
    CONSOLE_PATH,
    PUBLIC,
    SPEC,
    PlatformSpec,
    RouteSpec,
    browser_error_headers,
    gateway_problem,
    preflight_headers,
    signed_route_methods,
)

PROBLEM_JSON = "application/problem+json"
logger = logging.getLogger("cityshare.gateway")
STAGE = "local"
API_ID = "cityshare-local"


@dataclass(frozen=True)
class CompiledRoute:
    route: RouteSpec
    pattern: re.Pattern[str]


def path_pattern(path: str) -> re.Pattern[str]:
    """A route's path with its {parameters} as named groups."""
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


def compile_routes(spec: PlatformSpec) -> list[CompiledRoute]:
    return [CompiledRoute(route, path_pattern(route.path)) for route in spec.routes]


class TokenBucket:
    """A request rate limit per key (API Gateway's token-bucket throttling, emulated)."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate, self._burst = rate, burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (float(self._burst), now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens < 1:
                self._state[key] = (tokens, now)
                return False
            self._state[key] = (tokens - 1, now)
            return True


MAX_BODY_BYTES = 10 * 1024 * 1024
CONNECTION_TIMEOUT_SECONDS = 60


class BodyTooLarge(Exception):
    pass


def read_body(request: BaseHTTPRequestHandler) -> bytes:
    """The request's body, by its Content-Length or chunk by chunk (as API Gateway takes either);
    ValueError when neither can be read, BodyTooLarge over API Gateway's 10 MB."""
    if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return _read_chunks(request.rfile)
    lengths = request.headers.get_all("Content-Length") or []
    if len(set(lengths)) > 1 or not all(value.strip().isdigit() for value in lengths):
        raise ValueError("Content-Length must be one whole number of bytes")
    length = int(lengths[0]) if lengths else 0
    if length > MAX_BODY_BYTES:
        raise BodyTooLarge
    body = request.rfile.read(length) if length else b""
    if len(body) < length:
        raise ValueError("The body ended before its Content-Length")
    return body


def _read_chunks(stream: Any) -> bytes:
    body = bytearray()
    while True:
        size_line = stream.readline(1024).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise ValueError("A chunk's size is not hexadecimal") from None
        if size < 0:
            raise ValueError("A chunk's size is negative")
        if len(body) + size > MAX_BODY_BYTES:
            raise BodyTooLarge
        if size == 0:
            while stream.readline(8192).strip():  # trailer fields, up to the blank line
                pass
            return bytes(body)
        chunk = stream.read(size)
        if len(chunk) < size or stream.readline(8).strip():
            raise ValueError("A chunk ended early or without its CRLF")
        body += chunk


def problem_body(status: int, code: str, title: str, detail: str) -> bytes:
    return json.dumps(gateway_problem(status, code, title, detail)).encode()


KEPT_ANSWERS_MAX = 10_000  # authorizer answers kept at once (one per token in use)


class Gateway:
    def __init__(
        self,
        lambdas: LocalLambdas,
        spec: PlatformSpec = SPEC,
        host: str = "127.0.0.1",
        port: int = 0,
        console: ConsoleFiles | None = None,
        browser_origin: str | None = None,
        before_answer: Callable[[], None] | None = None,
    ) -> None:
        self._lambdas = lambdas
        # Called once a request is handled, before it is answered: the stack's state is saved there,
        # so what a caller was told is done survives a crash.
        self._before_answer = before_answer
        self._console = console
        # As the API's CORS in AWS (infra/cloud/api.py): preflights of the signed routes and the
        # gateway's own errors answered for this one origin, when the console is served from another.
        self._browser_origin = browser_origin
        self._preflight_paths = [(path_pattern(path), methods) for path, methods in signed_route_methods(spec.routes).items()]
        self._spec = spec
        self._routes = compile_routes(spec)
        # As in AWS: the stage's throttle before anything runs, each department's (its usage plan) after the authorizer.
        self._stage_limiter = TokenBucket(spec.limits.stage_rate_per_second, spec.limits.stage_burst)
        self._limiter = TokenBucket(spec.limits.rate_per_second, spec.limits.burst)
        self._authorizer_answers: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._authorizer_lock = threading.Lock()
        gateway = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes
            timeout = CONNECTION_TIMEOUT_SECONDS  # a body that never comes, an idle keep-alive: the thread ends

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                """What http.server answers itself (a request line or header it cannot read): problem+json too."""
                _, headers, body = gateway._problem(code, "malformed_request", "The request could not be read", message or "")
                self.close_connection = True
                self.request_version = self.protocol_version  # a status line even when the request's version was unreadable
                self.send_response(code, message)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Connection", "close")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                    self.wfile.write(body)

            def _serve(self) -> None:
                gateway.serve(self)

            def __getattr__(self, name: str) -> Any:
                # Any method (TRACE, QUERY, ...) reaches the route table: a known path answers 405.
                if name.startswith("do_"):
                    return self._serve
                raise AttributeError(name)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet by default
                return

        self.server = ThreadingHTTPServer((host, port), RequestHandler)
        self.server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.serve_forever, name="cityshare-gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- one request
    def serve(self, request: BaseHTTPRequestHandler) -> None:
        try:
            status, headers, body = self._handle(request)
        except Exception:  # the gateway itself never leaks a trace
            logger.exception("gateway failed")
            status, headers, body = self._problem(502, "bad_gateway", "Bad gateway", "The function failed")
        if self._before_answer:
            try:
                self._before_answer()
            except Exception:  # not kept: the caller must not take it as done
                logger.exception("saving the stack's state failed")
                status, headers, body = self._problem(503, "state_not_saved", "Not saved", "The stack could not save its state")
        request.send_response(status)
        for name, value in headers.items():
            if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                request.send_header(name, value)
        request.send_header("Content-Length", str(len(body)))
        if request.close_connection:
            request.send_header("Connection", "close")
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(body)

    def _handle(self, request: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        try:
            raw_body = read_body(request)
        except BodyTooLarge:
            # API Gateway's own payload limit is 10 MB; the API's documented limit is smaller and
            # enforced by the function, which can say so in problem+json.
            request.close_connection = True
            return self._problem(413, "payload_too_large", "Payload too large", "The body exceeds 10 MB")
        except ValueError as unreadable:
            request.close_connection = True  # what follows on the connection cannot be trusted to be a request
            return self._problem(400, "malformed_request", "The request could not be read", str(unreadable))
        split = urlsplit(request.path)
        path = split.path or "/"
        if self._console is not None and (path + "/").startswith(CONSOLE_PATH) and request.command in ("GET", "HEAD"):
            if path + "/" == CONSOLE_PATH:  # /console -> /console/, so the page's relative links resolve
                return 308, {"Location": CONSOLE_PATH}, b""
            return self._console.answer(path, f"http://{request.headers.get('Host', '127.0.0.1')}")
        if self._browser_origin and request.command == "OPTIONS":
            for pattern, methods in self._preflight_paths:
                if pattern.match(unquote(path)):
                    return 204, preflight_headers(self._browser_origin, methods), b""
        matched = self._match(request.command, unquote(path))
        if matched is None:
            return self._problem(404, "route_not_found", "No such route", f"{request.command} {path}")
        route, path_parameters = matched
        event = self._proxy_event(request, route, path, split.query, path_parameters, raw_body)
        if not self._stage_limiter.allow("stage"):
            return self._throttled()
        if route.authorizer == PUBLIC:  # no caller to verify: only the stage's throttle applies
            return self._respond(self._lambdas.invoke(route.function, event))
        try:
            authorization = self._authorize(route.authorizer or self._spec.authorizer, event)
        except Exception as error:
            if str(error) != "Unauthorized":  # anything else is a fault of the authorizer: log it
                logger.exception("authorizer failed")
            return self._problem(401, "unauthenticated", "The caller could not be authenticated", "Unauthorized")
        if not self._limiter.allow(str(authorization["context"]["department_id"])):
            return self._throttled()
        # As API Gateway's request validator, after the authorizer: the route's body model.
        if body_refused(request.command, route.path, request.headers.get("Content-Type"), raw_body):
            return self._problem(400, "invalid_request", BODY_REFUSED, BODY_REFUSED)
        event["requestContext"]["authorizer"] = dict(authorization["context"], principalId=authorization["principalId"])
        return self._respond(self._lambdas.invoke(route.function, event))

    def _authorize(self, authorizer: str, event: dict[str, Any]) -> dict[str, Any]:
        """The authorizer's answer, kept per Authorization header as API Gateway keeps it when the
        authorizer is cached (AUTHORIZER_CACHE_SECONDS); a refusal is never kept."""
        seconds = AUTHORIZER_CACHE_SECONDS.get(authorizer, 0)
        identity = next((v for k, v in (event.get("headers") or {}).items() if k.lower() == "authorization"), None)
        key = (authorizer, identity or "")
        if seconds and identity:
            with self._authorizer_lock:
                kept = self._authorizer_answers.get(key)
            if kept is not None and kept[0] > time.monotonic():
                return kept[1]
        authorization: dict[str, Any] = self._lambdas.invoke(authorizer, self._authorizer_event(event))
        if seconds and identity:
            now = time.monotonic()
            with self._authorizer_lock:
                if len(self._authorizer_answers) >= KEPT_ANSWERS_MAX:  # expired answers go first, then all
                    live = {k: v for k, v in self._authorizer_answers.items() if v[0] > now}
                    self._authorizer_answers = live if len(live) < KEPT_ANSWERS_MAX else {}
                self._authorizer_answers[key] = (now + seconds, authorization)
        return authorization

    @staticmethod
    def _respond(response: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        headers = {k: str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = ", ".join(str(v) for v in values)
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        return int(response["statusCode"]), headers, data

    def _throttled(self) -> tuple[int, dict[str, str], bytes]:
        return self._problem(429, "too_many_requests", "Too many requests", "Slow down", {"Retry-After": "1"})

    def _problem(
        self, status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """An error the gateway answers itself (API Gateway's gateway responses in AWS)."""
        browser = browser_error_headers(self._browser_origin) if self._browser_origin else {}
        return status, {"Content-Type": PROBLEM_JSON, **browser, **(headers or {})}, problem_body(status, code, title, detail)

    def _match(self, method: str, path: str) -> tuple[RouteSpec, dict[str, str]] | None:
        """The route for `method` on `path`; for a known path with another method, that path's route
        (as API Gateway's ANY method does): its function answers 405 with `Allow`."""
        other: tuple[RouteSpec, dict[str, str]] | None = None
        for compiled in self._routes:
            found = compiled.pattern.match(path)
            if not found:
                continue
            if compiled.route.method == method:
                return compiled.route, found.groupdict()
            other = other or (compiled.route, found.groupdict())
        return other

    def _proxy_event(
        self,
        request: BaseHTTPRequestHandler,
        route: RouteSpec,
        path: str,
        query: str,
        path_parameters: dict[str, str],
        raw_body: bytes,
    ) -> dict[str, Any]:
        pairs = parse_qsl(query, keep_blank_values=True)
        multi_query: dict[str, list[str]] = {}
        for name, value in pairs:
            multi_query.setdefault(name, []).append(value)
        multi_headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            multi_headers.setdefault(name, []).append(value)
        try:
            body: str | None = raw_body.decode("utf-8") if raw_body else None
            is_base64 = False
        except UnicodeDecodeError:
            body, is_base64 = base64.b64encode(raw_body).decode(), True
        request_id = str(uuid.uuid4())
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": request.command,
            "headers": {name: values[-1] for name, values in multi_headers.items()},
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {n: v[-1] for n, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": request.command,
                "path": f"/{STAGE}{path}",
                "stage": STAGE,
                "requestId": request_id,
                "accountId": "123456789012",
                "apiId": API_ID,
                "protocol": "HTTP/1.1",
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {"sourceIp": request.client_address[0], "userAgent": request.headers.get("User-Agent", "")},
            },
            "body": body,
            "isBase64Encoded": is_base64,
        }

    @staticmethod
    def _authorizer_event(event: dict[str, Any]) -> dict[str, Any]:
        method_arn = f"arn:aws:execute-api:eu-west-1:123456789012:{API_ID}/{STAGE}/{event['httpMethod']}{event['path']}"
        keys = (
            "resource",
            "path",
            "httpMethod",
            "headers",
            "multiValueHeaders",
            "queryStringParameters",
            "multiValueQueryStringParameters",
            "pathParameters",
            "stageVariables",
            "requestContext",
        )
        return dict({k: event[k] for k in keys}, type="REQUEST", methodArn=method_arn)
