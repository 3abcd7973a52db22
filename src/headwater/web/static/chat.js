// Chat with any app: streamed tokens, citations, attachments, human-input prompts answered in
// place, a Stop button (DELETE /v1/runs/{id}) and, for each answer, a link to its run.
//   chatbot            POST /v1/chat/completions (OpenAI-compatible, streamed; attachments as content parts)
//   chatflow/workflow  POST /v1/runs?stream=true (engine events), POST /v1/runs/{id}/input to answer a pause
import { formatBytes, h, replace, uid } from "./dom.js";
import { ApiError, del, get, raw, sseEvents } from "./api.js";
import { alertBox, describeError, emptyState, field, formatScore, icon, pageHeader } from "./ui.js";

const MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024;

export async function render(container, { rest }) {
  const apps = (await get("/v1/apps")).filter((app) => app.kind !== "agent");
  if (!apps.length) {
    replace(container, pageHeader("Chat"), emptyState("No app to chat with yet.", h("a", { class: "button primary", href: "#/apps/new/chatbot" }, "New chatbot")));
    return null;
  }
  const wanted = rest[0] ? apps.find((a) => a.id === rest[0] || a.slug === rest[0]) : null;
  if (!wanted) {
    location.replace(`#/chat/${encodeURIComponent(apps[0].id)}`);
    return null;
  }
  const app = await get(`/v1/apps/${encodeURIComponent(wanted.id)}`);
  return renderChat(container, app, apps);
}

