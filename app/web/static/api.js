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
    if (tokenProblem(token) !== null) {
      Session.forget();
      return null;
    }
    return new Session(token);
  }

  static start(token, { remember = false } = {}) {
    const problem = tokenProblem(token);
    if (problem !== null) throw new Error(problem);
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

// A JSON integer as JSON writes it: the only numbers that are user ids.
const WHOLE_NUMBER = /^-?(0|[1-9][0-9]*)$/;

// The token's claims (UTF-8 JSON), and the user claim's source text when it is a number:
// JSON.parse alone rounds a whole number past 2^53 and cannot tell 1 from 1.0.
function readClaims(token) {
  try {
    const base64 = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    const sources = new Map();
    const claims = JSON.parse(new TextDecoder().decode(bytes), function (key, value, context) {
      if (key === USER_CLAIM && typeof value === "number") sources.set(this, context?.source);
      return value;
    });
    if (claims === null || typeof claims !== "object") return { claims: {} };
    return { claims, numberSource: sources.get(claims) };
  } catch {
    return { claims: {} };
  }
}

// The user's id by the service's rule (`user_of` in app/web/auth.py): a non-empty string as it
// is, a whole number as its decimal digits; "" for anything else. A browser without JSON.parse's
// source text keeps the whole numbers a JavaScript number holds exactly.
export function userOf(token) {
  const { claims, numberSource } = readClaims(token);
  const id = claims[USER_CLAIM];
  if (typeof id === "string") return id;
  if (typeof id !== "number") return "";
  if (numberSource === undefined) return Number.isSafeInteger(id) ? String(id) : "";
  return WHOLE_NUMBER.test(numberSource) ? BigInt(numberSource).toString() : "";
}

// Why a token cannot be used, in words for the sign-in screen; null when it can.
export function tokenProblem(token) {
  const { claims } = readClaims(token);
  const id = claims[USER_CLAIM];
  if (id === undefined || id === null || id === "") return "That token names no user.";
  if (userOf(token) === "") {
    return `That token's "${USER_CLAIM}" claim must be a user id: a string or a whole number.`;
  }
  const { exp } = claims;
  if (exp && exp * 1000 <= Date.now()) return "That token has expired.";
  return null;
}

// 128 random bits as hex. crypto.getRandomValues, not randomUUID: the page may be served over
// plain HTTP on a LAN address, where randomUUID does not exist.
export function idempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}
