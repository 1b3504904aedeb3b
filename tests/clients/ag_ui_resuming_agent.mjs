// An @ag-ui/client HttpAgent that resumes a dropped run from todo-chat's durable log, through
// the client's own `connect()` hook (README, "AG-UI"). AG-UI defines no resume; the service
// offers one: a GET that follows a run of a thread from a Last-Event-ID.
//
// - Every group of blocks the service sends for one of its events ends with an
//   `id: <run_id>:<seq>` line. The response body is passed to the client's parser one whole
//   group at a time, and the last id passed on is kept (`cursor`): what the parser has seen is
//   always exactly what the cursor names, so a cut never leaves half a tool call applied.
// - A connection that fails (or ends) before RUN_FINISHED or RUN_ERROR is not an error here:
//   the body ends cleanly at the last whole group, and `runAgent()` goes on with
//   `connectAgent()`, whose `connect(input)` GETs `resumeUrl` with `Last-Event-ID: <cursor>`.
//   The service answers with a fresh RUN_STARTED, the tasks, the message left open, and the
//   rest, so `agent.messages` and `agent.state` end as an uncut run leaves them. When no whole
//   group came, there is no cursor, and the run's POST is sent again: the service keys a run
//   by its last user message's id, so the same input joins the run the first POST started
//   (or replays it, if it has ended), and starts one only if that POST never arrived.
// - A 204 is "nothing to follow" (no run going in the thread, or the client has the run's
//   end): an empty stream, and no more resumes.
// - Outside a run, `connectAgent()` (CopilotKit calls it when a chat mounts) follows the run
//   going in the thread, if any, from its start.
// - `abortRun()` only drops the connection, as for every HttpAgent: nothing resumes after it,
//   and the run goes on on the server (POST .../cancel stops it).
//
// Works with @ag-ui/client 1.0.0 and 0.0.59: pass the package (its HttpAgent and the two
// transport functions it exports).

const FINAL = new Set(['RUN_FINISHED', 'RUN_ERROR']);

export function resumingAgentClass({ HttpAgent, runHttpRequest, transformHttpEventStream }) {
  return class ResumingHttpAgent extends HttpAgent {
    constructor({ resumeUrl, maxResumes = 5, ...config }) {
      super(config);
      this.resumeUrl = resumeUrl;
      this.maxResumes = maxResumes;
      this.cursor = undefined;
      this.answered = false;
      this.ended = false;
      const send = this.fetch;
      // Not an arrow: `this` is the agent that fetches, which may be a clone of this one.
      this.fetch = async function fetchWholeGroups(url, init) {
        return this.wholeGroups(await send(url, init), init?.signal);
      };
    }

    // CopilotKit's runtime runs a clone of the agent it is given, for each request.
    clone() {
      const cloned = super.clone();
      cloned.resumeUrl = this.resumeUrl;
      cloned.maxResumes = this.maxResumes;
      return cloned;
    }

    async runAgent(parameters = {}, subscriber) {
      // One runId for the POST and every resume, so RUN_STARTED echoes the same run.
      const resumable = { ...parameters, runId: parameters.runId ?? crypto.randomUUID() };
      const before = new Set(this.messages.map((message) => message.id));
      this.cursor = undefined;
      this.answered = false;
      this.ended = false;
      let { result } = await super.runAgent(resumable, subscriber);
      for (let resumes = 0; this.canResume() && resumes < this.maxResumes; resumes += 1) {
        ({ result } = await this.connectAgent(resumable, subscriber));
      }
      const newMessages = this.messages.filter((message) => !before.has(message.id));
      return { result, newMessages };
    }

    canResume() {
      return this.answered && !this.ended && !this.abortController.signal.aborted;
    }

    connect(input) {
      if (this.answered && this.cursor === undefined) return this.run(input);
      const url = new URL(this.resumeUrl);
      url.searchParams.set('runId', input.runId);
      // The service serves each client line what it accepts; a GET has no body to say which.
      if (input.protocolVersion) url.searchParams.set('protocolVersion', input.protocolVersion);
      const init = {
        method: 'GET',
        headers: {
          ...this.headers,
          Accept: 'text/event-stream',
          ...(this.cursor !== undefined && { 'Last-Event-ID': this.cursor }),
        },
        signal: this.abortController.signal,
      };
      return transformHttpEventStream(runHttpRequest(() => this.fetch(url, init)), this.debugLogger);
    }

    wholeGroups(response, signal) {
      if (response.status === 204) {
        this.ended = true;
        return new Response('', { status: 200, headers: { 'content-type': 'text/event-stream' } });
      }
      if (!response.ok || !response.body) return response;
      this.answered = true;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const encoder = new TextEncoder();
      let pending = '';
      const body = new ReadableStream({
        // Reads until a whole group can be passed on: a pull that enqueues nothing is not
        // called again, and the parser would wait for ever.
        pull: async (controller) => {
          for (;;) {
            let chunk;
            try {
              chunk = await reader.read();
            } catch (error) {
              // A dropped connection ends the body at the last whole group; an abort stays one.
              if (signal?.aborted) controller.error(error);
              else controller.close();
              return;
            }
            if (chunk.done) {
              controller.close();
              return;
            }
            pending += decoder.decode(chunk.value, { stream: true });
            const whole = this.takeWholeGroups(pending);
            if (whole.length > 0) {
              pending = pending.slice(whole.length);
              controller.enqueue(encoder.encode(whole));
              return;
            }
          }
        },
        cancel: (reason) => reader.cancel(reason),
      });
      return new Response(body, { status: response.status, headers: response.headers });
    }

    // The text up to the end of the last block with an `id:` line; notes that id, and whether
    // the run's final event is among what is passed on.
    takeWholeGroups(text) {
      let taken = 0;
      let start = 0;
      let final = false;
      for (let end = text.indexOf('\n\n'); end !== -1; end = text.indexOf('\n\n', start)) {
        const lines = text.slice(start, end).split('\n');
        start = end + 2;
        const data = lines.find((line) => line.startsWith('data:'));
        final ||= data !== undefined && FINAL.has(JSON.parse(data.slice(5)).type);
        const id = lines.find((line) => line.startsWith('id:'));
        if (id !== undefined) {
          this.cursor = id.slice(3).trim();
          this.ended ||= final;
          taken = start;
        }
      }
      return text.slice(0, taken);
    }
  };
}
