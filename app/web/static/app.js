// The chat page: signing in, conversations, the streamed answer, tasks.
//
// An answer is a "turn" of this view. A message sent here is read from its POST (sse.js); an
// answer already going when a conversation is opened (a reload, another tab) is followed on the
// conversation's stream with EventSource, from its first event, so it is drawn once, whole. The
// stored messages are drawn from the REST API; the answer of a run in progress is not stored
// until it ends, so the two never overlap.
import { ApiError, Session, developmentToken, idempotencyKey } from "./api.js";
import { Answer, element, taskItem, userMessage } from "./render.js";
import { follow, readEventStream } from "./sse.js";

const $ = (id) => document.getElementById(id);
const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
const SIGN_IN = meta("todo-chat-sign-in"); // "development" or "host"
const HOST_ORIGINS = meta("todo-chat-host-origins").split(/\s+/).filter(Boolean);
const CONVERSATION_KEY = "todo-chat.conversation";

let session = null;
let conversationId = null;
let view = 0; // bumped whenever the chat shown changes: a turn of an older view is ignored
let turn = null; // the answer being streamed in this view

// ---- signing in ----

// `ready`: tell the host the page waits for a token; not after the host's token was refused,
// which would only bring the same token back, again and again.
function showSignIn(message = "", { ready = true } = {}) {
  closeTurn();
  $("app").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message;
  if (SIGN_IN === "development") {
    $("sign-in-form").hidden = false;
    $("sign-in-name").focus();
  } else {
    $("sign-in-host").hidden = false;
    if (ready && window.parent !== window) {
      window.parent.postMessage({ type: "todo-chat:ready" }, "*");
    }
  }
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    const token = await developmentToken($("sign-in-name").value.trim());
    begin(Session.start(token, { remember: $("sign-in-remember").checked }));
  } catch (error) {
    $("sign-in-error").textContent = error.message;
  }
});

// The host application signs the user in by posting {type: "todo-chat:token", token} to this
// page in its iframe, from an origin listed in CORS_ORIGINS.
window.addEventListener("message", (event) => {
  if (window.parent === window || event.source !== window.parent) return;
  if (!HOST_ORIGINS.includes("*") && !HOST_ORIGINS.includes(event.origin)) return;
  const data = event.data || {};
  if (data.type !== "todo-chat:token" || typeof data.token !== "string") return;
  try {
    begin(Session.start(data.token));
  } catch (error) {
    showSignIn(error.message, { ready: false });
  }
});

$("sign-out").addEventListener("click", () => signOut());

function signOut(message) {
  Session.forget();
  sessionStorage.removeItem(CONVERSATION_KEY);
  session = null;
  if (window.parent !== window) window.parent.postMessage({ type: "todo-chat:signed-out" }, "*");
  showSignIn(message);
}

function begin(newSession) {
  session = newSession;
  $("sign-in").hidden = true;
  $("app").hidden = false;
  $("user-name").textContent = session.userId;
  const stored = Number(sessionStorage.getItem(CONVERSATION_KEY));
  if (stored) openConversation(stored);
  else newConversation();
  refreshConversations();
  refreshTasks();
  $("message").focus();
}

// ---- conversations ----

