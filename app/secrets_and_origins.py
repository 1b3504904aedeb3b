"""What production takes as a secret, and what is an origin: the checks `app.settings` applies.

A secret is judged by its length and by its estimated entropy, since a long secret can still be
one character typed 36 times; an origin must be `scheme://host[:port]` and nothing else, since
the origins are copied into the page's Content-Security-Policy header.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter

# The floor of a production secret (JWT_SECRET, METRICS_TOKEN); the README states it.
MIN_SECRET_LENGTH = 32
MIN_SECRET_BITS = 128
_PLACEHOLDER_SECRETS = frozenset({"secret", "changeme", "change-me", "your-secret-key", "dev"})
# An origin as browsers send it: scheme://host[:port], nothing else. The values are copied into
# the page's CSP header, where a `;` or a space would add directives of the operator's typing.
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>\[[0-9a-f:.]+\]"
    r"|[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)


# How the floor is worded in the refusals.
SECRET_FLOOR = (
    f"a random string of at least {MIN_SECRET_LENGTH} characters and {MIN_SECRET_BITS} bits "
    "of estimated entropy (openssl rand -hex 32)"
)


def estimated_bits(secret: str) -> float:
    """The secret's length times the Shannon entropy of its characters, from how often each
    occurs: 36 times `a` is 0 bits, 64 hex digits about 250. It sees a lack of variety, what a
    typed or repeated secret has, not a pattern; a generated secret passes by far."""
    length = len(secret)
    return -sum(count * math.log2(count / length) for count in Counter(secret).values())


def weak_secret(secret: str) -> bool:
    """Below the production floor: too short, a placeholder, or too little entropy."""
    return (
        len(secret) < MIN_SECRET_LENGTH
        or secret.lower() in _PLACEHOLDER_SECRETS
        or estimated_bits(secret) < MIN_SECRET_BITS
    )


def is_origin(origin: str) -> bool:
    """`scheme://host[:port]`, http or https, as browsers send an origin."""
    match = _ORIGIN.fullmatch(origin.lower())
    if match is None:
        return False
    port, host = match["port"], match["host"]
    if port is not None and not 1 <= int(port) <= 65535:
        return False
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
    return True
