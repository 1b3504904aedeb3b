"""Every text the chat page draws is drawn as text: markup in a user's message, the model's
thinking, a tool's arguments and result, the answer's tokens, a task's title and a
conversation's title stays inert, as it streams and as it is read back after a reload.

The offline model is the script: asked to add a title that is markup, it thinks, calls
add_task with it, gets the task back and answers, each naming the title. The page's
Content-Security-Policy would refuse the inline handler even if the markup became elements; so
the test looks for the elements themselves (and the `start_site` fixture fails on the console
error such a refusal logs)."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser.conftest import SiteFactory
from tests.browser.test_chat_page import answers, finished, send, sign_in

# Short enough at its start that the conversation's title (the first 49 characters) holds the
# <b> element whole.
TITLE = "<b id=xss-b>b</b><img id=xss-img src=x onerror=window.__xss=1>"
MESSAGE = f"add {TITLE}"


async def _nothing_became_markup(page: Page) -> None:
    injected = await page.evaluate(
        "() => [document.querySelectorAll('#xss-b, #xss-img').length, window.__xss ?? null]"
    )
    assert injected == [0, None], "markup from a text became elements"


async def _each_text_shows_the_markup_as_written(page: Page) -> None:
    answer = answers(page).last
    await expect(page.locator(".message.user .content").last).to_have_text(MESSAGE)
    await expect(page.locator("#tasks .title")).to_have_text([TITLE])
    await expect(page.locator("#conversations")).to_contain_text("add <b id=xss-b>b</b><img")
    await expect(answer.locator(".content")).to_contain_text(TITLE)
    await expect(answer.locator(".arguments")).to_contain_text(TITLE)
    await expect(answer.locator(".result")).to_contain_text(TITLE)


async def test_markup_in_every_text_the_page_draws_stays_text(start_site: SiteFactory) -> None:
    site = await start_site(token_delay_ms=5)
    page, _ = await sign_in(site, "inert")
    await send(page, MESSAGE)
    await finished(page)
    await expect(answers(page).last.locator(".thinking")).to_contain_text(TITLE)
    await _each_text_shows_the_markup_as_written(page)
    await _nothing_became_markup(page)

    await page.reload()  # now from the stored conversation, its messages and the task list
    await page.locator("#conversations .open").first.click()
    await finished(page, count=1)
    await expect(page.locator("#conversation-title")).to_contain_text("add <b id=xss-b>b</b>")
    await _each_text_shows_the_markup_as_written(page)
    await _nothing_became_markup(page)