function changeView(id) {
  closeTurn();
  view += 1;
  conversationId = id;
  if (id) sessionStorage.setItem(CONVERSATION_KEY, id);
  else sessionStorage.removeItem(CONVERSATION_KEY);
  hideNotice();
  messagesDrawn += 1;
  $("messages").replaceChildren();
  $("earlier-messages").hidden = true;
  for (const button of document.querySelectorAll("#conversations .open")) {
    if (Number(button.dataset.id) === id) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
}

function newConversation() {
  changeView(null);
  $("conversation-title").textContent = "New conversation";
}

async function openConversation(id) {
  changeView(id);
  const opened = view;
  const drawn = await drawMessages(id);
  if (drawn && opened === view) resume(id);
}

async function drawMessages(id) {
  const opened = view;
  let body;
  try {
    body = await session.request("GET", `/conversations/${id}/messages`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) newConversation();
    else failed(error);
    return false;
  }
  if (opened !== view) return false;
  $("conversation-title").textContent = body.conversation.title;
  messagesDrawn += 1;
  $("messages").replaceChildren(...body.messages.map(storedMessage));
  offerEarlierMessages(id, body.next_before);
  scrollToEnd();
  return true;
}

function storedMessage(message) {
  return message.role === "user" ? userMessage(message.content, message.id) : Answer.stored(message).node;
}

// A conversation opens on its last messages (a page of the API's); the earlier ones on demand.
let messagesDrawn = 0;

function offerEarlierMessages(id, before) {
  const path = (cursor) => `/conversations/${id}/messages?${new URLSearchParams({ before: cursor })}`;
  offerMore($("earlier-messages"), before, path, () => messagesDrawn, (body) => {
    const log = $("messages");
    const fromBottom = log.scrollHeight - log.scrollTop; // keep the reader where they were
    log.prepend(...body.messages.map(storedMessage));
    log.scrollTop = log.scrollHeight - fromBottom;
    offerEarlierMessages(id, body.next_before);
    if ($("earlier-messages").hidden) $("message").focus(); // the focused button is gone
  });
}

// A "show more" button: it reads the page at `cursor` (none: it hides), one page at a time
// (disabled meanwhile), and hands it to `add`, unless its list was drawn anew in the meantime
// (`drawnNow()` changed): that page would not follow on from the new list.
function offerMore(button, cursor, path, drawnNow, add) {
  const drawn = drawnNow();
  button.hidden = cursor === null;
  button.disabled = false;
  button.onclick = async () => {
    button.disabled = true;
    const body = await session.request("GET", path(cursor)).catch(failed);
    if (drawn !== drawnNow()) return; // drawn anew, with a button of its own
    button.disabled = false;
    if (body) add(body);
  };
}

// Follow the run the conversation has in progress, if any (the service answers 204 if none).
function resume(id) {
  const current = startTurn();
  const source = follow(
    session.eventSourceUrl(`/conversations/${id}/stream`),
    (event) => handle(current, event),
    (received) => {
      const wasIdle = !received && !current.finished;
      endTurn(current);
      // The run may have ended between the messages' read and this stream: read them again.
      if (wasIdle && current.view === view && lastRole() === "user") drawMessages(id);
    },
  );
  current.close = source.close;
}

let conversationsRead = 0;
let conversationsDrawn = 0;

// The most recent conversations (a page of the API's); older ones on demand.
async function refreshConversations() {
  const read = ++conversationsRead;
  const body = await session.request("GET", "/conversations").catch(failed);
  if (!body || read !== conversationsRead) return; // a later read is on its way
  conversationsDrawn += 1;
  $("conversations").replaceChildren(...body.conversations.map(conversationItem));
  offerOlderConversations(body.next_before);
}

function offerOlderConversations(before) {
  const path = (cursor) => `/conversations?${new URLSearchParams({ before: cursor })}`;
  offerMore($("older-conversations"), before, path, () => conversationsDrawn, (body) => {
    const added = body.conversations.map(conversationItem);
    $("conversations").append(...added);
    offerOlderConversations(body.next_before);
    added[0]?.querySelector(".open").focus(); // the first of those shown now
  });
}

function conversationItem(conversation) {
  return element(
    "li",
    {},
    element("button", {
      type: "button",
      class: "open",
      "data-id": conversation.id,
      "aria-current": conversation.id === conversationId ? "page" : undefined,
      onclick: () => openConversation(conversation.id),
    }, conversation.title),
    element("button", {
      type: "button",
      class: "delete",
      "aria-label": `Delete conversation ${conversation.title}`,
      onclick: () => deleteConversation(conversation.id),
    }, "Delete"),
  );
}

async function deleteConversation(id) {
  try {
    await session.request("DELETE", `/conversations/${id}`);
  } catch (error) {
    return failed(error);
  }
  if (id === conversationId) newConversation();
  await refreshConversations();
  $("new-conversation").focus();
}

$("new-conversation").addEventListener("click", () => {
  newConversation();
  $("message").focus();
});

// ---- sending and streaming ----

$("composer").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message").value;
  if (!text.trim() || $("send").disabled) return;
  $("message").value = "";
  send(text);
});

$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});

$("stop").addEventListener("click", async () => {
  if (!turn || !turn.runId) return;
  $("stop").disabled = true;
  await session.request("POST", `/runs/${turn.runId}/cancel`).catch(failed);
  // The stream ends with done, status "cancelled".
});

async function send(text, { cancelActive = false } = {}) {
  hideNotice();
  const userNode = userMessage(text);
  $("messages").append(userNode);
  scrollToEnd();
  const current = startTurn(text);
  $("send").disabled = true;
  const controller = new AbortController();
  current.close = () => controller.abort();
  const body = { message: text, conversation_id: conversationId };
  if (cancelActive) body.cancel_active = true;
  // When the network fails before the answer's first event, the page cannot tell whether the
  // message arrived: it sends it again, with the same Idempotency-Key, which joins the run the
  // first send started (if it did) rather than starting a second. At most three sends.
  const key = idempotencyKey();
  for (let attempt = 1; ; attempt++) {
    let response;
    try {
      response = await session.stream(body, controller.signal, key);
    } catch (error) {
      if (!(error instanceof ApiError) && !controller.signal.aborted && attempt < 3) continue;
      userNode.remove();
      endTurn(current);
      if (controller.signal.aborted) return;
      if (error instanceof ApiError && error.code === "run_active") return offerFollow(text);
      $("message").value ||= text;
      return failed(error);
    }
    try {
      await readEventStream(response.body, (message) => {
        current.lastEventId = message.id;
        handle(current, JSON.parse(message.data));
      });
    } catch {
      if (controller.signal.aborted) return;
    }
    if (current.runId || current.finished || controller.signal.aborted || attempt >= 3) break;
  }
  if (!current.finished && current.runId && current.view === view) {
    // The connection was cut before the run's last event: the run goes on, follow the rest.
    const source = follow(
      session.eventSourceUrl(`/runs/${current.runId}/events`, current.lastEventId),
      (event) => handle(current, event),
      () => endTurn(current),
    );
    current.close = source.close;
  } else if (!current.finished) {
    endTurn(current);
  }
}

