"""A client for the OCI distribution API: resolve, fetch manifests and stream blobs.

This is the registry half of a client-side pull (containerd's daemon does not
talk to registries; its Go client does). It parses references the way Docker
does, authenticates with anonymous or bearer tokens from ``WWW-Authenticate``
challenges (or basic credentials from ``~/.docker/config.json``), verifies every
digest it receives and maps every HTTP or socket failure onto
:mod:`mcpmanager.errors`.

Hand-written on ``urllib.request`` because the project takes no HTTP library as
a runtime dependency; urllib gives redirects, proxies and TLS for free.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from http.client import HTTPException, HTTPResponse
from typing import Any

import attrs

from mcpmanager.errors import (
    DeadlineExceeded,
    DigestMismatch,
    FailedPrecondition,
    InvalidContent,
    MCPManagerError,
    NotFound,
    NotSupported,
    RegistryAuthError,
    Unavailable,
)

from .._log import get_logger
from ..oci import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    Descriptor,
    check_digest,
)
from ..refs import DOCKER_HUB, DOCKER_HUB_API, Reference

__all__ = [
    "DEFAULT_TIMEOUT",
    "Credentials",
    "DigestMismatch",
    "InvalidContent",
    "RegistryAuthError",
    "RegistryClient",
    "load_docker_credentials",
]

log = get_logger("mcpmanager.containerd.pull")

DEFAULT_TIMEOUT = 30.0
"""Seconds any single registry request may stay silent (connect or read)."""

_ACCEPT = ", ".join([MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_LIST, MEDIA_OCI_MANIFEST, MEDIA_OCI_INDEX])
_ACCEPT_ALL = _ACCEPT + ", */*"

_MAX_MANIFEST = 8 << 20
_CHUNK = 1 << 20
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})
_CHALLENGE_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


# -------------------------------------------------------------- credentials


@attrs.frozen
class Credentials:
    """A user name and password (or token) for basic auth or token requests."""

    username: str
    password: str = attrs.field(repr=False)


def load_docker_credentials(registry: str) -> Credentials | None:
    """Basic credentials for ``registry`` from ``$DOCKER_CONFIG`` or ``~/.docker/config.json``.

    Only ``auths`` entries with ``auth`` (base64 ``user:pass``) or
    ``username``/``password`` are read; credential helpers are not run.
    """
    directory = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    try:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return None
    auths = config.get("auths") if isinstance(config, dict) else None
    if not isinstance(auths, dict):
        return None
    wanted = _registry_aliases(registry)
    for key, entry in auths.items():
        if _auth_key_host(key) in wanted and isinstance(entry, dict):
            creds = _entry_credentials(entry)
            if creds is not None:
                return creds
    return None


def _registry_aliases(registry: str) -> set[str]:
    if registry in (DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"):
        return {DOCKER_HUB, DOCKER_HUB_API, "index.docker.io"}
    return {registry}


def _auth_key_host(key: str) -> str:
    if "://" in key:
        key = urllib.parse.urlsplit(key).netloc
    return key.split("/", 1)[0]


def _entry_credentials(entry: Mapping[str, Any]) -> Credentials | None:
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, sep, password = base64.b64decode(encoded).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        return Credentials(user, password) if sep else None
    name, secret = entry.get("username"), entry.get("password")
    if isinstance(name, str) and isinstance(secret, str) and name:
        return Credentials(name, secret)
    return None


# ------------------------------------------------------------------- errors


def _http_error(status: int, what: str, host: str, body: str = "") -> MCPManagerError:
    detail = f"{what}: registry {host} answered HTTP {status}"
    if body:
        detail += f" ({body[:200]})"
    if status in (401, 403):
        return RegistryAuthError(detail)
    if status == 404:
        return NotFound(detail)
    if status == 408:
        return DeadlineExceeded(detail)
    if status == 429 or status >= 500:
        return Unavailable(detail)
    return FailedPrecondition(detail)


def _transport_error(exc: BaseException, what: str, host: str) -> MCPManagerError:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return DeadlineExceeded(f"{what}: registry {host} timed out")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return FailedPrecondition(f"{what}: TLS certificate of registry {host} rejected: {reason}")
    return Unavailable(f"{what}: cannot reach registry {host}: {reason}")


def _error_body(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(2048).decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return ""
    finally:
        exc.close()


# --------------------------------------------------------------------- auth


def _parse_challenges(headers: Iterable[str]) -> dict[str, dict[str, str]]:
    """``WWW-Authenticate`` values -> {scheme (lower case): {param: value}}."""
    found: dict[str, dict[str, str]] = {}
    for header in headers:
        scheme, _, rest = header.strip().partition(" ")
        params = {
            m.group(1).lower(): (m.group(2) or "").replace('\\"', '"')
            if m.group(2) is not None
            else m.group(3)
            for m in _CHALLENGE_PARAM.finditer(rest)
        }
        found[scheme.lower()] = params
    return found


@attrs.define
class _Token:
    value: str
    expires: float


class _Authorizer:
    """Remembers how each host wants to be authenticated and caches tokens per scope."""

    def __init__(
        self,
        credentials: Callable[[str], Credentials | None],
        opener: Callable[[urllib.request.Request, str], HTTPResponse],
    ) -> None:
        self._credentials = credentials
        self._open = opener
        self._lock = threading.Lock()
        self._challenges: dict[str, dict[str, dict[str, str]]] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}

    def header(self, ref: Reference, scope: str) -> str | None:
        """The Authorization header to send, or None for anonymous."""
        with self._lock:
            challenges = self._challenges.get(ref.host)
            token = self._tokens.get((ref.host, scope))
        if not challenges:
            return None
        if "bearer" in challenges:
            if token is None or token.expires <= time.monotonic():
                token = self._fetch_token(ref, scope, challenges["bearer"])
            return f"Bearer {token.value}"
        if "basic" in challenges:
            creds = self._credentials(ref.registry)
            if creds is None:
                raise RegistryAuthError(f"registry {ref.host} wants basic auth for {ref.name}")
            return _basic(creds)
        return None

    def challenged(self, ref: Reference, scope: str, headers: list[str]) -> bool:
        """Record a 401's challenges (dropping a rejected token); False if none we speak."""
        challenges = _parse_challenges(headers)
        if "bearer" not in challenges and "basic" not in challenges:
            return False
        with self._lock:
            self._tokens.pop((ref.host, scope), None)
            self._challenges[ref.host] = challenges
        return True

    def _fetch_token(self, ref: Reference, scope: str, params: Mapping[str, str]) -> _Token:
        realm = params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise RegistryAuthError(f"registry {ref.host} sent a bad token realm {realm!r}")
        query = {"scope": scope}
        if params.get("service"):
            query["service"] = params["service"]
        joiner = "&" if "?" in realm else "?"
        request = urllib.request.Request(realm + joiner + urllib.parse.urlencode(query))
        creds = self._credentials(ref.registry)
        if creds is not None:
            request.add_unredirected_header("Authorization", _basic(creds))
        token = self._read_token(request, ref)
        with self._lock:
            self._tokens[(ref.host, scope)] = token
        return token

    def _read_token(self, request: urllib.request.Request, ref: Reference) -> _Token:
        what = f"getting a token for {ref.name}"
        host = urllib.parse.urlsplit(request.full_url).netloc
        with self._open(request, what) as resp:
            try:
                data = json.loads(resp.read(1 << 20))
            except ValueError as exc:
                raise RegistryAuthError(f"{what}: {host} sent a malformed token") from exc
            except (OSError, HTTPException) as exc:
                raise _transport_error(exc, what, host) from exc
        if not isinstance(data, dict):
            raise RegistryAuthError(f"{what}: {host} sent a malformed token")
        value = data.get("token") or data.get("access_token")
        if not isinstance(value, str) or not value:
            raise RegistryAuthError(f"{what}: {host} sent no token")
        expires_in = data.get("expires_in")
        lifetime = max(expires_in if isinstance(expires_in, int) else 60, 60)
        log.debug("got a registry token for %s (valid %ss)", ref.name, lifetime)
        return _Token(value=value, expires=time.monotonic() + lifetime - 10)


