// DOM for messages, answers and tasks. Text always goes in as textContent, never as HTML.

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

export function userMessage(content, id) {
  return element(
    "div",
    { class: "message user", "data-message-id": id },
    element("span", { class: "visually-hidden", text: "You: " }),
    element("p", { class: "content", text: content }),
  );
}

const STATUS_LABELS = {
  cancelled: "Stopped",
  incomplete: "Incomplete",
  error: "The answer failed.",
};

// One assistant message: steps (thinking, tool calls) above the answer's text. While it streams,
// each part remembers the seq of the event that drew it (`data-seq`; `texts` for the text), so
// that a final event saying the stored answer ends earlier (`stored_through`) can mark what
// was shown past it.
export class Answer {
  constructor() {
    this.node = element("article", { class: "message assistant", "aria-label": "Assistant" });
    this.steps = element("div", { class: "steps" });
    this.content = element("p", { class: "content" });
    this.footer = element("div", { class: "footer" });
    this.node.append(this.steps, this.content, this.footer);
    this.calls = new Map();
    this.texts = []; // [seq, length] of each piece of the text, in order
  }

  static stored(message) {
    const answer = new Answer();
    answer.node.dataset.messageId = message.id;
    for (const call of message.tool_calls) {
      answer.toolCall(call);
      answer.toolResult(call);
    }
    answer.content.textContent = message.content;
    answer.finish(message.status);
    return answer;
  }

  thinking(text, seq) {
    this.steps.append(element("p", { class: "thinking", "data-seq": seq, text }));
  }

  toolCall({ call_id, name, arguments: args, seq }) {
    const result = element("pre", { class: "result", text: "running…" });
    const details = element(
      "details",
      { class: "tool-call", "data-call-id": call_id, "data-seq": seq },
      element("summary", {}, "Tool ", element("code", { text: name })),
      element("p", { class: "label", text: "Arguments" }),
      element("pre", { class: "arguments", text: JSON.stringify(args, null, 2) }),
      element("p", { class: "label", text: "Result" }),
      result,
    );
    this.calls.set(call_id, result);
    this.steps.append(details);
  }

  toolResult({ call_id, output, seq }) {
    const result = this.calls.get(call_id);
    if (!result) return;
    result.textContent = JSON.stringify(output, null, 2);
    if (seq !== undefined) result.dataset.seq = seq;
  }

  text(content, seq) {
    this.content.textContent += content;
    this.texts.push([seq, content.length]);
  }

  finish(status, messageId) {
    this.node.dataset.status = status;
    if (messageId !== undefined) this.node.dataset.messageId = messageId;
    const label = STATUS_LABELS[status];
    if (label) this.footer.append(element("p", { class: `status ${status}`, text: label }));
  }

  failed({ message, retryable, stored_through: storedThrough }, retry) {
    this.node.dataset.status = "error";
    if (storedThrough !== undefined) this.unsaved(storedThrough);
    this.footer.append(element("p", { class: "error", role: "alert", text: message }));
    if (retryable) {
      const button = element("button", { type: "button", class: "retry", onclick: () => {
        button.disabled = true; // one retry per failed answer
        retry();
      } }, "Retry");
      this.footer.append(button);
    }
  }

  // The service stopped and another instance stored the answer up to `storedThrough`: what
  // this page was shown past it was never saved. It stays, struck through and said so, so
  // that nothing read vanishes; a reload shows the stored answer alone.
  unsaved(storedThrough) {
    let kept = 0;
    for (const [seq, length] of this.texts) if (seq <= storedThrough) kept += length;
    const text = this.content.textContent;
    let marked = false;
    if (kept < text.length) {
      this.content.replaceChildren(
        text.slice(0, kept),
        element("del", { class: "unsaved", text: text.slice(kept) }),
      );
      marked = true;
    }
    for (const part of this.steps.querySelectorAll("[data-seq]")) {
      if (Number(part.dataset.seq) > storedThrough) {
        part.classList.add("unsaved");
        marked = true;
      }
    }
    if (marked) {
      this.footer.append(element("p", {
        class: "unsaved-note",
        text: "The service stopped before the struck-through part was saved: it is not part of the answer.",
      }));
    }
  }
}

export function taskItem(task, actions) {
  const id = `task-${task.id}`;
  const title = element("label", { for: id, class: "title", text: task.title });
  const item = element(
    "li",
    { "data-task-id": task.id, class: task.completed ? "done" : undefined },
    element("input", {
      id,
      type: "checkbox",
      checked: task.completed,
      onchange: (event) => actions.complete(task, event.target.checked),
    }),
    title,
    element("button", { type: "button", class: "rename", "aria-label": `Rename ${task.title}`,
      onclick: () => renameForm(item, title, task, actions) }, "Rename"),
    element("button", { type: "button", class: "delete", "aria-label": `Delete ${task.title}`,
      onclick: () => actions.remove(task) }, "Delete"),
  );
  return item;
}

function renameForm(item, title, task, actions) {
  const input = element("input", { value: task.title, "aria-label": `New title for ${task.title}`,
    required: true });
  const form = element("form", { class: "rename-form" }, input,
    element("button", { type: "submit" }, "Save"));
  const close = () => { form.replaceWith(title); item.querySelector(".rename").focus(); };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    actions.rename(task, input.value.trim());
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") close();
  });
  title.replaceWith(form);
  input.focus();
  input.select();
}
