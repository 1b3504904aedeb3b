"""Signing in on the page: a name in development, a token from the host application elsewhere;
the token kept for the tab alone unless the user asks, and never in a URL (the `start_site`
fixture checks every request of every test for that)."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

from jose import jws, jwt
from playwright.async_api import Frame, Page, expect
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from tests.browser.conftest import SiteFactory
from tests.support import running

# The host application's page: the chat in an iframe, signed in once it says it is ready.
HOST_PAGE = """<!doctype html>
<link rel="icon" href="data:,">
<script>
  addEventListener("message", (event) => {
    if (event.origin !== "%(chat)s" || event.data.type !== "todo-chat:ready") return;
    event.source.postMessage({type: "todo-chat:token", token: "%(token)s"}, "%(chat)s");
  });
</script>
<iframe id="chat" title="Chat" src="%(chat)s/" width="1200" height="700"></iframe>
"""


async def storage(page: Page | Frame) -> dict[str, list[str]]:
    keys: dict[str, list[str]] = await page.evaluate(
        "() => ({local: Object.keys(localStorage), session: Object.keys(sessionStorage)})"
    )
    return keys


async def test_the_host_application_signs_the_user_in(start_site: SiteFactory) -> None:
    host_page: dict[str, str] = {}
    host_app = Starlette(routes=[Route("/", lambda _: HTMLResponse(host_page["html"]))])
    # The host on a port of its own (another origin), on loopback as the service is: Chromium
    # refuses a page from a public address that frames a loopback one.
    async with running(host_app) as host:
        # Tokens from an identity provider whose user id is not `sub` (the seed's own: `id`).
        site = await start_site(app_env="production", cors_origins=(host,), jwt_user_claim="id")
        alone = await site.page()
        await alone.goto(site.url)
        await expect(alone.get_by_text("Waiting for the application")).to_be_visible()
        await expect(alone.get_by_label("Your name")).to_be_hidden()

        user_id = f"host-{uuid.uuid4().hex[:8]}"
        claims = {"sub": "provider|8e1f", "id": user_id, "exp": int(time.time()) + 3600}
        token = jwt.encode(claims, site.settings.jwt_secret or "", algorithm="HS256")
        chat = site.url.rstrip("/")
        host_page["html"] = HOST_PAGE % {"chat": chat, "token": token}
        page = await site.page()
        await page.goto(f"{host}/")
        frame = page.frame_locator("#chat")
        await expect(frame.locator("#user-name")).to_have_text(user_id)
        await frame.get_by_label("Message", exact=True).fill("add buy milk")
        await frame.get_by_label("Message", exact=True).press("Enter")
        await expect(frame.locator("#tasks .title")).to_have_text(["Buy milk"])
        chat_frame = next(f for f in page.frames if f.url.startswith(chat))
        kept = await storage(chat_frame)
        assert kept["local"] == [] and "todo-chat.token" in kept["session"]


async def test_the_token_lasts_as_long_as_the_tab_unless_the_user_asks(
    start_site: SiteFactory,
) -> None:
    site = await start_site()
    page = await site.page()
    await page.goto(site.url)
    name = f"tab-{uuid.uuid4().hex[:8]}"
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Your name").press("Enter")
    await expect(page.locator("#user-name")).to_have_text(name)
    assert await storage(page) == {"local": [], "session": ["todo-chat.token"]}
    await page.reload()
    await expect(page.locator("#user-name")).to_have_text(name)

    other_tab = await site.page()
    await other_tab.goto(site.url)
    await expect(other_tab.get_by_label("Your name")).to_be_visible()
    await other_tab.get_by_label("Your name").fill(name)
    await other_tab.get_by_label("Remember me on this device").check()
    await other_tab.get_by_role("button", name="Sign in").click()
    await expect(other_tab.locator("#user-name")).to_have_text(name)
    assert (await storage(other_tab))["local"] == ["todo-chat.token"]

    third_tab = await site.page()
    await third_tab.goto(site.url)
    await expect(third_tab.locator("#user-name")).to_have_text(name)
    await third_tab.get_by_role("button", name="Sign out").click()
    await expect(third_tab.get_by_label("Your name")).to_be_visible()
    assert await storage(third_tab) == {"local": [], "session": []}


# User claims as an identity provider might write them, in JSON (what the page and the service
# each parse for themselves): strings, whole numbers past what a JavaScript number holds exactly,
# numbers that are not whole (1.0 is a float to Python), and other types.
USER_CLAIMS = [
    '"alice"',
    '"Jos\\u00e9"',
    '"José"',
    '"12"',
    '""',
    "0",
    "-0",
    "42",
    "-7",
    "9007199254740993",
    "12345678901234567890123",
    "1.0",
    "1e3",
    "1.5",
    "-2.5e-3",
    "true",
    "false",
    "null",
    "[]",
    '["alice"]',
    "{}",
    '{"id": "nested"}',
]


async def test_the_page_reads_the_user_claim_as_the_service_does(start_site: SiteFactory) -> None:
    """Each token the page would sign in with is one the service answers for that same user,
    and each the page refuses, the service refuses too (a numeric claim was accepted by the
    page, then every call answered 401)."""
    site = await start_site(app_env="production", jwt_user_claim="id")
    page = await site.page()
    await page.goto(site.url)
    await expect(page.get_by_text("Waiting for the application")).to_be_visible()
    exp = int(time.time()) + 3600
    payloads = [f'{{"sub": "s", "exp": {exp}, "id": {claim}}}' for claim in USER_CLAIMS]
    payloads.append(f'{{"sub": "s", "exp": {exp}}}')  # no user claim at all
    for payload in payloads:
        token = jws.sign(payload.encode(), site.settings.jwt_secret or "", algorithm="HS256")
        read = await page.evaluate(
            """async (token) => {
              const api = await import("/static/api.js");
              return [api.userOf(token), api.tokenProblem(token)];
            }""",
            token,
        )
        page_user, problem = read
        answer = await site.live.client.get(
            f"/api/{quote(page_user or 'nobody', safe='')}/tasks",
            headers={"Authorization": f"Bearer {token}"},
        )
        if page_user:
            assert problem is None, payload
            assert answer.status_code == 200, (payload, page_user, answer.text)
        else:
            assert problem is not None, payload
            assert answer.status_code == 401, (payload, answer.text)
            # The same words on both sides, but for the page's "That token" for "The token".
            said = answer.json()["error"]["message"]
            assert problem.removeprefix("That token") == said.removeprefix("The token"), payload


async def test_the_host_signs_in_a_user_whose_id_is_a_number(start_site: SiteFactory) -> None:
    """A provider that numbers its users (past 2^53 here): the page and the service agree on
    the id's digits, and the user's calls work; a number that is not whole is refused on the
    page with words that say why."""
    host_page: dict[str, str] = {}
    host_app = Starlette(routes=[Route("/", lambda _: HTMLResponse(host_page["html"]))])
    async with running(host_app) as host:
        site = await start_site(app_env="production", cors_origins=(host,), jwt_user_claim="id")
        chat = site.url.rstrip("/")
        secret, exp = site.settings.jwt_secret or "", int(time.time()) + 3600
        user_id = str(2**64 + int(uuid.uuid4().int % 10**6))
        numeric = f'{{"sub": "p|1", "exp": {exp}, "id": {user_id}}}'
        host_page["html"] = HOST_PAGE % {
            "chat": chat,
            "token": jws.sign(numeric.encode(), secret, algorithm="HS256"),
        }
        page = await site.page()
        await page.goto(f"{host}/")
        frame = page.frame_locator("#chat")
        await expect(frame.locator("#user-name")).to_have_text(user_id)
        await frame.get_by_label("Message", exact=True).fill("add buy milk")
        await frame.get_by_label("Message", exact=True).press("Enter")
        await expect(frame.locator("#tasks .title")).to_have_text(["Buy milk"])

        fractional = f'{{"sub": "p|1", "exp": {exp}, "id": 7.5}}'
        host_page["html"] = HOST_PAGE % {
            "chat": chat,
            "token": jws.sign(fractional.encode(), secret, algorithm="HS256"),
        }
        refused = await site.page()
        await refused.goto(f"{host}/")
        await expect(refused.frame_locator("#chat").locator("#sign-in-error")).to_have_text(
            'That token\'s "id" claim must be a user id: a string or a whole number.'
        )


async def test_a_token_posted_from_an_origin_outside_cors_origins_is_ignored(
    start_site: SiteFactory,
) -> None:
    """The page in a frame whose parent is not a listed origin (the service's own: the only
    other origin its frame-ancestors lets frame it), the parent posting a good token: the page
    stays waiting, keeps nothing, calls nothing."""
    site = await start_site(app_env="production", cors_origins=("http://127.0.0.1:9",))
    parent = await site.page()
    await parent.goto(site.url)
    await parent.evaluate(
        """() => new Promise((loaded) => {
          const frame = document.createElement("iframe");
          frame.id = "chat";
          frame.addEventListener("load", loaded, { once: true });
          frame.src = "/";
          document.body.append(frame);
        })"""
    )
    chat = next(frame for frame in parent.frames if frame is not parent.main_frame)
    await expect(chat.get_by_text("Waiting for the application")).to_be_visible()
    # Told once the page's own listener, registered first, has had the message.
    await chat.evaluate(
        """() => { window.delivered = new Promise((told) =>
          addEventListener("message", (event) => told(event.origin), { once: true })); }"""
    )
    token = site.user(f"outsider-{uuid.uuid4().hex[:8]}").token
    await parent.evaluate(
        """(token) => document.getElementById("chat").contentWindow.postMessage(
          { type: "todo-chat:token", token }, "*")""",
        token,
    )
    origin = await chat.evaluate("() => window.delivered")
    assert origin == site.url.rstrip("/"), "the message came, from the service's own origin"
    # The page's handler has run (it is synchronous): what it did is there to see at once.
    assert await chat.locator("#sign-in-host").is_visible()
    assert await chat.locator("#app").is_hidden()
    assert await storage(chat) == {"local": [], "session": []}
    assert [r.url for r in site.requests if "/api/" in r.url] == []
