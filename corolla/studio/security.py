"""The studio's guards: who may talk to it, which folders it may read, which uploads it keeps.

A local web app that trains on your files is a target for the browser attacks that hit Gradio and
Jupyter: a page on another site posting to 127.0.0.1 (cross-site requests), a DNS name that
resolves to 127.0.0.1 (DNS rebinding: the Host header gives it away), `../` and symlinks out of
the allowed folder, and hostile uploads. Everything here is checked on the server; the page only
carries the tokens.

Example:
    app.add_middleware(Guard, allowed_hosts={"127.0.0.1:8600", "localhost:8600"}, token=None)
    folder = confine("/data", "/data/photos/../photos")   # -> Path("/data/photos")
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import json
import pathlib
import secrets
import urllib.parse

from corolla.errors import CorollaError

SESSION_COOKIE = "corolla_studio_session"
TOKEN_COOKIE = "corolla_studio_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_CLASS_NAME = 64


class Refused(CorollaError):
    """A request or value the studio will not act on; the message says why and what would do."""

    def __init__(self, message: str, *, status: int = 400):
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or "localhost"."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


LOOPBACK_NAMES = {"127.0.0.1", "localhost", "[::1]"}
WILDCARD_HOSTS = {"0.0.0.0", "::", ""}  # every address of the machine


def allowed_hosts_for(host: str, port: int) -> set[str]:
    """The Host header values a browser sends for this studio (a rebinding domain is none of them).

    Bound to every address (0.0.0.0, ::), the studio answers to loopback and to this machine's
    own names and addresses, as another machine on the network reaches it.
    """
    if is_loopback(host):
        names = LOOPBACK_NAMES
    elif host in WILDCARD_HOSTS:
        names = LOOPBACK_NAMES | machine_names()
    else:
        names = {_bracketed(host)}
    names = {name.lower() for name in names}
    return {f"{name}:{port}" for name in names} | ({*names} if port == 80 else set())


def machine_names() -> set[str]:
    """This machine's host names and the addresses they (and its default route) resolve to, IPv6 in brackets."""
    import socket

    names = {socket.gethostname()}
    with contextlib.suppress(OSError):
        names.add(socket.getfqdn())
    addresses = set()
    for name in list(names):
        with contextlib.suppress(OSError):
            addresses |= {info[4][0] for info in socket.getaddrinfo(name, None)}
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):  # documentation addresses: nothing is sent
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.connect((probe, 9))
            addresses.add(udp.getsockname()[0])
    return {name for name in names if name} | {_bracketed(address.split("%")[0]) for address in addresses}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


class Sessions:
    """CSRF tokens bound to a session cookie: HMAC(secret, session id), so nothing is stored."""

    def __init__(self, secret: bytes | None = None):
        self.secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, session: str) -> str:
        return hmac.new(self.secret, session.encode(), hashlib.sha256).hexdigest()

    def valid(self, session: str | None, token: str | None) -> bool:
        return bool(session and token) and hmac.compare_digest(self.csrf_token(session), token)


class Guard:
    """ASGI middleware: Host and Origin checks, the access token, and CSRF on state changes.

    - Host must be one of `allowed_hosts` (DNS rebinding).
    - An Origin header, when present, must be this studio's own (cross-site requests, WebSockets).
    - With `token` (required off loopback) every request carries it once as `?token=`, which
      sets a cookie, or as `Authorization: Bearer`.
    - POST/PUT/PATCH/DELETE need `X-CSRF-Token` matching the session cookie.
    """

    def __init__(self, app, *, allowed_hosts: set[str], sessions: Sessions, token: str | None = None):
        self.app, self.allowed_hosts, self.sessions, self.token = app, allowed_hosts, sessions, token

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        try:
            self._check(scope, headers)
        except Refused as error:
            return await _refuse(send, error.status, str(error))
        return await self.app(scope, receive, send)

    def _check(self, scope, headers: dict[str, str]) -> None:
        host = headers.get("host", "").lower()  # host names are case-insensitive
        if host not in self.allowed_hosts:
            raise Refused(
                f"Host {host!r} is not this studio's address (a DNS-rebinding page would send its own name). "
                f"Open the studio at one of: {', '.join(sorted(self.allowed_hosts))}.", status=403,
            )
        origin = headers.get("origin")
        if origin is not None and urllib.parse.urlsplit(origin.lower()).netloc not in self.allowed_hosts:
            raise Refused(f"Cross-site request refused: Origin {origin!r} is not this studio.", status=403)
        cookies = _cookies(headers.get("cookie", ""))
        if self.token is not None and not self._has_token(scope, headers, cookies):
            raise Refused("This studio needs its access token: open the URL it printed (…/?token=…) or send `Authorization: Bearer TOKEN`.", status=401)
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            if not self.sessions.valid(cookies.get(SESSION_COOKIE), headers.get(CSRF_HEADER)):
                raise Refused(
                    "Missing or wrong X-CSRF-Token header: state-changing requests must come from the studio's own page "
                    "(reload it to get a fresh token).", status=403,
                )

    def _has_token(self, scope, headers, cookies) -> bool:
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        offered = [*query.get("token", []), cookies.get(TOKEN_COOKIE, "")]
        bearer = headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            offered.append(bearer[7:].strip())
        return any(value and hmac.compare_digest(value, self.token) for value in offered)


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().split("=", 1) for part in header.split(";") if "=" in part)
    return {name: value for name, value in pairs}


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"x-content-type-options", b"nosniff")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def confine(root: str | pathlib.Path | None, path: str | pathlib.Path) -> pathlib.Path:
    """`path` resolved (links followed), if it lies inside `root`; else Refused.

    A sibling sharing the root's prefix (/data-secret next to /data) is outside: the test is on
    path components, after resolving, so neither `..` nor a symlink can leave the root.
    """
    if root is None:
        raise Refused("Reading folders on the studio's machine is off: start the studio with --root DIR to allow folders under DIR.", status=403)
    root = pathlib.Path(root).resolve(strict=True)
    candidate = pathlib.Path(path).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise Refused(f"{str(path)!r} is outside the folder the studio may read ({root}). Received: path={str(path)!r}", status=403)
    if not resolved.exists():
        raise Refused(f"{str(path)!r} does not exist under {root}. Received: path={str(path)!r}", status=404)
    return resolved


def check_class_name(name: str, existing: list[str]) -> str:
    """The name, stripped, if it can be a class (a folder name and a label); else Refused."""
    stripped = (name or "").strip()
    problem = None
    if not stripped:
        problem = "a class name cannot be empty"
    elif stripped.startswith("."):
        problem = "a class name cannot start with '.' (hidden folders are not read as classes)"
    elif any(char in stripped for char in '/\\:*?"<>|') or stripped in ("..", "."):
        problem = "a class name cannot hold / \\ : * ? \" < > | (it becomes a folder name)"
    elif any(ord(char) < 32 for char in stripped):
        problem = "a class name cannot hold control characters"
    elif len(stripped) > MAX_CLASS_NAME:
        problem = f"a class name is at most {MAX_CLASS_NAME} characters"
    elif stripped.casefold() in {other.casefold() for other in existing}:
        problem = f"there is already a class {stripped!r}"
    if problem:
        raise Refused(f"Cannot use this class name: {problem}. Received: name={name!r}")
    return stripped
