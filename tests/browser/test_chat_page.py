"""The chat page in headless Chromium, against the real service and database.

The offline model is paced (`OFFLINE_TOKEN_DELAY_MS`) so that an answer takes a few seconds:
long enough to look at it while it streams, reload or stop it. Nothing waits for a time: every
step waits for something the page shows (Playwright's `expect` and `wait_for_function`).
"""

from __future__ import annotations

import itertools
import os
import uuid
from pathlib import Path
from typing import Any

import httpx2  # the HTTP client of the openai package, whose errors are built on it
import openai
from agents.testing import ScriptedModel
from playwright.async_api import Page, expect

from app.agent.intent import next_step, understand
from app.agent.offline import OfflineModel
from tests.browser.conftest import Site, SiteFactory
from tests.cutting_proxy import Cut, CuttingProxy
from tests.support import PlainSql

SCREENSHOT = Path(__file__).parents[2] / "docs" / "chat-page.png"
# The offline model's answer to "hello": 35 tokens of help text.
GREETING = next_step(understand("hello"), []).reply or ""


async def sign_in(site: Site, name: str = "ada", *, url: str | None = None) -> tuple[Page, str]:
    """A new tab, signed in through the development name field (the page loaded from `url`,
    a proxy's, when given)."""
    user_id = f"{name}-{uuid.uuid4().hex[:8]}"
    page = await site.page()
    await page.goto(url or site.url)
    await page.get_by_label("Your name").fill(user_id)
    await page.get_by_label("Your name").press("Enter")
    await expect(page.locator("#user-name")).to_have_text(user_id)
    return page, user_id


async def send(page: Page, message: str) -> None:
    await page.get_by_label("Message", exact=True).fill(message)
    await page.get_by_label("Message", exact=True).press("Enter")


def answers(page: Page) -> Any:
    return page.locator(".message.assistant")


async def finished(page: Page, status: str = "complete", count: int | None = None) -> str:
    """Wait for the last answer to end with `status`; its text."""
    last = answers(page).last
    await expect(last).to_have_attribute("data-status", status)
    if count is not None:
        await expect(answers(page)).to_have_count(count)
    text: str = await last.locator(".content").inner_text()
    return text


async def text_samples(page: Page, count: int) -> list[str]:
    """The last answer's text, each time it has grown, `count` times while it is streaming."""
    samples: list[str] = []
    for _ in range(count):
        handle = await page.wait_for_function(
            """(length) => {
                const answer = [...document.querySelectorAll('.message.assistant')].pop();
                if (!answer || answer.dataset.status) return null;
                const text = answer.querySelector('.content').textContent;
                return text.length > length ? text : null;
            }""",
            arg=len(samples[-1]) if samples else 0,
        )
        samples.append(await handle.json_value())
    return samples


async def stored_messages(site: Site, user_id: str) -> list[dict[str, Any]]:
    user = site.user(user_id)
    conversations = (await user.get("/conversations")).json()["conversations"]
    assert len(conversations) == 1
    response = await user.get(f"/conversations/{conversations[0]['id']}/messages")
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def test_the_answer_streams_with_thinking_tool_calls_and_the_task_list(
    start_site: SiteFactory,
) -> None:
    site = await start_site(token_delay_ms=60)
    page, user_id = await sign_in(site)

    await send(page, "add buy milk and call mom")
    # Both calls in one model response (parallel tool calls): one line of thinking for both.
    await expect(page.locator(".thinking")).to_have_text(
        ['Adding "Buy milk" and "Call mom" to the list.']
    )
    tool_calls = page.locator(".tool-call")
    await expect(tool_calls).to_have_count(2)
    await expect(page.locator("#tasks .title")).to_have_text(["Buy milk", "Call mom"])
    await finished(page)
    first = tool_calls.first
    await expect(first.locator(".arguments")).not_to_be_visible()
    await first.locator("summary").click()
    await expect(first.locator(".arguments")).to_be_visible()
    await expect(first.locator(".arguments")).to_contain_text('"title": "Buy milk"')
    await expect(first.locator(".result")).to_contain_text('"completed": false')

    await send(page, "hello")
    samples = await text_samples(page, 4)
    # Read out as it streams: the answer is in a live region.
    log = page.get_by_role("log", name="Messages")
    await expect(log).to_have_attribute("aria-live", "polite")
    await expect(log.locator(".message.assistant")).to_have_count(2)
    if os.environ.get("UPDATE_SCREENSHOT"):
        await page.screenshot(path=SCREENSHOT)
    final = await finished(page, count=2)
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(samples))
    assert len(samples[-1]) < len(final)
    assert final == GREETING
    assert [m["content"] for m in await stored_messages(site, user_id)][-1] == final
    # Read with the standard framing, as the page asks for it (a bare fetch would get the seed's).
    posts = [r for r in site.requests if r.url.endswith("/chat/stream")]
    assert [r.headers["accept"] for r in posts] == ["text/event-stream"] * 2


