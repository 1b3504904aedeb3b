"""GET /docs in a real browser: Swagger UI renders the service's OpenAPI 3.1 document, every
request the page makes goes to the service itself, and its Content-Security-Policy lets it run."""

from __future__ import annotations

from urllib.parse import urlsplit

from tests.browser.conftest import SiteFactory


async def test_swagger_ui_renders_the_document_from_the_service_alone(
    start_site: SiteFactory,
) -> None:
    site = await start_site()
    page = await site.page()
    refused: list[str] = []
    missing: list[str] = []
    page.on(
        "response",
        lambda response: missing.append(response.url) if response.status >= 400 else None,
    )
    page.on(
        "console", lambda message: refused.append(message.text) if message.type == "error" else None
    )
    await page.goto(f"{site.url}/docs")
    await page.locator(".swagger-ui .info .title", has_text="todo-chat").wait_for()
    await page.locator(
        ".opblock-summary-path", has_text="/api/{user_id}/chat/stream"
    ).first.wait_for()
    origin = urlsplit(site.url).netloc
    assert {urlsplit(request.url).netloc for request in site.requests} == {origin}
    assert missing == [] and refused == []
