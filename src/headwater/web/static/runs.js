// Runs: a filtered list, and a run's node-by-node timeline that follows GET /v1/runs/{id}/stream live
// (the stream replays the run's events from the start, then follows it until it ends).
import { formatDate, formatDuration, h, pretty, replace, statusBadge, uid } from "./dom.js";
import { ApiError, del, get, raw, sseEvents } from "./api.js";
import { alertBox, emptyState, pageHeader, toast } from "./ui.js";

const STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled", "interrupted"];
const LIVE = new Set(["queued", "running", "waiting"]);

export async function render(container, { rest, query }) {
  if (rest[0]) return renderRun(container, rest[0]);
  return renderList(container, query);
}

function totalTokens(usage) {
  if (!usage) return null;
  return usage.total_tokens ?? ((usage.prompt_tokens || 0) + (usage.completion_tokens || 0));
}

function durationOf(run) {
  if (run.elapsed_ms !== null && run.elapsed_ms !== undefined) return run.elapsed_ms;
  const start = run.started_at || run.created_at;
  if (!start) return null;
  const end = run.finished_at ? new Date(run.finished_at) : LIVE.has(run.status) ? new Date() : null;
  return end ? end - new Date(start) : null;
}

// ---- list -------------------------------------------------------------------------------------

async function renderList(container, query) {
  const box = alertBox();
  const apps = await get("/v1/apps");
  const appNames = new Map(apps.map((a) => [a.id, a.name]));
  const appFilter = h("select", { id: uid("f-app") }, h("option", { value: "" }, "All apps"),
    apps.map((a) => h("option", { value: a.id, selected: query.get("app") === a.id }, a.name)));
  const statusFilter = h("select", { id: uid("f-status") }, h("option", { value: "" }, "Any status"),
    STATUSES.map((s) => h("option", { value: s, selected: query.get("status") === s }, s)));
  const sinceFilter = h("select", { id: uid("f-since") }, [["", "Any time"], ["1", "Last hour"], ["24", "Last day"], ["168", "Last week"]]
    .map(([v, label]) => h("option", { value: v, selected: query.get("since") === v }, label)));
  const refresh = h("button", { type: "button", class: "button" }, "Refresh");
  const filters = h("form", { class: "filters card", "aria-label": "Filters" },
    h("div", { class: "field" }, h("label", { for: appFilter.id }, "App"), appFilter),
    h("div", { class: "field" }, h("label", { for: statusFilter.id }, "Status"), statusFilter),
    h("div", { class: "field" }, h("label", { for: sinceFilter.id }, "Started"), sinceFilter),
    h("div", { class: "field field-button" }, refresh));
  const table = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading runs…"));
  replace(container, pageHeader("Runs"), filters, box, table);

  const load = async () => {
    box.clear();
    const params = new URLSearchParams({ limit: "200" });
    if (appFilter.value) params.set("app_id", appFilter.value);
    const hash = new URLSearchParams();
    if (appFilter.value) hash.set("app", appFilter.value);
    if (statusFilter.value) hash.set("status", statusFilter.value);
    if (sinceFilter.value) hash.set("since", sinceFilter.value);
    history.replaceState(null, "", `#/runs${hash.toString() ? `?${hash}` : ""}`);
    try {
      let runs = await get(`/v1/runs?${params}`);
      if (statusFilter.value) runs = runs.filter((r) => r.status === statusFilter.value);
      if (sinceFilter.value) {
        const after = Date.now() - Number(sinceFilter.value) * 3600 * 1000;
        runs = runs.filter((r) => new Date(r.created_at).getTime() >= after);
      }
      if (!runs.length) {
        replace(table, emptyState("No runs match these filters."));
        return;
      }
      replace(table, h("table", { class: "table runs-table" },
        h("caption", { class: "sr-only" }, "Runs, newest first"),
        h("thead", {}, h("tr", {}, ["App", "Status", "Started", "Duration", "Tokens"].map((t, i) =>
          h("th", { scope: "col", class: i >= 3 ? "num hide-narrow" : "" }, t)))),
        h("tbody", {}, runs.map((run) => h("tr", { dataset: { runId: run.id } },
          h("td", {}, h("a", { href: `#/runs/${encodeURIComponent(run.id)}` }, appNames.get(run.app_id) || (run.app_id ? "deleted app" : "—")),
            h("div", { class: "muted small" }, run.source)),
          h("td", {}, statusBadge(run.status)),
          h("td", {}, formatDate(run.created_at)),
          h("td", { class: "num hide-narrow" }, formatDuration(durationOf(run))),
          h("td", { class: "num hide-narrow" }, String(totalTokens(run.usage) ?? "—"))))),
      ));
    } catch (err) {
      box.fail(err, "The runs could not be listed");
      replace(table);
    }
  };
  for (const control of [appFilter, statusFilter, sinceFilter]) control.addEventListener("change", load);
  refresh.addEventListener("click", load);
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  await load();
  return null;
}

