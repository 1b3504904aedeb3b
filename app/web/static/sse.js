// Reading the service's streams in the browser.
//
// A POST cannot use EventSource, so the answer to a sent message is read from `fetch`, asking
// for the standard framing with `Accept: text/event-stream` (without it a browser's fetch sends
// `*/*` and gets the seed's two-blocks-per-event framing: see app/protocols/native.py). The parser below
// follows the WHATWG rules for the fields this service sends: `data:` lines are joined, `id:`
// sets the last event id (the stream opens with a bare one, the run's), comment lines (`: ping`)
// are skipped, and an empty line dispatches the data gathered so far, if any.
//
// Everything else (a reload that resumes, a second tab, a cut fetch) follows a run with the
// browser's own EventSource, which reconnects by itself and stops for good on the service's 204.

export async function readEventStream(body, onMessage) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let data = [];
  let lastEventId = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return lastEventId;
    buffer += value;
    // A chunk may end between "\r" and "\n": keep a trailing "\r" for the next one.
    const end = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length;
    const lines = buffer.slice(0, end).split(/\r\n|\r|\n/);
    buffer = lines.pop() + buffer.slice(end);
    for (const line of lines) {
      if (line === "") {
        if (data.length) onMessage({ data: data.join("\n"), id: lastEventId });
        data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") data.push(value);
      else if (field === "id" && !value.includes("\0")) lastEventId = value;
    }
  }
}

// Follow a run with EventSource. `onEvent` gets each event object; `onClosed(received)` is
// called once the source has stopped: after the run's last event, or when the service had
// nothing to send (204), or refused (a 4xx), with how many events arrived.
export function follow(url, onEvent, onClosed) {
  const source = new EventSource(url);
  let received = 0;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    source.close();
    onClosed(received);
  };
  source.onmessage = (message) => {
    received += 1;
    const event = JSON.parse(message.data);
    onEvent(event);
    if (event.type === "done" || event.type === "error") close();
  };
  source.onerror = () => {
    // CONNECTING: the browser retries by itself, with Last-Event-ID. CLOSED: it gave up.
    if (source.readyState === EventSource.CLOSED) close();
  };
  return { close: () => { closed = true; source.close(); } };
}
