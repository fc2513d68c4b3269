"""Who can use the page of ``stylebridge serve``: the Host and Origin checks, what an address
exposes, and whether the port is free.

The page has no authentication: whoever reaches its port can upload photos, run models and
name checkpoint files of this machine in the encoder field.  :class:`RequestGuard` (an ASGI
middleware in front of every route Gradio adds) refuses:

* a request whose ``Host`` is not a name the server was started for (:func:`host_policy`:
  ``localhost``, ``127.0.0.1``, ``[::1]``, the address it is bound to and the names given
  with ``--allow-host``; bound to every address, ``0.0.0.0`` or ``::``, also any IP address):
  a web page whose name was made to point at this machine (DNS rebinding) gets nothing;
* a state-changing request (an upload, a run: any method but GET, HEAD and OPTIONS, and every
  websocket) whose ``Origin`` header is present and is not the page's own: another site's
  form or ``fetch`` cannot upload or run through a browser that can reach the page.

Every response it lets through carries :data:`SECURITY_HEADERS` (no framing by another page,
against clickjacking; no content-type sniffing), and every one but Gradio's static assets
(:data:`ASSETS`: its scripts, styles, fonts, icons) :data:`NO_STORE` as well: a served file
(an upload, a result showing the face) is not kept by the browser's or a proxy's cache,
whichever of Gradio's routes serves it (``/file=``, ``/gradio_api/file=``,
``/gradio_api/file/``, a stream's segments, and any route a later Gradio adds).

Nothing here imports gradio or a web framework: the middleware speaks plain ASGI.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

#: the names of this machine a browser on it uses (always accepted as Host)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
#: addresses that bind every interface of the machine
WILDCARDS = ("0.0.0.0", "::", "")
#: methods that change nothing (an Origin is not checked on them)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: set on every response (replacing the app's own values of these headers)
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
)
#: set on every response but :data:`ASSETS` too
NO_STORE = ((b"cache-control", b"no-store"),)
#: the path starts of Gradio's static assets (the same for every page and user: cached as
#: Gradio says); every other response is ``no-store``
ASSETS = ("/assets/", "/static/", "/svelte/", "/favicon.ico", "/theme.css",
          "/gradio_api/theme.css", "/robots.txt", "/manifest.json", "/pwa_icon")


def cacheable(path: str, root: str = "") -> bool:
    """Whether the response to ``path`` (below the app's ``root`` path) is a static asset
    that may be cached: no served file, no page state."""
    if root and path.startswith(root.rstrip("/") + "/"):
        path = path[len(root.rstrip("/")):]
    return path.startswith(ASSETS) and ".." not in path

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def host_name(value: str) -> str:
    """The host of a ``Host`` header or a ``--host`` value, lower case, without its port or
    the brackets of an IPv6 address: ``Example.COM:7860`` → ``example.com``, ``[::1]:80`` →
    ``::1``."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    if value.count(":") == 1:  # name:port (an IPv6 address has several colons)
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a ``--host`` value) is reachable from this machine only."""
    name = host_name(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class HostPolicy:
    """The ``Host`` names a server accepts: ``names``, and with ``any_ip`` (bound to every
    address) any IP address as well: DNS rebinding needs a name that the attacker's DNS
    answers, never a bare address.  ``allowed``: the names given with ``--allow-host``, whose
    pages (``Origin``) may also post (a page behind a proxy that rewrites ``Host``)."""

    names: frozenset[str]
    any_ip: bool = False
    allowed: frozenset[str] = frozenset()

    def accepts(self, name: str) -> bool:
        return name in self.names or (self.any_ip and _is_ip(name))

    def describe(self) -> str:
        shown = ", ".join(sorted(self.names - {""}))
        return shown + (" or any IP address of this machine" if self.any_ip else "")


def host_policy(bound: str, allow: Iterable[str] = ()) -> HostPolicy:
    """What a server bound to ``bound`` (``--host``) accepts as ``Host``: this machine's own
    names, ``bound`` itself and the names in ``allow`` (``--allow-host``)."""
    allowed = frozenset(host_name(name) for name in allow if host_name(name))
    name = host_name(bound)
    wildcard = name in WILDCARDS
    names = frozenset(LOCAL_NAMES) | allowed | (frozenset() if wildcard else {name})
    return HostPolicy(names=names, any_ip=wildcard, allowed=allowed)


class RequestGuard:
    """ASGI middleware: refuses (403, one line) a request whose ``Host`` the
    :class:`HostPolicy` does not accept, and a state-changing request or a websocket whose
    ``Origin`` is present and is not the page's own (``scheme://`` + its ``Host``, or a name of
    ``--allow-host``)."""

    def __init__(self, app: Callable[..., Awaitable[None]], policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # lifespan
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        problem = self.problem(scope, headers)
        if problem is None:
            await self.app(scope, receive, send if scope["type"] != "http"
                           else self._with_headers(scope, send))
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect; closing before accepting answers 403
            await send({"type": "websocket.close", "code": 1008, "reason": problem[:120]})
        else:
            body = f"stylebridge serve: {problem}\n".encode()
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                                    (b"content-length", str(len(body)).encode()),
                                    *SECURITY_HEADERS]})
            await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _with_headers(scope: Scope, send: Send) -> Send:
        """``send`` adding :data:`SECURITY_HEADERS` (and but for an asset, :data:`NO_STORE`)
        to the response's start, in place of the app's own values of those headers."""
        path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
        extra = SECURITY_HEADERS + (() if cacheable(path, root) else NO_STORE)
        names = {name for name, _ in extra}

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message.get("type") == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", [])
                        if bytes(k).lower() not in names]
                message = {**message, "headers": [*kept, *extra]}
            await send(message)

        return send_with_headers

    def problem(self, scope: Scope, headers: dict[str, str]) -> str | None:
        """Why the request is refused (one line), or ``None``."""
        host = headers.get("host", "")
        name = host_name(host)
        if not self.policy.accepts(name):
            return (f"refused: this server answers to {self.policy.describe()}, not to host "
                    f"{name or '(none)'!r} (a guard against DNS rebinding); start it with "
                    f"--allow-host {name or 'NAME'} to allow that name")
        origin = headers.get("origin")
        if origin is None or (scope["type"] == "http" and scope.get("method") in SAFE_METHODS):
            return None
        if self._same_origin(origin, host):
            return None
        return (f"refused: a {scope.get('method', 'websocket')} request from another site "
                f"(origin {origin[:100]!r}, not this page's)")

    def _same_origin(self, origin: str, host: str) -> bool:
        try:
            parts = urlsplit(origin)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (a sandboxed frame, a file:// page), another scheme
        if parts.netloc.lower() == host.strip().lower():
            return True
        return host_name(parts.netloc) in self.policy.allowed


def exposure_notice(host: str, port: int) -> str | None:
    """The one line said when the page is served beyond this machine (``None``: loopback)."""
    if is_loopback(host):
        return None
    name = host_name(host)
    who = ("every machine that can reach this one" if name in WILDCARDS
           else f"every machine that can reach {name}")
    return (f"notice: --host {host}: the page has no authentication, and {who} on port "
            f"{port} can use it: upload photos, run models and name checkpoint files of this "
            "machine in the encoder field")


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on ``host:port`` (``already in use``, the system's
    words otherwise), or ``None`` when it can.  Like Gradio, 127.0.0.1 is tried as well."""
    targets = [host_name(host) or "0.0.0.0", "127.0.0.1"]
    for target in dict.fromkeys(targets):
        try:
            infos = socket.getaddrinfo(target, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
        except socket.gaierror as exc:
            return f"cannot resolve {target!r}: {exc.strerror or exc}"
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return "already in use"
                return exc.strerror or str(exc)
    return None


__all__ = ["ASSETS", "LOCAL_NAMES", "NO_STORE", "SECURITY_HEADERS", "HostPolicy", "RequestGuard",
           "cacheable", "exposure_notice", "host_name", "host_policy", "is_loopback",
           "port_problem"]