function renderChat(container, app, apps) {
  const box = alertBox();
  const picker = h("select", { "aria-label": "App" }, apps.map((a) => h("option", { value: a.id, selected: a.id === app.id }, `${a.name} (${a.kind})`)));
  picker.addEventListener("change", () => { location.hash = `#/chat/${encodeURIComponent(picker.value)}`; });
  const newConversation = h("button", { type: "button", class: "button" }, "New conversation");
  const log = h("ol", { class: "chat-log", role: "log", "aria-live": "polite", "aria-label": "Conversation" });
  const state = { conversationId: null, busy: false, runId: null, controller: null, stopRequested: false };
  newConversation.addEventListener("click", () => {
    if (state.busy) return;
    state.conversationId = null;
    replace(log);
    box.clear();
    message.focus();
  });

  const startNode = app.graph?.nodes?.find((n) => n.type === "start");
  const declared = (startNode?.inputs || []).filter((spec) => !(app.kind === "chatflow" && spec.name === "query"));
  const inputFields = declared.map((spec) => {
    const control = spec.type === "string" || !spec.type
      ? h("textarea", { rows: 2, name: spec.name, required: Boolean(spec.required) })
      : h("input", { name: spec.name, required: Boolean(spec.required), placeholder: spec.type });
    control.dataset.type = spec.type || "string";
    return { spec, control, el: field(`${spec.name}${spec.required ? " *" : ""}`, control, spec.description || `${spec.type || "string"} input`) };
  });

  const messageId = uid("message");
  const message = h("textarea", { id: messageId, rows: 2, name: "message", placeholder: app.kind === "workflow" ? "" : "Write a message…" });
  const attachInput = h("input", { type: "file", multiple: true, class: "sr-only", id: uid("attach"),
    accept: "image/*,.pdf,.txt,.md,.html,.csv,.json,.docx,.pptx" });
  const attachLabel = h("label", { for: attachInput.id, class: "button ghost", tabindex: "0", role: "button" }, icon("clip"), "Attach");
  attachLabel.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      attachInput.click();
    }
  });
  const chips = h("ul", { class: "chips", "aria-label": "Attachments" });
  let attachments = [];
  const renderChips = () => {
    replace(chips, attachments.map((file, index) => {
      const remove = h("button", { type: "button", class: "icon-button", "aria-label": `Remove ${file.name}` }, "✕");
      remove.addEventListener("click", () => {
        attachments.splice(index, 1);
        renderChips();
      });
      return h("li", { class: "chip" }, `${file.name} · ${formatBytes(file.size)}`, remove);
    }));
  };
  attachInput.addEventListener("change", () => {
    for (const file of attachInput.files) {
      if (file.size > MAX_ATTACHMENT_BYTES) box.show(`${file.name} is larger than 10 MiB and was not attached.`);
      else attachments.push(file);
    }
    attachInput.value = "";
    renderChips();
  });
  const send = h("button", { type: "submit", class: "button primary" }, app.kind === "workflow" ? "Run" : "Send");
  const stop = h("button", { type: "button", class: "button danger", hidden: true }, "Stop");
  const composer = h("form", { class: "composer card" },
    inputFields.length ? h("div", { class: "inputs" }, inputFields.map((f) => f.el)) : null,
    app.kind === "workflow" ? null : h("label", { for: messageId, class: "sr-only" }, "Message"),
    app.kind === "workflow" ? null : message,
    app.kind === "chatbot" ? chips : null,
    h("div", { class: "composer-actions" }, app.kind === "chatbot" ? [attachInput, attachLabel] : null,
      h("span", { class: "spacer" }), stop, send),
  );
  message.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });

  const setBusy = (busy) => {
    state.busy = busy;
    send.disabled = busy;
    stop.hidden = !busy;
    newConversation.disabled = busy;
    picker.disabled = busy;
    if (!busy) {
      state.controller = null;
      message.focus();
    }
  };

  stop.addEventListener("click", async () => {
    if (!state.runId) return;
    stop.disabled = true;
    state.stopRequested = true;
    try {
      await del(`/v1/runs/${encodeURIComponent(state.runId)}`);
    } catch (err) {
      box.fail(err, "The run could not be stopped");
    } finally {
      stop.disabled = false;
      // The stream ends with the run; if it does not within a few seconds, stop reading.
      const controller = state.controller;
      setTimeout(() => controller?.abort(), 3000);
    }
  });

  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (state.busy) return;
    box.clear();
    const text = message.value.trim();
    const inputs = {};
    for (const { spec, control } of inputFields) {
      const value = control.value.trim();
      if (!value) {
        if (spec.required) {
          box.show(`Fill in the input "${spec.name}".`);
          control.focus();
          return;
        }
        continue;
      }
      inputs[spec.name] = coerce(value, control.dataset.type);
    }
    if (app.kind !== "workflow" && !text && !attachments.length) {
      message.focus();
      return;
    }
    const sent = attachments;
    attachments = [];
    renderChips();
    message.value = "";
    const userText = app.kind === "workflow" ? Object.entries(inputs).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join("\n") || "(no inputs)" : text;
    log.append(h("li", { class: "msg msg-user" }, h("div", { class: "msg-role" }, "You"), h("div", { class: "msg-text" }, userText),
      sent.length ? h("div", { class: "muted" }, `Attached: ${sent.map((f) => f.name).join(", ")}`) : null));
    const answer = answerBubble(app);
    log.append(answer.el);
    answer.el.scrollIntoView({ block: "end" });
    setBusy(true);
    state.stopRequested = false;
    state.runId = null;
    state.controller = new AbortController();
    try {
      if (app.kind === "chatbot") await chatbotTurn(app, text, sent, state, answer);
      else await flowTurn(app, app.kind === "chatflow" ? { ...inputs, query: text } : inputs, state, answer, box, setBusy);
    } catch (err) {
      if (err.name === "AbortError") answer.finish(state.stopRequested ? "stopped" : "interrupted");
      else answer.fail(err);
      if (err instanceof ApiError && err.runId) answer.setRun(err.runId);
    } finally {
      if (!answer.waiting) setBusy(false);
    }
  });

  replace(container,
    pageHeader("Chat", h("a", { class: "button ghost", href: `#/apps/${encodeURIComponent(app.id)}` }, "Edit app")),
    h("div", { class: "chat-toolbar" }, h("label", { class: "sr-only", for: picker.id = uid("app") }, "App"), picker, newConversation),
    box, log, composer);
  (app.kind === "workflow" ? inputFields[0]?.control : message)?.focus();
  return () => {
    if (state.controller) state.controller.abort();
  };
}

