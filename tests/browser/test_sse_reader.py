"""The page's stream reader (app/web/static/sse.js), run in Chromium on the service's real
bytes: both framings (app/protocols/native.py), cut into chunks of every small size and with
CRLF line endings, give every event once, with its id."""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.browser.conftest import SiteFactory

READ = """async ({ body, size }) => {
  const { readEventStream } = await import("/static/sse.js");
  const bytes = new TextEncoder().encode(body);
  const stream = new ReadableStream({
    start(controller) {
      for (let at = 0; at < bytes.length; at += size) {
        controller.enqueue(bytes.slice(at, at + size));
      }
      controller.close();
    },
  });
  const events = [];
  const last = await readEventStream(stream, (m) => events.push([JSON.parse(m.data), m.id]));
  return { events, last };
}"""


async def test_both_framings_are_read_whole_however_the_bytes_arrive(
    start_site: SiteFactory,
) -> None:
    site = await start_site()
    user = site.user(f"sse-{uuid.uuid4().hex[:8]}")
    page = await site.page()
    await page.goto(site.url)
    for accept in ("text/event-stream", "*/*"):
        async with site.live.client.stream(
            "POST",
            user.url("/chat/stream"),
            json={"message": "add buy milk"},
            headers={**user.headers, "Accept": accept},
        ) as response:
            body = (await response.aread()).decode()
        data = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
        run_id = data[0]["run_id"]
        expected = [[event, f"{run_id}:{event['seq']}"] for event in data]
        assert [event["type"] for event in data][-1] == "done"
        for text in (body, body.replace("\n", "\r\n")):
            for size in (1, 2, 3, 5, 8, 13, len(text)):
                read: dict[str, Any] = await page.evaluate(READ, {"body": text, "size": size})
                assert read["events"] == expected, (accept, size)
                assert read["last"] == expected[-1][1]
