"""Who may reach the receivers: bearer-token checks, TLS contexts, and the start-up warning for a
receiver exposed beyond loopback without a token (standard library only).

The token is compared in constant time (:func:`hmac.compare_digest`); TLS files are read and
checked at start-up, so a wrong path or a key that does not match its certificate stops kpiloop
with a :class:`~kpiloop.errors.ConfigError` naming the key, before anything listens.
"""

from __future__ import annotations

import hmac
import ipaddress
import ssl
from pathlib import Path

from kpiloop.errors import ConfigError

UNAUTHENTICATED = "unauthenticated"
"""The ``reason`` label of requests refused for a missing or wrong token."""
_SCHEME = "bearer"


def bearer_token_ok(authorization: str | bytes | None, token: str) -> bool:
    """True when an ``Authorization`` value is ``Bearer <token>`` (scheme case-insensitive).

    >>> bearer_token_ok("Bearer s3cret-token", "s3cret-token"), bearer_token_ok("Bearer other", "s3cret-token")
    (True, False)
    >>> bearer_token_ok(None, "s3cret-token"), bearer_token_ok(b"bearer s3cret-token", "s3cret-token")
    (False, True)
    """
    if authorization is None:
        return False
    raw = authorization if isinstance(authorization, bytes) else authorization.encode("utf-8", "replace")
    scheme, _, presented = raw.strip().partition(b" ")
    if scheme.lower() != _SCHEME.encode():
        return False
    return hmac.compare_digest(presented.strip(), token.encode())


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses; False for wildcards and anything else.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::", "10.1.2.3", "example.com")]
    [True, True, True, False, False, False, False]
    """
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it counts as exposed


def exposure_warnings(receiver: str, host: str, port: int, authenticated: bool, tls: bool) -> list[str]:
    """What to warn about at start-up for a receiver listening on ``host:port``: none on loopback;
    off loopback, the missing token, or (with a token) the missing TLS."""
    if is_loopback(host):
        return []
    where = f"{receiver} listens on {host}:{port}, beyond loopback"
    if not authenticated:
        return [
            f"{where}, without a bearer token: anyone who can reach it can send telemetry. Set "
            "receivers.otlp.auth.bearer_token_file (or $KPILOOP_BEARER_TOKEN), or bind 127.0.0.1"
        ]
    if not tls:
        return [f"{where} without TLS: the bearer token and the telemetry cross the network in clear text"]
    return []


def read_pem(path: Path, key: str) -> bytes:
    """A PEM file's bytes; ConfigError naming the config ``key`` when it cannot be read or is not PEM."""
    try:
        data = path.expanduser().read_bytes()
    except OSError as error:
        raise ConfigError(f"{key}: cannot read {path}: {error.strerror}") from None
    if b"-----BEGIN " not in data:
        raise ConfigError(f"{key}: {path} is not a PEM file")
    return data


def server_ssl_context(cert_file: Path, key_file: Path, client_ca_file: Path | None, key: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``client_ca_file``, clients must present a certificate it signed.
    ``key`` is the config path of the ``tls`` block, for error messages."""
    read_pem(cert_file, f"{key}.cert_file")
    read_pem(key_file, f"{key}.key_file")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file.expanduser(), key_file.expanduser())
    except ssl.SSLError as error:
        raise ConfigError(f"{key}: cert_file and key_file do not form a usable pair: {error.reason}") from None
    if client_ca_file is not None:
        read_pem(client_ca_file, f"{key}.client_ca_file")
        try:
            context.load_verify_locations(cafile=client_ca_file.expanduser())
        except ssl.SSLError as error:
            raise ConfigError(f"{key}.client_ca_file: unusable CA bundle: {error.reason}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