def _basic(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


# ------------------------------------------------------------------ client


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:
        return host.partition(":")[0]
    return host


class RegistryClient:
    """Talks to OCI/Docker registries; safe to share between threads.

    ``plain_http_registries`` lists hosts (``host`` or ``host:port``) reached
    over plain HTTP; loopback hosts always are. ``timeout`` bounds each
    connect and each read. ``credentials`` maps a registry name to
    credentials (default: :func:`load_docker_credentials`).
    """

    def __init__(
        self,
        plain_http_registries: Iterable[str] = (),
        *,
        timeout: float = DEFAULT_TIMEOUT,
        credentials: Callable[[str], Credentials | None] | None = None,
    ) -> None:
        self._plain = frozenset(plain_http_registries)
        self._timeout = timeout
        self._proxied = urllib.request.build_opener()
        self._direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._auth = _Authorizer(credentials or load_docker_credentials, self._open)

    # -- public API

    def is_local(self, ref: Reference) -> bool:
        """True when ``ref``'s registry is on this host (loopback), sharing its CPUs."""
        return _hostname(ref.host) in _LOOPBACK

    def base_url(self, ref: Reference) -> str:
        """``http(s)://host/v2/<repository>`` for ``ref``."""
        host = ref.host
        plain = host in self._plain or _hostname(host) in self._plain
        scheme = "http" if plain or _hostname(host) in _LOOPBACK else "https"
        return f"{scheme}://{host}/v2/{ref.repository}"

    def resolve(self, ref: Reference) -> Descriptor:
        """Descriptor of the manifest or index ``ref`` names (HEAD, GET if needed)."""
        what = f"resolving {ref.name}"
        url = f"{self.base_url(ref)}/manifests/{ref.object}"
        with self._request("HEAD", url, ref, what, {"Accept": _ACCEPT_ALL}) as resp:
            media_type = _media_type(resp.headers.get("Content-Type"))
            digest = ref.digest or resp.headers.get("Docker-Content-Digest", "")
            length = resp.headers.get("Content-Length", "")
        if digest and length.isdigit() and media_type:
            return Descriptor(media_type=media_type, digest=digest, size=int(length))
        log.debug("HEAD %s gave no digest or type; fetching the manifest", url)
        body, media_type = self._get_manifest(url, ref, what)
        digest = ref.digest or "sha256:" + hashlib.sha256(body).hexdigest()
        _verify(body, Descriptor(media_type, digest, len(body)), what)
        return Descriptor(media_type=media_type, digest=digest, size=len(body))

    def fetch_manifest(self, ref: Reference, desc: Descriptor) -> bytes:
        """The raw bytes of the manifest or index ``desc``, digest- and size-checked."""
        what = f"fetching manifest {desc.digest} of {ref.name}"
        if desc.size > _MAX_MANIFEST:
            raise InvalidContent(f"{what}: {desc.size} bytes is too large for a manifest")
        url = f"{self.base_url(ref)}/manifests/{desc.digest}"
        body, _ = self._get_manifest(url, ref, what)
        _verify(body, desc, what)
        return body

    def iter_blob(
        self, ref: Reference, desc: Descriptor, chunk_size: int = _CHUNK, *, verify: bool = True
    ) -> Iterator[bytes]:
        """Stream blob ``desc`` in chunks, hashing as it goes.

        After the last chunk raises :class:`DigestMismatch` if size or digest
        is wrong, so a consumer must run the iterator to its end before
        trusting (committing) what it received. ``verify=False`` checks the
        size only, for a consumer that verifies the digest itself (containerd's
        content store does at commit), so the bytes are not hashed twice.
        """
        what = f"fetching blob {desc.digest} of {ref.name}"
        algorithm, _ = check_digest(desc.digest, what)
        url = f"{self.base_url(ref)}/blobs/{desc.digest}"
        hasher = hashlib.new(algorithm) if verify else None
        received = 0
        with self._request("GET", url, ref, what, {}) as resp:
            while True:
                chunk = self._read(resp, chunk_size, ref, what)
                if not chunk:
                    break
                received += len(chunk)
                if received > desc.size:
                    raise DigestMismatch(f"{what}: more than the expected {desc.size} bytes")
                if hasher is not None:
                    hasher.update(chunk)
                yield chunk
        if hasher is None:
            if received != desc.size:
                raise DigestMismatch(f"{what}: got {received} bytes, expected {desc.size}")
            return
        _check_hash(f"{algorithm}:{hasher.hexdigest()}", received, desc, what)

    # -- plumbing

    def _get_manifest(self, url: str, ref: Reference, what: str) -> tuple[bytes, str]:
        with self._request("GET", url, ref, what, {"Accept": _ACCEPT_ALL}) as resp:
            body = self._read(resp, _MAX_MANIFEST + 1, ref, what)
            header_type = _media_type(resp.headers.get("Content-Type"))
        if len(body) > _MAX_MANIFEST:
            raise InvalidContent(f"{what}: manifest larger than {_MAX_MANIFEST} bytes")
        return body, _body_media_type(body, header_type, what)

    def _read(self, resp: HTTPResponse, size: int, ref: Reference, what: str) -> bytes:
        try:
            return resp.read(size)
        except (OSError, ValueError, HTTPException) as exc:
            raise _transport_error(exc, what, ref.host) from exc

    def _request(
        self, method: str, url: str, ref: Reference, what: str, headers: Mapping[str, str]
    ) -> HTTPResponse:
        scope = f"repository:{ref.repository}:pull"
        for attempt in range(2):
            request = urllib.request.Request(url, method=method, headers=dict(headers))
            auth = self._auth.header(ref, scope)
            if auth:
                # Unredirected: blob redirects go to CDNs that reject foreign auth.
                request.add_unredirected_header("Authorization", auth)
            try:
                return self._send(request, what)
            except urllib.error.HTTPError as exc:
                if exc.code != 401:
                    raise _http_error(exc.code, what, ref.host, _error_body(exc)) from None
                challenges = exc.headers.get_all("WWW-Authenticate") or []
                _error_body(exc)
                if attempt or not self._auth.challenged(ref, scope, challenges):
                    raise _http_error(401, what, ref.host) from None
        raise _http_error(401, what, ref.host)

    def _send(self, request: urllib.request.Request, what: str) -> HTTPResponse:
        host = urllib.parse.urlsplit(request.full_url).netloc
        opener = self._direct if _hostname(host) in _LOOPBACK else self._proxied
        log.debug("%s %s", request.get_method(), request.full_url)
        try:
            resp: HTTPResponse = opener.open(request, timeout=self._timeout)
        except urllib.error.HTTPError:
            raise
        except (urllib.error.URLError, OSError, ValueError, HTTPException) as exc:
            raise _transport_error(exc, what, host) from exc
        return resp

    def _open(self, request: urllib.request.Request, what: str) -> HTTPResponse:
        host = urllib.parse.urlsplit(request.full_url).netloc
        try:
            return self._send(request, what)
        except urllib.error.HTTPError as exc:
            raise _http_error(exc.code, what, host, _error_body(exc)) from None


def _media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip()


def _body_media_type(body: bytes, header_type: str, what: str) -> str:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidContent(f"{what}: manifest is not JSON") from exc
    declared = data.get("mediaType") if isinstance(data, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    if header_type and header_type not in ("application/json", "text/plain"):
        return header_type
    if isinstance(data, dict) and data.get("schemaVersion") == 1:
        raise NotSupported(f"{what}: Docker schema 1 manifests are not supported")
    if isinstance(data, dict) and "manifests" in data:
        return MEDIA_OCI_INDEX
    return MEDIA_OCI_MANIFEST


def _verify(body: bytes, desc: Descriptor, what: str) -> None:
    algorithm, _ = check_digest(desc.digest, what)
    actual = f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"
    _check_hash(actual, len(body), desc, what)


def _check_hash(actual: str, received: int, desc: Descriptor, what: str) -> None:
    if received != desc.size:
        raise DigestMismatch(f"{what}: got {received} bytes, expected {desc.size}")
    if actual != desc.digest:
        raise DigestMismatch(f"{what}: content hashes to {actual}, expected {desc.digest}")