// ---- one run ------------------------------------------------------------------------------------

async function renderRun(container, runId) {
  const box = alertBox();
  let run = await get(`/v1/runs/${encodeURIComponent(runId)}`);
  let appName = run.app_id;
  try {
    if (run.app_id) appName = (await get(`/v1/apps/${encodeURIComponent(run.app_id)}`)).name;
  } catch {
    appName = run.app_id ? "deleted app" : "—";
  }
  const summary = h("dl", { class: "facts run-facts" });
  const stopButton = h("button", { type: "button", class: "button danger" }, "Stop run");
  const liveNote = h("span", { class: "live-note muted", role: "status" });
  const outputs = h("div", { class: "run-io" });
  const timeline = h("ol", { class: "timeline", "aria-label": "Node timeline" });
  const controller = new AbortController();
  const nodes = new Map(); // key → entry state
  let runStart = run.started_at ? new Date(run.started_at).getTime() : new Date(run.created_at).getTime();

  const renderSummary = () => {
    replace(summary,
      h("dt", {}, "Status"), h("dd", { class: "run-status" }, statusBadge(run.status)),
      h("dt", {}, "App"), h("dd", {}, run.app_id ? h("a", { href: `#/apps/${encodeURIComponent(run.app_id)}` }, appName) : appName),
      h("dt", {}, "Kind"), h("dd", {}, run.kind || "—"),
      h("dt", {}, "Started"), h("dd", {}, formatDate(run.started_at || run.created_at)),
      h("dt", {}, "Duration"), h("dd", {}, formatDuration(durationOf(run))),
      h("dt", {}, "Tokens"), h("dd", {}, String(totalTokens(run.usage) ?? "—")),
      h("dt", {}, "Source"), h("dd", {}, run.source || "—"),
      h("dt", {}, "Run id"), h("dd", {}, h("code", {}, run.id)));
    stopButton.hidden = !LIVE.has(run.status);
    replace(outputs,
      io("Inputs", run.inputs),
      run.outputs && Object.keys(run.outputs).length ? io("Outputs", run.outputs) : null,
      run.error ? h("div", { class: "alert alert-error", role: "alert" }, `Error: ${run.error.message || pretty(run.error)}`) : null);
  };

  const entryFor = (data) => {
    const key = [data.node_id, data.parent ?? "", data.index ?? ""].join("|");
    let entry = nodes.get(key);
    if (!entry) {
      entry = { key, nodeId: data.node_id, type: data.node_type, status: "running", start: null, elapsed: null, text: "", data: {} };
      entry.el = h("li", { class: "tl-item", dataset: { nodeId: data.node_id } });
      nodes.set(key, entry);
      timeline.append(entry.el);
    }
    return entry;
  };
  const drawEntry = (entry) => {
    if (entry.status === "running" && !LIVE.has(run.status)) {
      // The run ended while this node was working (stopped, failed elsewhere): it ended with it.
      entry.status = ["cancelled", "failed"].includes(run.status) ? run.status : "interrupted";
      if (entry.elapsed === null && run.finished_at) {
        entry.elapsed = Math.max(0, new Date(run.finished_at).getTime() - runStart - (entry.start ?? 0));
      }
    }
    const offset = entry.start ?? 0;
    const width = entry.elapsed ?? (entry.status === "running" ? Math.max(0, Date.now() - runStart - offset) : 0);
    const total = Math.max(1, durationOf(run) || 0, offset + width,
      ...[...nodes.values()].map((e) => (e.start ?? 0) + (e.elapsed ?? 0)));
    const bar = h("div", { class: "tl-bar", "aria-hidden": "true" });
    const fill = h("span", { class: `tl-fill status-${entry.status}` });
    // Position and length on the run's time axis; never thinner than a sliver, never past the end.
    const length = Math.max(1.5, Math.min(100, (width / total) * 100));
    fill.style.marginLeft = `${Math.min((offset / total) * 100, 100 - length)}%`;
    fill.style.width = `${length}%`;
    bar.append(fill);
    const d = entry.data;
    const details = [];
    if (d.inputs && Object.keys(d.inputs).length) details.push(io("Inputs", d.inputs));
    if (d.outputs && Object.keys(d.outputs).length) details.push(io("Outputs", d.outputs));
    if (entry.text && !(d.outputs && d.outputs.text)) details.push(io("Streamed", entry.text));
    if (Array.isArray(d.outputs?.steps) && d.outputs.steps.length) details.unshift(agentSteps(d.outputs.steps));
    if (d.prompt) details.push(io("Asks", d.prompt));
    replace(entry.el,
      h("div", { class: "tl-head" },
        h("span", { class: "tl-node" }, h("strong", {}, entry.nodeId), entry.data.parent ? h("span", { class: "muted" }, ` in ${entry.data.parent}[${entry.data.index}]`) : null),
        h("span", { class: "muted" }, entry.type || ""),
        statusBadge(entry.status),
        h("span", { class: "tl-time muted" }, `+${formatDuration(offset)} · ${entry.elapsed !== null ? formatDuration(entry.elapsed) : "…"}`),
        d.usage && totalTokens(d.usage) ? h("span", { class: "muted" }, `${totalTokens(d.usage)} tokens`) : null),
      bar,
      d.error ? h("p", { class: "alert alert-error" }, `Error: ${typeof d.error === "string" ? d.error : d.error.message || pretty(d.error)}`) : null,
      details.length ? h("details", { class: "tl-details" }, h("summary", {}, "Inputs and outputs"), details) : null);
  };

  const apply = ({ event, data }, receivedAt) => {
    if (!data || typeof data !== "object") return;
    if (event === "run_started") {
      if (data.created_at) runStart = new Date(data.created_at).getTime();
      return;
    }
    if (event === "node_started") {
      const entry = entryFor(data);
      entry.type = data.node_type || entry.type;
      entry.status = "running";
      if (entry.start === null) entry.start = Math.max(0, receivedAt - runStart);
      entry.data = { ...entry.data, parent: data.parent, index: data.index };
      drawEntry(entry);
    } else if (event === "token") {
      const entry = entryFor(data);
      entry.text += data.text || "";
      if (entry.text.length < 4000 || entry.text.length % 50 === 0) drawEntry(entry);
    } else if (event === "node_finished") {
      const entry = entryFor(data);
      entry.status = data.status || "succeeded";
      entry.elapsed = data.elapsed_ms ?? null;
      if (entry.start === null) entry.start = Math.max(0, receivedAt - runStart - (entry.elapsed || 0));
      entry.data = { ...entry.data, ...data };
      drawEntry(entry);
    } else if (event === "human_input_required") {
      const entry = entryFor(data);
      entry.status = "waiting";
      entry.data = { ...entry.data, prompt: data.prompt };
      drawEntry(entry);
    } else if (event === "error") {
      box.show(`The run reported an error: ${data.message}${data.node_id ? ` (node ${data.node_id})` : ""}`);
    }
  };

  stopButton.addEventListener("click", async () => {
    stopButton.disabled = true;
    try {
      run = await del(`/v1/runs/${encodeURIComponent(run.id)}`);
      toast("Run stopped.");
      renderSummary();
    } catch (err) {
      box.fail(err, "The run could not be stopped");
    } finally {
      stopButton.disabled = false;
    }
  });

  const follow = async () => {
    liveNote.textContent = LIVE.has(run.status) ? "● Live: following the run" : "Replaying the run's events";
    try {
      const response = await raw("GET", `/v1/runs/${encodeURIComponent(run.id)}/stream`, { signal: controller.signal });
      for await (const message of sseEvents(response)) {
        // Replayed events carry their own time in created_at only in the store; here arrival order gives
        // the sequence and node_finished's elapsed_ms the durations.
        apply(message, eventTime(message));
        if (message.event === "run_finished") break;
      }
      run = await get(`/v1/runs/${encodeURIComponent(run.id)}`);
      mergeTrace(run.nodes || []);
      renderSummary();
      liveNote.textContent = LIVE.has(run.status) ? `Run is ${run.status}` : "Run finished";
    } catch (err) {
      if (err.name === "AbortError") return;
      liveNote.textContent = "";
      if (!(err instanceof ApiError && err.status === 401)) box.fail(err, "The run's events could not be followed");
    }
  };

  // The stored trace has each node's real start time: use it once the run is read again.
  const mergeTrace = (trace) => {
    for (const item of trace) {
      const entry = entryFor(item);
      entry.type = item.node_type || entry.type;
      entry.status = item.status || entry.status;
      entry.elapsed = item.elapsed_ms ?? entry.elapsed;
      if (item.started_at) entry.start = Math.max(0, new Date(item.started_at).getTime() - runStart);
      entry.data = { ...entry.data, inputs: item.inputs, outputs: item.outputs, usage: item.usage, error: item.error, parent: item.parent, index: item.index };
    }
    for (const entry of nodes.values()) drawEntry(entry);
  };

  const eventTime = (message) => {
    const stamp = message.data && message.data.created_at;
    return stamp ? new Date(stamp).getTime() : Date.now();
  };

  renderSummary();
  mergeTrace(run.nodes || []);
  replace(container,
    pageHeader("Run", h("a", { class: "button ghost", href: "#/runs" }, "All runs"), stopButton),
    box,
    h("section", { class: "card" }, summary, outputs),
    h("section", { class: "card", "aria-labelledby": "timeline-title" },
      h("div", { class: "section-head" }, h("h2", { id: "timeline-title" }, "Timeline"), liveNote),
      timeline));
  follow();
  return () => controller.abort();
}

function io(label, value) {
  return h("div", { class: "io" }, h("div", { class: "io-label" }, label), h("pre", { class: "code-block" }, pretty(value)));
}

function agentSteps(steps) {
  return h("div", { class: "agent-steps" }, h("div", { class: "io-label" }, "Agent steps"),
    h("ol", {}, steps.map((step) => h("li", {},
      step.thought ? h("p", {}, h("strong", {}, "Thought: "), step.thought) : null,
      step.action ? h("p", {}, h("strong", {}, "Tool: "), h("code", {}, step.action), step.input !== undefined ? [" ← ", h("code", {}, pretty(step.input))] : null) : null,
      step.observation !== undefined ? h("details", {}, h("summary", {}, "Observation"), h("pre", { class: "code-block" }, pretty(step.observation))) : null,
      step.plan ? h("p", {}, h("strong", {}, "Plan: "), pretty(step.plan)) : null))));
}
