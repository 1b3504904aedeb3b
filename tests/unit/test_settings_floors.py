"""What production refuses beyond a missing setting: secrets below the floor the README states,
and CORS origins that are not `scheme://host[:port]` (they are copied into the page's CSP)."""

from __future__ import annotations

import re
import secrets
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.settings import PROJECT_ROOT, ConfigError, Settings

STRONG = "strong-8d1e5c0a9b7f4e2d6c3a1b0f9e8d7c6b5a4f3e2d"
METRICS = "metrics-a5f437d0e41f56f7610db59cfd6d480287b30030f2906e3c"
# Characters a secret may hold: printable, no space (from_env strips the ends).
SECRET_CHARACTERS = string.ascii_letters + string.digits + string.punctuation


def production(**env: str) -> Settings:
    return Settings.from_env(
        {
            "APP_ENV": "production",
            "DATABASE_URL": "postgres://h/db",
            "JWT_SECRET": STRONG,
            "METRICS_TOKEN": METRICS,
            **env,
        }
    )


def readme_floor() -> tuple[int, int]:
    """The floor as the README's settings table states it for JWT_SECRET."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `JWT_SECRET` |"))
    stated = re.search(r"at least (\d+) characters and (\d+) bits of estimated entropy", row)
    assert stated is not None, row
    return int(stated[1]), int(stated[2])


@pytest.mark.parametrize("name", ["JWT_SECRET", "METRICS_TOKEN"])
@given(data=st.data())
def test_the_floor_is_exactly_the_readmes(name: str, data: st.DataObject) -> None:
    """At the floor a secret is taken; one character shorter, or one bit poorer, it is not."""
    length, bits = readme_floor()
    # `length` different characters, each once: log2(length) bits each, far above the floor.
    distinct = data.draw(
        st.lists(
            st.sampled_from(SECRET_CHARACTERS), min_size=length, max_size=length, unique=True
        ).map("".join)
    )
    assert production(**{name: distinct})
    with pytest.raises(ConfigError, match=f"^{name} must be a random string of at least"):
        production(**{name: distinct[:-1]})

    # Exactly `bits`: 2**k characters, each used length / 2**k times (k bits each), is the
    # floor when length * k == bits; one character swapped for another falls below it.
    per_character = bits // length
    symbols = distinct[: 2**per_character]
    at_floor = "".join(data.draw(st.permutations(symbols * (length // len(symbols)))))
    assert production(**{name: at_floor})
    position = data.draw(st.integers(0, length - 1))
    other = next(symbol for symbol in symbols if symbol != at_floor[position])
    uneven = at_floor[:position] + other + at_floor[position + 1 :]
    with pytest.raises(ConfigError, match=f"^{name} must be a random string"):
        production(**{name: uneven})


@given(st.sampled_from(SECRET_CHARACTERS), st.integers(32, 200))
def test_a_repeated_character_is_refused_at_any_length(character: str, length: int) -> None:
    with pytest.raises(ConfigError, match="bits of estimated entropy"):
        production(JWT_SECRET=character * length)


def test_generated_secrets_pass_and_the_issues_examples_do_not() -> None:
    for _ in range(50):
        assert production(JWT_SECRET=secrets.token_hex(32), METRICS_TOKEN=secrets.token_hex(32))
        assert production(JWT_SECRET=secrets.token_urlsafe(32))
    for weak in ({"JWT_SECRET": "a" * 36}, {"METRICS_TOKEN": "x"}, {"JWT_SECRET": "changeme"}):
        with pytest.raises(ConfigError, match="must be a random string"):
            production(**weak)
    # Outside production a weak secret is the developer's business.
    assert Settings.from_env({"APP_ENV": "test", "JWT_SECRET": "a" * 36, "METRICS_TOKEN": "x"})


LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)
HOST = st.one_of(
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
ORIGIN = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}{'' if port is None else f':{port}'}",
    st.sampled_from(["http", "https"]),
    HOST,
    st.none() | st.integers(1, 65535),
)


@given(st.lists(ORIGIN, min_size=1, max_size=3))
def test_origins_are_taken_and_drawn_into_the_page_as_written(origins: list[str]) -> None:
    configured = production(CORS_ORIGINS=",".join(origins))
    assert configured.cors_origins == tuple(origins)


@given(
    ORIGIN,
    st.sampled_from([";", " x", "'", '"', "*", "/x", "?q", "#f", "user@", "\\", "<", "%20"]),
    st.data(),
)
def test_anything_but_scheme_host_port_is_refused(
    origin: str, extra: str, data: st.DataObject
) -> None:
    """`https://a.example;script-src_*` would add a directive to the page's CSP header."""
    after_scheme = origin.index("://") + 3
    position = data.draw(st.integers(after_scheme, len(origin)))
    tainted = origin[:position] + extra + origin[position:]
    with pytest.raises(ConfigError, match=r"^CORS_ORIGINS must list origins, scheme://host"):
        production(CORS_ORIGINS=tainted)


@pytest.mark.parametrize(
    "origin",
    ["https://a.example;script-src_*", "app.example", "ftp://a.example", "https://a.example:0"],
)
def test_the_issues_origin_and_others_are_refused(origin: str) -> None:
    with pytest.raises(ConfigError, match="CORS_ORIGINS must list origins"):
        production(CORS_ORIGINS=origin)


def test_origins_are_compared_as_browsers_send_them() -> None:
    assert production(CORS_ORIGINS="HTTPS://App.Example:8443/").cors_origins == (
        "https://app.example:8443",
    )
