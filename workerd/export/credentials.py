"""What an export takes for a credential, and URLs split from theirs: a manifest may
carry a credential only inside a Secret.

The test is by name and shape, never by value: a variable or query parameter whose
name says PASSWORD, SECRET, TOKEN, KEY, DSN (and the like), and a URL with a user or
password in it. Erring toward a Secret costs a `kubectl edit` at worst.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

_SECRET_NAME = re.compile(r"PASS|PWD|SECRET|TOKEN|KEY|DSN|CREDENTIAL|AUTH|SIGNATURE", re.IGNORECASE)


def secret_name(name: str) -> bool:
    return _SECRET_NAME.search(name) is not None


@dataclass
class SplitURL:
    """A URL without its userinfo and secret-looking query parameters, and those apart."""

    url: str
    username: str = ""
    password: str = ""
    params: dict[str, str] = field(default_factory=dict)


def split_url(text: str) -> SplitURL:
    parts = urlsplit(text)
    if not parts.scheme or ("@" not in parts.netloc and not parts.query):
        return SplitURL(text)
    userinfo, at, host = parts.netloc.rpartition("@")
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = {k: v for k, v in query if secret_name(k)}
    kept = urlencode([(k, v) for k, v in query if not secret_name(k)]) if params else parts.query
    user, _, password = userinfo.partition(":")
    return SplitURL(urlunsplit(parts._replace(netloc=host if at else parts.netloc, query=kept)),
                    unquote(user), unquote(password), params)


def has_credentials(text: str) -> bool:
    """A URL with a user, a password or a secret-looking query parameter."""
    split = split_url(text)
    return bool(split.username or split.password or split.params)


def loopback(text: str) -> str | None:
    """`host:port` of a URL whose host is this box (in a pod: the pod itself), else None."""
    parts = urlsplit(text)
    host = parts.hostname or ""
    try:
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if not local:
        return None
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host