function coerce(value, type) {
  if (type === "number" || type === "integer") return Number(value);
  if (type === "boolean") return ["true", "yes", "1", "on"].includes(value.toLowerCase());
  if (type === "object" || type === "array" || type === "any") {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

function answerBubble(app) {
  const text = h("div", { class: "msg-text" });
  const meta = h("div", { class: "msg-meta" }, h("span", { class: "typing" }, "…"));
  const extra = h("div", { class: "msg-extra" });
  const el = h("li", { class: "msg msg-assistant", "aria-busy": "true" }, h("div", { class: "msg-role" }, app.name), text, extra, meta);
  let runId = null;
  const bubble = {
    el, text, extra, waiting: false,
    append(chunk) {
      text.append(chunk);
    },
    setText(value) {
      text.textContent = value;
    },
    setRun(id) {
      runId = id;
      el.dataset.runId = id;
    },
    finish(status, usage) {
      el.removeAttribute("aria-busy");
      const parts = [];
      if (status && status !== "succeeded" && status !== "stop") parts.push(h("span", { class: `badge status-${status}` }, status));
      if (usage && usage.total_tokens) parts.push(h("span", { class: "muted" }, `${usage.total_tokens} tokens`));
      if (runId) parts.push(h("a", { href: `#/runs/${encodeURIComponent(runId)}`, class: "run-link" }, "View run ›"));
      replace(meta, parts);
    },
    fail(err) {
      extra.append(h("p", { class: "alert alert-error", role: "alert" }, describeError(err, "This answer failed")));
      bubble.finish("failed");
    },
    citations(items) {
      if (!items || !items.length) return;
      extra.append(h("details", { class: "citations" },
        h("summary", {}, `${items.length} source${items.length === 1 ? "" : "s"}`),
        h("ol", {}, items.map((c) => h("li", {},
          c.url ? h("a", { href: c.url, target: "_blank", rel: "noopener noreferrer" }, c.title || c.url) : h("strong", {}, c.title || c.file_name || "document"),
          typeof c.score === "number" ? h("span", { class: "muted" }, ` · score ${formatScore(c.score)}`) : null,
          c.text ? h("blockquote", {}, c.text.length > 400 ? `${c.text.slice(0, 400)}…` : c.text) : null)))));
    },
  };
  return bubble;
}

async function toDataUri(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`${file.name} could not be read`));
    reader.readAsDataURL(file);
  });
}

async function chatbotTurn(app, text, files, state, answer) {
  let content = text;
  if (files.length) {
    content = text ? [{ type: "text", text }] : [];
    for (const file of files) {
      const uri = await toDataUri(file);
      if (file.type.startsWith("image/")) content.push({ type: "image_url", image_url: { url: uri } });
      else {
        // Waterflai's file form: data:<mime>;filename=<name>;base64,<data>
        const [head, data] = uri.split(",", 2);
        const mime = head.slice(5).replace(/;base64$/, "") || "application/octet-stream";
        content.push({ type: "file", file: { filename: file.name, file_data: `data:${mime};filename=${encodeURIComponent(file.name)};base64,${data}` } });
      }
    }
  }
  const body = { model: app.id, messages: [{ role: "user", content }], stream: true, stream_options: { include_usage: true } };
  if (state.conversationId) body.conversation_id = state.conversationId;
  const response = await raw("POST", "/v1/chat/completions", { json: body, signal: state.controller.signal });
  state.runId = response.headers.get("X-Run-Id");
  if (state.runId) answer.setRun(state.runId);
  let finish = null;
  let usage = null;
  for await (const message of sseEvents(response)) {
    const data = message.data;
    if (data === "[DONE]") break;
    if (!data || typeof data !== "object") continue;
    if (data.error) throw new ApiError(502, data.error.message || "the model failed", state.runId);
    if (data.conversation_id) state.conversationId = data.conversation_id;
    if (data.usage) usage = data.usage;
    const choice = data.choices && data.choices[0];
    if (choice && choice.delta && choice.delta.content) answer.append(choice.delta.content);
    if (choice && choice.finish_reason) finish = choice.finish_reason;
  }
  let status = state.stopRequested ? "cancelled" : finish === "length" ? "length" : "succeeded";
  if (state.runId) {
    try {
      const run = await get(`/v1/runs/${encodeURIComponent(state.runId)}`);
      status = run.status;
      usage = run.usage || usage;
      if ((app.config.knowledge_bases || []).length) {
        const events = await get(`/v1/runs/${encodeURIComponent(state.runId)}/events`);
        const cited = events.find((e) => e.type === "citations");
        if (cited) answer.citations(cited.data.citations);
      }
    } catch {
      // the answer is shown; its run details are a bonus
    }
  }
  answer.finish(status, usage);
}

