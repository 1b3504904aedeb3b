// @ag-ui/client's HttpAgent, unchanged: 1.0.0, and 0.0.59 (installed as ag-ui-client-0.0.59:
// the version CopilotKit's React packages pin), reading frames the service's AG-UI module
// wrote (tests/protocols/test_ag_ui_clients.py serves them). `runAgent()` runs the client's own
// pipeline: its SSE parser, schema enforcement (1.0), verifyEvents, and the reducer that builds
// agent.messages and agent.state. With `resumeUrl`, the agent is ag_ui_resuming_agent.mjs's.
//
//   node ag_ui_client.mjs '{"runs": [{"client", "url", "threadId", "messages", "headers"?,
//                                      "resumeUrl"?, "abortOn"?, "clone"?, "connect"?,
//                                      "then"?: [{"url"?, "message"}]}]}'
//
// `headers`: sent with every request (the service's Authorization).
// `clone`: run a clone of the agent, as CopilotKit's runtime does for each request.
// `connect`: `connectAgent()` instead of `runAgent()`, as CopilotKit does when a chat mounts.
// `then`: more runs on the same agent (the same thread, its messages kept), each after adding
// `message`, as a chat's next turn does.
//
// Runs them in turn and prints {"runs": [...]}, each with: `events` (the types the subscriber
// saw, in order), `failed` (onRunFailed), `threw` (what runAgent() rejected with: its message,
// and for an HTTP error its `status` and `payload`), `runErrors` (onRunErrorEvent), `finished`
// (onRunFinishedEvent's outcome and result), `warnings` (everything written to console.warn or
// console.error), `messages`, `state`, `result`. Each event's type is also written to stderr
// as it arrives (`event TYPE`), for a test that watches a run while it streams.
import * as current from '@ag-ui/client';
import * as pinned from 'ag-ui-client-0.0.59';
import { resumingAgentClass } from './ag_ui_resuming_agent.mjs';

const CLIENTS = { '1.0.0': current, '0.0.59': pinned };
const config = JSON.parse(process.argv[2]);

let warnings = [];
console.warn = (...args) => warnings.push(args.map(String).join(' '));
console.error = (...args) => warnings.push(args.map(String).join(' '));

async function run({
  client, url, threadId, messages, headers, resumeUrl, abortOn, clone, connect, then = [],
}) {
  const module = CLIENTS[client];
  const Agent = resumeUrl ? resumingAgentClass(module) : module.HttpAgent;
  const made = new Agent({ url, threadId, initialMessages: messages, headers, resumeUrl });
  const agent = clone ? made.clone() : made;
  const seen = { events: [], failed: [], runErrors: [], finished: [] };
  warnings = [];
  const subscriber = {
    onEvent: ({ event }) => {
      seen.events.push(event.type);
      process.stderr.write(`event ${event.type}\n`);
      if (event.type === abortOn) agent.abortRun();
    },
    onRunFailed: ({ error }) => { seen.failed.push(String(error?.message ?? error)); },
    onRunErrorEvent: ({ event }) => { seen.runErrors.push({ code: event.code, message: event.message }); },
    onRunFinishedEvent: ({ outcome, result: finished }) => {
      seen.finished.push({ outcome, result: finished ?? null });
    },
  };
  let result = null;
  let threw = null;
  try {
    ({ result } = connect
      ? await agent.connectAgent({}, subscriber)
      : await agent.runAgent({}, subscriber));
    for (const next of then) {
      agent.url = next.url ?? agent.url;
      agent.addMessage(next.message);
      ({ result } = await agent.runAgent({}, subscriber));
    }
  } catch (error) {
    threw = {
      message: String(error?.message ?? error),
      status: error?.status ?? null,
      payload: error?.payload ?? null,
    };
  }
  return { ...seen, warnings, threw, result: result ?? null, messages: agent.messages, state: agent.state };
}

// A run whose promise never settles leaves Node nothing to wait for: it exits (code 13)
// without a word, so say which run it was.
const stderr = process.stderr.write.bind(process.stderr);
let pending = null;
process.on('exit', (code) => {
  if (pending !== null) stderr(`exited (${code}) in run ${pending}: ${JSON.stringify(config.runs[pending])}\n`);
});
const runs = [];
for (const [index, each] of config.runs.entries()) {
  pending = index;
  runs.push(await run(each));
}
pending = null;
process.stdout.write(JSON.stringify({ runs }));
