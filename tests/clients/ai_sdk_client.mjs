// The Vercel AI SDK (the npm `ai` package, pinned in package.json), unchanged, against the live
// service: its DefaultChatTransport sends and reconnects, its readUIMessageStream assembles the
// assistant message from the chunks, exactly as useChat does underneath.
//
//   node ai_sdk_client.mjs send '{"api", "token", "chatId", "messages"}'
//   node ai_sdk_client.mjs reconnect '{"api", "token", "chatId"}'
//   node ai_sdk_client.mjs chat '{"api", "token", "chatId", "texts"}'
//   node ai_sdk_client.mjs resume '{"api", "token", "chatId"}'
//
// `chat` is useChat without React: the SDK's AbstractChat (which @ai-sdk/react's Chat extends)
// with a plain array for its state, sending each text in turn after the previous answer;
// `resume` is what useChat({resume: true}) does on mount: resumeStream() on a new chat.
//
// Prints one JSON object: the assembled `message` (null when reconnect found nothing running),
// the chunks in order, the errors the SDK reported, the states each tool part went through
// (`toolStates`), or the HTTP error it threw.
import { AbstractChat, DefaultChatTransport, readUIMessageStream } from 'ai';

const [mode, raw] = process.argv.slice(2);
const config = JSON.parse(raw);

const transport = new DefaultChatTransport({
  api: config.api,
  headers: { Authorization: `Bearer ${config.token}` },
});

async function assemble(stream) {
  const chunks = [];
  const errors = [];
  const recorded = stream.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        chunks.push(chunk);
        controller.enqueue(chunk);
      },
    }),
  );
  let message = null;
  // Each tool part's states in the order the assembled message went through them, as a UI
  // drawing each snapshot would show them: "toolCallId input-available", then "… output-…".
  const toolStates = [];
  const seen = new Map();
  for await (const snapshot of readUIMessageStream({
    stream: recorded,
    onError: (error) => errors.push(String(error?.message ?? error)),
  })) {
    message = snapshot;
    for (const part of snapshot.parts) {
      if (part.type.startsWith('tool-') && seen.get(part.toolCallId) !== part.state) {
        seen.set(part.toolCallId, part.state);
        toolStates.push(`${part.toolCallId} ${part.state}`);
      }
    }
  }
  return { message, chunks, errors, toolStates };
}

class ArrayState {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (message) => { this.messages = [...this.messages, message]; };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = this.messages.map((m, i) => (i === index ? message : m));
  };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends AbstractChat {
  constructor(init) {
    super({ ...init, state: new ArrayState() });
  }
}

async function chat() {
  const finished = [];
  const session = new Chat({
    id: config.chatId,
    transport,
    onFinish: ({ message, isError }) => finished.push({ id: message.id, isError }),
  });
  for (const text of config.texts) {
    await session.sendMessage({ text });
    if (session.status === 'error') break;
  }
  return {
    messages: session.messages,
    status: session.status,
    error: session.error?.message ?? null,
    finished,
  };
}

async function resume() {
  const session = new Chat({ id: config.chatId, transport });
  await session.resumeStream();
  return {
    messages: session.messages,
    status: session.status,
    error: session.error?.message ?? null,
  };
}

async function main() {
  try {
    if (mode === 'send') {
      const stream = await transport.sendMessages({
        chatId: config.chatId,
        messages: config.messages,
        trigger: config.trigger ?? 'submit-message',
        messageId: config.messageId,
        abortSignal: undefined,
      });
      return await assemble(stream);
    }
    if (mode === 'chat') return await chat();
    if (mode === 'resume') return await resume();
    if (mode === 'reconnect') {
      const stream = await transport.reconnectToStream({ chatId: config.chatId });
      if (stream === null) return { message: null, chunks: [], errors: [] };
      return await assemble(stream);
    }
    throw new Error(`unknown mode ${mode}`);
  } catch (error) {
    // An HTTP error, as the transport surfaces it (APICallError: the status and the body).
    return {
      thrown: { name: error.name, statusCode: error.statusCode ?? null, message: error.message },
    };
  }
}

process.stdout.write(JSON.stringify(await main()));