async function flowTurn(app, inputs, state, answer, box, setBusy) {
  const body = { app_id: app.id, inputs };
  if (state.conversationId) body.session_id = state.conversationId;
  const response = await raw("POST", "/v1/runs?stream=true", { json: body, signal: state.controller.signal });
  state.runId = response.headers.get("X-Run-Id");
  if (state.runId) answer.setRun(state.runId);
  await followFlow(app, response, state, answer, box, setBusy);
}

async function followFlow(app, response, state, answer, box, setBusy) {
  let streamed = "";
  let outcome = null;
  const pauses = [];
  for await (const { event, data } of sseEvents(response)) {
    if (event === "run_started" && data.session_id) state.conversationId = data.session_id;
    else if (event === "token") {
      streamed += data.text;
      answer.append(data.text);
    } else if (event === "citations") answer.citations(data.citations);
    else if (event === "human_input_required") pauses.push(data);
    else if (event === "error") answer.extra.append(h("p", { class: "alert alert-error", role: "alert" }, `The run failed: ${data.message}`));
    else if (event === "run_finished") outcome = data;
  }
  if (outcome && app.kind === "chatflow" && typeof outcome.outputs?.text === "string" && outcome.outputs.text !== streamed) {
    answer.setText(outcome.outputs.text);
  } else if (outcome && app.kind === "workflow" && outcome.outputs && Object.keys(outcome.outputs).length) {
    answer.extra.append(h("pre", { class: "code-block" }, JSON.stringify(outcome.outputs, null, 2)));
  }
  if (pauses.length && (!outcome || outcome.status === "waiting")) {
    answer.finish("waiting", outcome?.usage);
    for (const pause of pauses) humanInput(app, pause, state, answer, box, setBusy);
    return;
  }
  answer.finish(outcome ? outcome.status : state.stopRequested ? "cancelled" : "interrupted", outcome?.usage);
}

// A human-input pause, answered in place: the answer resumes the same run.
function humanInput(app, pause, state, answer, box, setBusy) {
  answer.waiting = true;
  const inputId = uid("human");
  const reply = h("textarea", { id: inputId, rows: 2, required: true });
  const submit = h("button", { type: "submit", class: "button primary" }, "Answer");
  const form = h("form", { class: "human-input" },
    h("label", { for: inputId }, pause.prompt || "The app asks for your input"), reply, h("div", { class: "actions" }, submit));
  answer.extra.append(form);
  reply.focus();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!reply.value.trim()) return;
    submit.disabled = true;
    reply.readOnly = true;
    setBusy(true);
    state.controller = new AbortController();
    const next = answerBubble(app);
    next.setRun(state.runId);
    form.after(h("p", { class: "muted" }, `You answered: ${reply.value.trim()}`));
    form.remove();
    answer.el.after(next.el);
    try {
      const response = await raw("POST", `/v1/runs/${encodeURIComponent(state.runId)}/input?stream=true`,
        { json: { message: reply.value.trim(), node_id: pause.node_id }, signal: state.controller.signal });
      await followFlow(app, response, state, next, box, setBusy);
    } catch (err) {
      if (err.name === "AbortError") next.finish(state.stopRequested ? "stopped" : "interrupted");
      else next.fail(err);
    } finally {
      answer.waiting = false;
      if (!next.waiting) setBusy(false);
    }
  });
}