function startTurn(text = null) {
  closeTurn();
  turn = { view, text, runId: null, answer: null, lastEventId: "", finished: false, close() {} };
  return turn;
}

function endTurn(current) {
  current.finished = true;
  if (turn !== current) return;
  turn = null;
  $("send").disabled = false;
  $("stop").hidden = true;
}

function closeTurn() {
  if (!turn) return;
  const current = turn;
  current.close();
  endTurn(current);
}

function handle(current, event) {
  if (current.view !== view || current.finished) return;
  if (!current.answer) {
    current.answer = new Answer();
    $("messages").append(current.answer.node);
  }
  const answer = current.answer;
  switch (event.type) {
    case "start":
      current.runId = event.run_id;
      current.text ??= document.querySelector(
        `.message.user[data-message-id="${event.message_id}"] .content`,
      )?.textContent;
      document.querySelector(".message.user:not([data-message-id])")
        ?.setAttribute("data-message-id", event.message_id);
      $("send").disabled = true;
      $("stop").hidden = false;
      $("stop").disabled = false;
      if (conversationId !== event.conversation_id) {
        conversationId = event.conversation_id;
        sessionStorage.setItem(CONVERSATION_KEY, conversationId);
        refreshConversations().then(showTitle);
      }
      break;
    case "thinking":
      answer.thinking(event.message, event.seq);
      break;
    case "tool_call":
      answer.toolCall(event);
      break;
    case "tool_result":
      answer.toolResult(event);
      refreshTasks();
      break;
    case "text":
      answer.text(event.content, event.seq);
      break;
    case "done":
      answer.finish(event.status, event.message_id);
      endTurn(current);
      refreshConversations();
      break;
    case "error":
      // With `stored_through`, the answer was stored up to there by another instance after
      // this one stopped: the part shown past it is marked (render.js).
      answer.failed(event, () => retry(current));
      endTurn(current);
      break;
  }
  scrollToEnd();
}

function retry(current) {
  if (turn || !current.text) return;
  send(current.text);
}

function offerFollow(text) {
  $("message").value ||= text;
  const followIt = element("button", { type: "button", onclick: () => {
    hideNotice();
    openConversation(conversationId);
  } }, "Follow it");
  const stopIt = element("button", { type: "button", onclick: () => {
    hideNotice();
    $("message").value = "";
    send(text, { cancelActive: true });
  } }, "Stop it and send mine");
  showNotice("An answer is still being written in this conversation.", followIt, stopIt);
  followIt.focus();
}

// ---- tasks ----

const TASK_PAGE = 1000; // the API's largest page
let tasksRead = 0;

async function refreshTasks(focus) {
  const read = ++tasksRead;
  const tasks = await allTasks().catch(failed);
  if (!tasks || read !== tasksRead) return; // a later read is on its way
  $("tasks").replaceChildren(...tasks.map((task) => taskItem(task, taskActions)));
  $("tasks-empty").hidden = tasks.length > 0;
  if (focus) (document.querySelector(focus) || $("tasks-heading")).focus();
}

// Every task, page after page: the list is the user's whole list, as the assistant sees it.
async function allTasks() {
  const tasks = [];
  let after = null;
  do {
    const query = new URLSearchParams({ status: "all", limit: TASK_PAGE });
    if (after !== null) query.set("after", after);
    const body = await session.request("GET", `/tasks?${query}`);
    tasks.push(...body.tasks);
    after = body.next_after;
  } while (after !== null);
  return tasks;
}

const taskActions = {
  complete: (task, completed) => changeTask(task, { completed }, `#task-${task.id}`),
  rename: (task, title) => changeTask(task, { title }, `[data-task-id="${task.id}"] .rename`),
  async remove(task) {
    const next = document.querySelector(`[data-task-id="${task.id}"]`)?.nextElementSibling;
    await session.request("DELETE", `/tasks/${task.id}`).catch(failed);
    await refreshTasks(next ? `#task-${next.dataset.taskId}` : undefined);
  },
};

async function changeTask(task, changes, focus) {
  await session.request("PATCH", `/tasks/${task.id}`, changes).catch(failed);
  await refreshTasks(focus);
}

// ---- small things ----

function failed(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("Your session has ended: sign in again.");
  } else {
    showNotice(error.message);
  }
  return null;
}

function showNotice(message, ...buttons) {
  $("notice").replaceChildren(element("p", { text: message }), ...buttons);
  $("notice").hidden = false;
}

function hideNotice() {
  $("notice").hidden = true;
  $("notice").replaceChildren();
}

function showTitle() {
  const current = document.querySelector(`#conversations .open[data-id="${conversationId}"]`);
  if (current) $("conversation-title").textContent = current.textContent;
}

function lastRole() {
  const last = $("messages").lastElementChild;
  return last && (last.classList.contains("user") ? "user" : "assistant");
}

function scrollToEnd() {
  const messages = $("messages");
  messages.scrollTop = messages.scrollHeight;
}

const restored = Session.restore();
if (restored) begin(restored);
else showSignIn();
