// The standard SSE clients people use, run as their READMEs show, with no code of ours between
// them and the service: `@microsoft/fetch-event-source` (default options; in Node it needs
// `openWhenHidden: true` and the two browser globals it touches) and the WHATWG `EventSource`
// (the npm `eventsource` package). Each retries and resumes by its own logic.
// Usage: node sse_clients.mjs <fetch-event-source|eventsource> '<JSON config>'
// Prints one JSON object: the events the client delivered, and how it ended.
import { fetchEventSource } from '@microsoft/fetch-event-source';
import { EventSource } from 'eventsource';

const [mode, configArg] = process.argv.slice(2);
const config = JSON.parse(configArg);
const GIVE_UP_MS = 60_000;

// fetch-event-source: a chat turn by POST, its own retry on a failed connection.
async function fetchEventSourceClient() {
  globalThis.window = globalThis; // window.fetch, window.setTimeout, window.clearTimeout
  globalThis.document = { hidden: false, addEventListener() {}, removeEventListener() {} };
  const events = [];
  const controller = new AbortController();
  const giveUp = setTimeout(() => controller.abort(), GIVE_UP_MS);
  await fetchEventSource(config.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${config.token}` },
    body: JSON.stringify(config.body),
    openWhenHidden: true,
    signal: controller.signal,
    onmessage(ev) {
      const event = JSON.parse(ev.data);
      events.push({ ...event, lastEventId: ev.id });
    },
  });
  clearTimeout(giveUp);
  return { events, gaveUp: controller.signal.aborted };
}

// EventSource: a run's events by GET (the token in the query: it cannot send headers), its own
// reconnection with Last-Event-ID. It stops for good only on a 204 (or another fatal answer).
function eventSourceClient() {
  return new Promise((resolve) => {
    const events = [];
    const errors = [];
    let opens = 0;
    const source = new EventSource(config.url);
    const finish = (gaveUp) => {
      clearTimeout(giveUp);
      if (gaveUp) source.close();
      // Once it has stopped by itself, stay a while: the test counts the connections made
      // meanwhile, to see that it does not come back.
      const stay = gaveUp ? 0 : (config.stayMs ?? 0);
      setTimeout(() => resolve({ events, errors, opens, gaveUp }), stay);
    };
    const giveUp = setTimeout(() => finish(true), config.giveUpMs ?? GIVE_UP_MS);
    source.onopen = () => {
      opens += 1;
    };
    source.onmessage = (ev) => {
      events.push({ ...JSON.parse(ev.data), lastEventId: ev.lastEventId });
    };
    source.onerror = (err) => {
      errors.push({ code: err.code ?? null, readyState: source.readyState });
      if (source.readyState === EventSource.CLOSED) finish(false);
    };
  });
}

const run = mode === 'fetch-event-source' ? fetchEventSourceClient : eventSourceClient;
run().then(
  (result) => {
    console.log(JSON.stringify(result));
    process.exit(0);
  },
  (error) => {
    console.log(JSON.stringify({ thrown: String(error) }));
    process.exit(1);
  },
);