async def test_a_reload_in_the_middle_of_an_answer_resumes_it_once(
    start_site: SiteFactory,
) -> None:
    site = await start_site(token_delay_ms=100)
    page, user_id = await sign_in(site)
    await send(page, "hello")
    before = await text_samples(page, 2)

    async with page.expect_response(
        lambda response: response.request.resource_type == "eventsource"
    ) as resumed:
        await page.reload()
    assert (await resumed.value).status == 200  # the conversation's stream, while it was active
    assert "/conversations/" in (await resumed.value).url

    final = await finished(page, count=1)
    assert final.startswith(before[-1])
    await expect(page.locator(".message.user")).to_have_count(1)
    stored = await stored_messages(site, user_id)
    assert [(m["role"], m["status"]) for m in stored] == [
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert stored[1]["content"] == final
    assert final == GREETING

    await page.reload()  # now from the stored messages alone
    assert await finished(page, count=1) == final


async def test_a_connection_cut_in_the_middle_of_an_answer_is_followed_to_its_end_once(
    start_site: SiteFactory,
) -> None:
    site = await start_site(token_delay_ms=40)
    site.expect_console_error(r"net::ERR_\w+ \(\S+/chat/stream\)$")  # the cut, on purpose
    port = int(site.url.rstrip("/").rsplit(":", 1)[1])
    # The network fails inside the fifth text event of the answer's POST.
    cut = Cut(b'"type":"text"', occurrence=5, offset=3)
    async with CuttingProxy(port, cut) as proxy:
        page, user_id = await sign_in(site, "cut", url=proxy.base_url)
        await send(page, "hello")
        final = await finished(page, count=1)
        assert proxy.cut_made.is_set()
        # Closed before the proxy, which cuts whatever is in flight as it closes (the page
        # reloading its conversations after the answer, say): a cut this test did not make.
        await page.close()
    assert final == GREETING
    followed = [r.url for r in site.requests if r.resource_type == "eventsource"]
    assert len(followed) == 1  # the run's events, after the last one the page had
    assert "/runs/" in followed[0] and "last_event_id=" in followed[0]
    assert (await stored_messages(site, user_id))[-1]["content"] == final


async def test_a_send_whose_answer_never_came_back_is_sent_again_and_answered_once(
    start_site: SiteFactory,
) -> None:
    """The network fails inside the answer's headers: the page cannot know whether its message
    arrived, sends it again with the same Idempotency-Key, and the service joins the first
    send's run: one answer, one run."""
    site = await start_site(token_delay_ms=20)
    site.expect_console_error(r"net::ERR_\w+ \(\S+/chat/stream\)$")  # the cut, on purpose
    port = int(site.url.rstrip("/").rsplit(":", 1)[1])
    cut = Cut(b"content-type: text/event-stream", offset=4)  # its headers, before any event
    async with CuttingProxy(port, cut) as proxy:
        page, user_id = await sign_in(site, "resend", url=proxy.base_url)
        await send(page, "hello")
        final = await finished(page, count=1)
        assert proxy.cut_made.is_set()
        sends = [r for r in site.requests if r.method == "POST" and r.url.endswith("/chat/stream")]
        keys = {await send.header_value("idempotency-key") for send in sends}
        # Closed before the proxy, which cuts whatever is in flight as it closes (the page
        # reloading its conversations after the answer, say): a cut this test did not make.
        await page.close()
    assert final == GREETING
    assert len(sends) == 2, "sent once, then once again"
    assert len(keys) == 1 and None not in keys
    stored = await stored_messages(site, user_id)
    assert [m["role"] for m in stored] == ["user", "assistant"], "one run, not two"


async def test_stop_cancels_the_answer_and_it_is_stored_as_cancelled(
    start_site: SiteFactory,
) -> None:
    site = await start_site(token_delay_ms=150)
    page, user_id = await sign_in(site)
    await send(page, "hello")
    await text_samples(page, 2)
    await page.get_by_role("button", name="Stop").click()

    partial = await finished(page, "cancelled")
    await expect(answers(page).last.locator(".status")).to_have_text("Stopped")
    await expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    stored = await stored_messages(site, user_id)
    assert (stored[-1]["status"], stored[-1]["content"]) == ("cancelled", partial)
    assert partial and GREETING.startswith(partial) and partial != GREETING


async def test_two_tabs_on_one_conversation_both_see_the_answer_and_a_409_offers_a_choice(
    start_site: SiteFactory,
) -> None:
    site = await start_site(token_delay_ms=80)
    site.expect_console_error(r"status of 409 \(Conflict\) \(\S+/chat/stream\)$")  # its 409
    first, user_id = await sign_in(site)
    await send(first, "add buy milk")
    await finished(first)

    second = await site.page()  # a tab of its own, signed in as the same user
    token = site.user(user_id).token
    await second.goto(site.url)
    await second.evaluate("t => sessionStorage.setItem('todo-chat.token', t)", token)
    await second.reload()
    await second.locator("#conversations .open").first.click()
    await finished(second, count=1)

    await send(first, "hello")
    await text_samples(first, 1)
    await send(second, "add eggs")  # while the first tab's answer is going
    notice = second.locator("#notice")
    await expect(notice).to_contain_text("still being written")
    await expect(second.get_by_role("button", name="Follow it")).to_be_focused()
    await expect(second.get_by_label("Message", exact=True)).to_have_value("add eggs")
    await second.get_by_role("button", name="Follow it").click()
    in_first, in_second = await finished(first, count=2), await finished(second, count=2)
    assert in_first == in_second == GREETING

    # The other choice: stop the answer in progress and send this tab's message instead.
    await send(first, "hello")
    await text_samples(first, 1)
    await send(second, "add eggs")
    await second.get_by_role("button", name="Stop it and send mine").click()
    await finished(first, "cancelled", count=3)
    await expect(second.locator("#tasks .title")).to_have_text(["Buy milk", "Eggs"])
    await finished(second, count=3)
    stored = await stored_messages(site, user_id)
    assert [m["status"] for m in stored if m["role"] == "assistant"] == [
        "complete",
        "complete",
        "cancelled",
        "complete",
    ]


class _UnreachableOnce(OfflineModel):
    """The offline model behind a provider that refuses the first connection."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            request = httpx2.Request("POST", "https://model.invalid/v1/responses")
            raise openai.APIConnectionError(request=request)
        async for event in super().stream_response(*args, **kwargs):
            yield event


async def test_a_retryable_error_offers_a_retry_that_works(start_site: SiteFactory) -> None:
    site = await start_site(model=_UnreachableOnce())
    page, _ = await sign_in(site)
    await send(page, "add buy milk")
    error = answers(page).last.get_by_role("alert")
    await expect(error).to_have_text(
        "The assistant can't be reached right now. Please try again shortly."
    )
    await answers(page).last.get_by_role("button", name="Retry").click()
    await finished(page, count=2)
    await expect(page.locator("#tasks .title")).to_have_text(["Buy milk"])

    broken = await start_site(model=ScriptedModel([ValueError("the agent itself failed")]))
    page, _ = await sign_in(broken)
    await send(page, "add buy milk")
    await expect(answers(page).last.get_by_role("alert")).to_be_visible()
    await expect(answers(page).last.get_by_role("button", name="Retry")).to_have_count(0)


async def test_conversations_can_be_switched_started_and_deleted(start_site: SiteFactory) -> None:
    site = await start_site()
    page, user_id = await sign_in(site)
    await send(page, "add buy milk")
    await finished(page)
    await page.get_by_role("button", name="New conversation").click()
    await expect(page.locator(".message")).to_have_count(0)
    await send(page, "hello")
    await finished(page)
    conversations = page.locator("#conversations .open")
    await expect(conversations).to_have_count(2)
    await expect(conversations.first).to_have_attribute("aria-current", "page")

    await conversations.nth(1).click()
    await expect(page.locator(".message.user")).to_have_text(["You: add buy milk"])
    await expect(conversations.nth(1)).to_have_attribute("aria-current", "page")
    await page.locator("#conversations .delete").nth(1).click()
    await expect(conversations).to_have_count(1)
    await expect(page.locator(".message")).to_have_count(0)
    await expect(page.locator("#conversation-title")).to_have_text("New conversation")
    remaining = (await site.user(user_id).get("/conversations")).json()["conversations"]
    assert [c["title"] for c in remaining] == [await conversations.first.inner_text()]


async def test_long_lists_are_shown_whole_older_pages_on_demand(
    start_site: SiteFactory, db: PlainSql
) -> None:
    """More than a page of each list: every task (read page after page); the most recent
    conversations and a conversation's last messages, the rest a button away."""
    site = await start_site()
    page, user_id = await sign_in(site)
    await db.execute(
        "INSERT INTO tasks (user_id, title) SELECT :u, 'errand ' || lpad(n::text, 4, '0')"
        " FROM generate_series(0, 1000) AS n",
        u=user_id,
    )
    await db.execute(
        "INSERT INTO conversations (user_id, title, updated_at)"
        " SELECT :u, 'chat ' || lpad(n::text, 2, '0'), now() - (52 - n) * interval '1 minute'"
        " FROM generate_series(0, 51) AS n",
        u=user_id,
    )
    await db.execute(
        # The last an answer: a conversation that ends with the user's message has a run
        # going, or one that has just ended, and the page reads it again to see which.
        "INSERT INTO messages (conversation_id, role, content)"
        " SELECT c.id, CASE WHEN n < 200 THEN 'user' ELSE 'assistant' END,"
        " 'note ' || lpad(n::text, 3, '0')"
        " FROM conversations c, generate_series(0, 200) AS n"
        " WHERE c.user_id = :u AND c.title = 'chat 51' ORDER BY n",
        u=user_id,
    )
    await page.reload()
    tasks = page.locator("#tasks .title")
    await expect(tasks).to_have_count(1001)
    await expect(tasks.first).to_have_text("errand 0000")
    await expect(tasks.last).to_have_text("errand 1000")

    conversations = page.locator("#conversations .open")
    await expect(conversations).to_have_count(50)
    older = page.get_by_role("button", name="Show older conversations")
    await older.click()
    await expect(conversations).to_have_count(52)
    await expect(conversations.last).to_have_text("chat 00")
    await expect(older).to_be_hidden()
    await expect(conversations.nth(50)).to_be_focused()

    await conversations.first.click()
    notes = page.locator(".message.user")
    await expect(page.locator(".message")).to_have_count(200)
    await expect(notes.first).to_have_text("You: note 001")
    earlier = page.get_by_role("button", name="Show earlier messages")
    await earlier.click()
    await expect(page.locator(".message")).to_have_count(201)
    await expect(notes.first).to_have_text("You: note 000")
    await expect(notes.last).to_have_text("You: note 199")
    await expect(earlier).to_be_hidden()
    await conversations.nth(1).click()
    await expect(earlier).to_be_hidden()


async def test_everything_can_be_done_with_the_keyboard(start_site: SiteFactory) -> None:
    site = await start_site()
    page = await site.page()
    user_id = f"kim-{uuid.uuid4().hex[:8]}"
    await page.goto(site.url)
    await expect(page.get_by_label("Your name")).to_be_focused()
    await page.keyboard.type(user_id)
    await page.keyboard.press("Enter")
    message = page.get_by_label("Message", exact=True)
    await expect(message).to_be_focused()

    await page.keyboard.type("add buy milk")
    await page.keyboard.press("Shift+Enter")
    await expect(message).to_have_value("add buy milk\n")
    await expect(page.locator(".message")).to_have_count(0)
    await page.keyboard.press("Backspace")
    await page.keyboard.type(" and call mom")
    await expect(page.locator(".message")).to_have_count(0)
    await page.keyboard.press("Enter")
    await finished(page)
    await expect(message).to_have_value("")
    await expect(page.locator("#tasks .title")).to_have_text(["Buy milk", "Call mom"])

    async def tab_to(selector: str) -> None:
        target = page.locator(selector)
        for _ in range(40):
            await page.keyboard.press("Tab")
            if await target.evaluate("node => node === document.activeElement"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    user = site.user(user_id)
    milk = page.locator("#tasks li").first
    await tab_to("#tasks li:first-child input[type=checkbox]")
    await page.keyboard.press("Space")
    await expect(milk).to_have_class("done")
    await expect(milk.locator("input")).to_be_focused()
    tasks = (await user.get("/tasks")).json()["tasks"]
    assert [t["completed"] for t in tasks] == [True, False]

    await tab_to("#tasks li:first-child .rename")
    await page.keyboard.press("Enter")
    await expect(page.get_by_label("New title for Buy milk")).to_be_focused()
    await page.keyboard.type("Buy oat milk")
    await page.keyboard.press("Enter")
    await expect(page.locator("#tasks .title")).to_have_text(["Buy oat milk", "Call mom"])
    await tab_to("#tasks li:first-child .delete")
    await page.keyboard.press("Enter")
    await expect(page.locator("#tasks .title")).to_have_text(["Call mom"])
    assert [t["title"] for t in (await user.get("/tasks")).json()["tasks"]] == ["Call mom"]
