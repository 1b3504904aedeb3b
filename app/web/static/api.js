// The session (a token and its user) and the REST calls the page makes with it.
//
// The token travels in the Authorization header. The one exception is EventSource, which
// cannot send headers: `eventSourceUrl` puts it in `?access_token=` on the two GET streams the
// service accepts it on (their query strings are never logged). It is kept in sessionStorage,
// which lives as long as the tab (so a reload resumes), and in localStorage only when the user
// ticks "Remember me".

const KEY = "todo-chat.token";
// The claim that holds the user's id, as the service reads it (JWT_USER_CLAIM).
const USER_CLAIM = document.querySelector('meta[name="todo-chat-user-claim"]').content;

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `The service answered ${status}.`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error;
  }
}

export class Session {
  constructor(token) {
    this.token = token;
    this.userId = userOf(token);
  }

  static restore() {
    const token = sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
    if (!token) return null;
    if (!usable(token)) {
      Session.forget();
      return null;
    }
    return new Session(token);
  }

  static start(token, { remember = false } = {}) {
    if (!usable(token)) throw new Error("That token cannot be used (no user, or expired).");
    sessionStorage.setItem(KEY, token);
    if (remember) localStorage.setItem(KEY, token);
    return new Session(token);
  }

  static forget() {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  }

  path(path) {
    return `/api/${encodeURIComponent(this.userId)}${path}`;
  }

  async request(method, path, body) {
    const response = await fetch(this.path(path), {
      method,
      headers: {
        Authorization: `Bearer ${this.token}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 204) return null;
    const json = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, json);
    return json;
  }

  // The answer to one message, as a standard event stream (see sse.js). `key` is the send's
  // Idempotency-Key: the same key sent again joins the run the first send started.
  async stream(body, signal, key) {
    const response = await fetch(this.path("/chat/stream"), {
      method: "POST",
      headers: {
        Authorization: `Bearer ${this.token}`,
        "Content-Type": "application/json",
        Accept: "text/event-stream",
        "Idempotency-Key": key,
      },
      body: JSON.stringify(body),
      signal,
    });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
    return response;
  }

  eventSourceUrl(path, lastEventId) {
    const query = new URLSearchParams({ access_token: this.token });
    if (lastEventId) query.set("last_event_id", lastEventId);
    return `${this.path(path)}?${query}`;
  }
}

export async function developmentToken(userId) {
  const response = await fetch("/dev/token", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user_id: userId }),
  });
  const json = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, json);
  return json.token;
}

function claims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return {};
  }
}

function userOf(token) {
  const id = claims(token)[USER_CLAIM];
  return typeof id === "string" || typeof id === "number" ? String(id) : "";
}

function usable(token) {
  const { exp } = claims(token);
  return userOf(token) !== "" && (!exp || exp * 1000 > Date.now());
}

// 128 random bits as hex. crypto.getRandomValues, not randomUUID: the page may be served over
// plain HTTP on a LAN address, where randomUUID does not exist.
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
