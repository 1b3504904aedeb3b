// The stream-reading loops of the two React clients this service serves, `useChat` and
// `StreamingMessage`, line for line as the seed has them, with React's state replaced by plain
// variables (and a count of the JSON errors the seed swallows). Like the seed, `useChat` leaves
// only its inner loop on `done` and reads on until the server closes the stream.
// Usage: node seed_clients.mjs <useChat|StreamingMessage> <apiUrl> <userId> <token> <message> [conversationId]
// CHAT_PATH=chat/stream-tools calls the seed's other endpoint (both serve the same stream).
// Prints one JSON object: what the client ends up showing.

const [mode, apiUrl, userId, token, message, conversationArg] = process.argv.slice(2);
const conversationId = conversationArg ? Number(conversationArg) : undefined;
const chatPath = process.env.CHAT_PATH || 'chat/stream';

async function useChat() {
  const state = { conversationId, content: '', types: [], parseErrors: 0, ended: null };
  const response = await fetch(`${apiUrl}/api/${userId}/${chatPath}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Authorization': `Bearer ${token}` },
    body: JSON.stringify({ message, conversation_id: conversationId }),
  });
  if (!response.ok) throw new Error('Request failed');
  const reader = response.body?.getReader();
  if (!reader) throw new Error('No reader');
  const decoder = new TextDecoder();
  let buffer = '';
  let fullResponse = '';
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const events = buffer.split('\n\n');
    buffer = events.pop() || '';
    for (const event of events) {
      if (!event.startsWith('data: ')) continue;
      const data = event.slice(6);
      if (data === '[DONE]') break;
      try {
        const parsed = JSON.parse(data);
        state.types.push(parsed.type);
        if (parsed.type === 'start' && parsed.conversation_id) {
          state.conversationId = parsed.conversation_id;
        }
        if (parsed.type === 'text' && parsed.content) {
          fullResponse += parsed.content;
          state.content = fullResponse;
        }
        if (parsed.type === 'done' || parsed.type === 'error') {
          state.ended ??= parsed.type;
          break;
        }
      } catch { state.parseErrors += 1; }
    }
  }
  return state;
}

async function streamingMessage() {
  const state = { conversationId: null, text: '', toolCalls: [], error: null, completed: null, parseErrors: 0 };
  const response = await fetch(`${apiUrl}/api/${userId}/${chatPath}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'Authorization': `Bearer ${token}` },
    body: JSON.stringify({ message }),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const reader = response.body?.getReader();
  if (!reader) throw new Error('No reader');
  const decoder = new TextDecoder();
  let buffer = '';
  let fullText = '';
  const onComplete = (text, id) => { state.completed ??= { text, conversationId: id }; };
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    const lines = buffer.split('\n\n');
    buffer = lines.pop() || '';
    for (const line of lines) {
      if (!line.startsWith('data: ')) continue;
      const data = line.slice(6);
      if (data === '[DONE]') { onComplete(fullText, state.conversationId || 0); return state; }
      try {
        const event = JSON.parse(data);
        switch (event.type) {
          case 'start':
            if (event.conversation_id) state.conversationId = event.conversation_id;
            break;
          case 'text':
            if (event.content) { fullText += event.content; state.text = fullText; }
            break;
          case 'tool_call':
            if (event.name) state.toolCalls.push(event.name);
            break;
          case 'error':
            state.error = event.message || 'An error occurred';
            break;
          case 'done':
            onComplete(fullText, state.conversationId || 0);
            break;
        }
      } catch (e) { state.parseErrors += 1; }
    }
  }
  onComplete(fullText, state.conversationId || 0);
  return state;
}

const run = mode === 'useChat' ? useChat : streamingMessage;
run().then(
  (state) => { console.log(JSON.stringify(state)); },
  (error) => { console.log(JSON.stringify({ thrown: String(error) })); process.exitCode = 1; },
);
