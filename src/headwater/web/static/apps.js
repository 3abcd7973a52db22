// Apps: the list, the chatbot form, the JSON/YAML editor of graph apps with its drawing, versions, import and export.
import { debounce, formatDate, h, replace, uid } from "./dom.js";
import { api, del, get, post, put } from "./api.js";
import { alertBox, confirmDialog, download, emptyState, field, openDialog, pageHeader, toast } from "./ui.js";
import { drawGraph } from "./graph.js";
import { toYaml } from "./yaml.js";

const KINDS = ["chatbot", "chatflow", "workflow", "agent"];
const DEFAULT_MODEL = "local/gemma-3-270m";

export async function render(container, { rest }) {
  if (!rest.length) return renderList(container);
  if (rest[0] === "new") {
    const kind = KINDS.includes(rest[1]) ? rest[1] : "chatbot";
    return kind === "chatbot" ? renderChatbotForm(container, null) : renderEditor(container, null, kind);
  }
  const app = await get(`/v1/apps/${encodeURIComponent(rest[0])}`);
  return app.kind === "chatbot" ? renderChatbotForm(container, app) : renderEditor(container, app, app.kind);
}

// ---- list -------------------------------------------------------------------------------------

async function renderList(container) {
  const box = alertBox();
  const importButton = h("button", { type: "button", class: "button" }, "Import…");
  importButton.addEventListener("click", () => openImportDialog());
  const newMenu = h("div", { class: "button-row" },
    KINDS.map((kind) => h("a", { class: kind === "chatbot" ? "button primary" : "button", href: `#/apps/new/${kind}` }, `New ${kind}`)),
    importButton,
  );
  const listArea = h("div", {}, h("p", { class: "muted" }, "Loading apps…"));
  replace(container, pageHeader("Apps"), newMenu, box, listArea);
  try {
    const apps = await get("/v1/apps");
    if (!apps.length) {
      replace(listArea, emptyState("No apps yet. Create a chatbot from a model and a system prompt, or a chatflow, workflow or agent from a definition."));
      return;
    }
    replace(listArea, h("ul", { class: "cards" }, apps.map((app) => appCard(app, box))));
  } catch (err) {
    box.fail(err, "The apps could not be listed");
    replace(listArea);
  }
}

function appCard(app, box) {
  const remove = h("button", { type: "button", class: "button ghost danger" }, "Delete");
  remove.addEventListener("click", () => deleteApp(app, box));
  return h("li", { class: "card app-card", dataset: { appId: app.id } },
    h("div", { class: "card-head" },
      h("h2", {}, h("a", { href: `#/apps/${encodeURIComponent(app.id)}` }, app.name)),
      h("span", { class: `badge kind-${app.kind}` }, app.kind)),
    h("p", { class: "muted" }, app.description || `slug ${app.slug}`),
    h("dl", { class: "facts" },
      h("dt", {}, "Version"), h("dd", {}, String(app.version)),
      h("dt", {}, "Updated"), h("dd", {}, formatDate(app.updated_at)),
      app.kind === "chatbot" ? [h("dt", {}, "Model"), h("dd", {}, app.config.model)] : null),
    h("div", { class: "button-row" },
      h("a", { class: "button", href: `#/apps/${encodeURIComponent(app.id)}` }, "Edit"),
      app.kind === "agent" ? null : h("a", { class: "button", href: `#/chat/${encodeURIComponent(app.id)}` }, "Chat"),
      exportButtons(app, box),
      remove),
  );
}

async function deleteApp(app, box) {
  const ok = await confirmDialog({
    title: "Delete app?",
    message: `Delete "${app.name}" and its conversations? Its run records stay. This cannot be undone.`,
    confirmLabel: "Delete app",
  });
  if (!ok) return false;
  try {
    await del(`/v1/apps/${encodeURIComponent(app.id)}`);
    toast(`App "${app.name}" deleted.`);
    if (location.hash === "#/apps") window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = "#/apps";
    return true;
  } catch (err) {
    box.fail(err, "The app could not be deleted");
    return false;
  }
}

function exportButtons(app, box) {
  const button = (format) => {
    const b = h("button", { type: "button", class: "button ghost" }, `Export ${format.toUpperCase()}`);
    b.addEventListener("click", async () => {
      try {
        const text = await api("GET", `/v1/apps/${encodeURIComponent(app.id)}/export?format=${format}`);
        download(`${app.slug}.${format}`, typeof text === "string" ? text : JSON.stringify(text, null, 2),
          format === "json" ? "application/json" : "application/yaml");
      } catch (err) {
        box.fail(err, "The app could not be exported");
      }
    });
    return b;
  };
  return [button("json"), button("yaml")];
}

function openImportDialog() {
  const box = alertBox();
  const file = h("input", { type: "file", accept: ".json,.yaml,.yml,application/json,application/yaml,text/yaml" });
  const text = h("textarea", { rows: 10, class: "code", spellcheck: "false", placeholder: "…or paste an app document (JSON or YAML)" });
  const submit = h("button", { type: "submit", class: "button primary" }, "Import");
  const form = h("form", { class: "stack" }, box,
    field("App document file", file, "A file written by Export or by `headwater apps export`. An app with the same slug gets a new version."),
    field("Document text", text),
    h("div", { class: "actions" }, submit));
  const dialog = openDialog({ title: "Import an app", body: form });
  file.addEventListener("change", async () => {
    if (file.files[0]) text.value = await file.files[0].text();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    const source = text.value.trim();
    if (!source) {
      box.show("Choose a file or paste a document.");
      return;
    }
    const name = file.files[0]?.name || "";
    const format = name.endsWith(".json") || (!name && source.startsWith("{")) ? "json" : "yaml";
    submit.disabled = true;
    try {
      const app = await post("/v1/apps/import", { source, format });
      dialog.close();
      toast(`Imported "${app.name}" (version ${app.version}).`);
      location.hash = `#/apps/${encodeURIComponent(app.id)}`;
    } catch (err) {
      box.fail(err, "The document could not be imported");
      submit.disabled = false;
    }
  });
}

// ---- models and knowledge bases for the pickers ----------------------------------------------------

export async function loadModelChoices() {
  const providers = await get("/v1/providers");
  const groups = await Promise.all(providers.map(async (provider) => {
    try {
      const listed = await get(`/v1/providers/${encodeURIComponent(provider.id)}/models`);
      return { provider: provider.name, models: listed.models, error: null };
    } catch (err) {
      return { provider: provider.name, models: provider.models || [], error: err.detail || String(err) };
    }
  }));
  return groups;
}

function modelPicker(groups, current) {
  const select = h("select", { name: "model", required: true });
  let found = false;
  for (const group of groups) {
    const optgroup = h("optgroup", { label: group.provider + (group.error ? " (models unavailable)" : "") });
    for (const model of group.models) {
      const value = `${group.provider}/${model}`;
      if (value === current) found = true;
      optgroup.append(h("option", { value, selected: value === current }, value));
    }
    if (group.models.length) select.append(optgroup);
  }
  const other = h("input", { name: "model_other", placeholder: "provider/model", hidden: true, "aria-label": "Model name" });
  select.append(h("option", { value: "__other__", selected: Boolean(current) && !found }, "Other model…"));
  if (current && !found) {
    other.hidden = false;
    other.value = current;
  } else if (!current) {
    const preferred = [...select.options].find((o) => o.value === DEFAULT_MODEL) || select.options[0];
    if (preferred) preferred.selected = true;
  }
  select.addEventListener("change", () => {
    other.hidden = select.value !== "__other__";
    if (!other.hidden) other.focus();
  });
  return { select, other, value: () => (select.value === "__other__" ? other.value.trim() : select.value) };
}

// ---- chatbot form ---------------------------------------------------------------------------------

async function renderChatbotForm(container, app) {
  const box = alertBox();
  replace(container, pageHeader(app ? app.name : "New chatbot"), box, h("p", { class: "muted" }, "Loading models and knowledge bases…"));
  let groups = [];
  let bases = [];
  try {
    [groups, bases] = await Promise.all([loadModelChoices(), get("/v1/knowledge-bases")]);
  } catch (err) {
    box.fail(err, "The models or knowledge bases could not be loaded");
  }
  const config = app ? app.config : {};
  const name = h("input", { name: "name", required: true, maxlength: 200, value: app ? app.name : "" });
  const description = h("input", { name: "description", maxlength: 10000, value: app ? app.description : "" });
  const picker = modelPicker(groups, config.model);
  const system = h("textarea", { name: "system_prompt", rows: 6, value: config.system_prompt || "" });
  const temperature = h("input", { name: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: config.temperature ?? "", placeholder: "provider default" });
  const memory = h("input", { name: "memory_window", type: "number", min: 0, max: 500, step: 1, value: config.memory_window ?? 10 });
  const chosen = new Set(config.knowledge_bases || []);
  const baseBoxes = bases.map((kb) => h("label", { class: "check" },
    h("input", { type: "checkbox", value: kb.id, checked: chosen.has(kb.id) || chosen.has(kb.slug) }), " ", kb.name,
    h("span", { class: "muted" }, ` (${kb.document_count} documents)`)));
  const submit = h("button", { type: "submit", class: "button primary" }, app ? "Save new version" : "Create chatbot");
  const form = h("form", { class: "card stack chatbot-form" },
    field("Name", name),
    field("Description", description),
    h("div", { class: "field" }, h("label", { for: picker.select.id = uid("model") }, "Model"), picker.select, picker.other,
      h("small", { class: "hint" }, "Models of the providers of this workspace (see Providers).")),
    field("System prompt", system, "What the assistant is and how it answers."),
    h("fieldset", { class: "kb-choice" }, h("legend", {}, "Knowledge bases"),
      baseBoxes.length ? baseBoxes : h("p", { class: "muted" }, "No knowledge bases yet (see Knowledge).")),
    h("div", { class: "grid-2" }, field("Temperature", temperature), field("Memory (messages)", memory)),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    const model = picker.value();
    if (!model.includes("/")) {
      box.show("Choose a model (written provider/model).");
      return;
    }
    const body = {
      name: name.value.trim(),
      description: description.value,
      config: {
        model,
        system_prompt: system.value,
        knowledge_bases: baseBoxes.map((l) => l.querySelector("input")).filter((i) => i.checked).map((i) => i.value),
        memory_window: Number(memory.value || 10),
        ...(temperature.value !== "" ? { temperature: Number(temperature.value) } : {}),
      },
    };
    submit.disabled = true;
    try {
      const saved = app ? await put(`/v1/apps/${encodeURIComponent(app.id)}`, body)
        : await post("/v1/apps", { ...body, kind: "chatbot" });
      toast(app ? `Saved version ${saved.version}.` : `Chatbot "${saved.name}" created.`);
      location.hash = `#/apps/${encodeURIComponent(saved.id)}`;
      if (app) window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (err) {
      box.fail(err, "The chatbot could not be saved");
      submit.disabled = false;
    }
  });
  const parts = [pageHeader(app ? app.name : "New chatbot", ...(app ? appActions(app, box) : [])), box, form];
  if (app) parts.push(versionsSection(app, box));
  replace(container, ...parts);
  name.focus();
}

function appActions(app, box) {
  const remove = h("button", { type: "button", class: "button danger" }, "Delete");
  remove.addEventListener("click", () => deleteApp(app, box));
  return [
    app.kind === "agent" ? null : h("a", { class: "button", href: `#/chat/${encodeURIComponent(app.id)}` }, "Chat"),
    h("a", { class: "button", href: `#/runs?app=${encodeURIComponent(app.id)}` }, "Runs"),
    exportButtons(app, box),
    remove,
  ];
}

// ---- versions -------------------------------------------------------------------------------------

function versionsSection(app, box) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading versions…"));
  const section = h("section", { class: "card versions", "aria-labelledby": "versions-title" },
    h("h2", { id: "versions-title" }, "Versions"), body);
  get(`/v1/apps/${encodeURIComponent(app.id)}/versions`).then((versions) => {
    replace(body, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Version"), h("th", { scope: "col" }, "Saved"),
        h("th", { scope: "col", class: "hide-narrow" }, "Name"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, versions.slice().reverse().map((version) => {
        const view = h("button", { type: "button", class: "button ghost" }, version.version === app.version ? "View (current)" : "View");
        view.addEventListener("click", () => openVersion(app, version, box));
        return h("tr", {}, h("td", {}, `v${version.version}`), h("td", {}, formatDate(version.created_at)),
          h("td", { class: "hide-narrow" }, version.name), h("td", { class: "cell-actions" }, view));
      }))));
  }).catch((err) => {
    replace(body);
    box.fail(err, "The versions could not be listed");
  });
  return section;
}

function openVersion(app, version, box) {
  const restore = h("button", { type: "button", class: "button primary", disabled: version.version === app.version }, "Restore as new version");
  const dialog = openDialog({
    title: `${app.name} · version ${version.version}`,
    wide: true,
    body: h("pre", { class: "code-block" }, JSON.stringify({ name: version.name, description: version.description, config: version.config, graph: version.graph ?? undefined }, null, 2)),
    actions: [restore],
  });
  restore.addEventListener("click", async () => {
    try {
      const body = { name: version.name, description: version.description, config: version.config };
      if (version.graph) body.graph = version.graph;
      const saved = await put(`/v1/apps/${encodeURIComponent(app.id)}`, body);
      dialog.close();
      toast(`Version ${version.version} restored as version ${saved.version}.`);
      window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (err) {
      dialog.close();
      box.fail(err, "The version could not be restored");
    }
  });
}

// ---- the definition editor (chatflow, workflow, agent) ---------------------------------------------

function template(kind) {
  const base = { headwater_app: 1, name: `My ${kind}`, kind, description: "" };
  if (kind === "agent") {
    return { ...base, config: { mode: "react", model: DEFAULT_MODEL, system_prompt: "You are a helpful assistant.", tools: ["knowledge_search"], max_steps: 6 } };
  }
  const start = { id: "start", type: "start", inputs: [{ name: "query", type: "string", required: true }] };
  const llm = { id: "reply", type: "llm", model: DEFAULT_MODEL, system: "You are a helpful assistant.", prompt: "{{ start.query }}" };
  if (kind === "chatflow") {
    return { ...base, config: {}, graph: {
      nodes: [start, { ...llm, memory: true }, { id: "answer", type: "answer", text: "{{ reply.text }}" }],
      edges: [{ source: "start", target: "reply" }, { source: "reply", target: "answer" }],
    } };
  }
  return { ...base, config: {}, graph: {
    nodes: [start, llm, { id: "end", type: "end", outputs: { answer: "{{ reply.text }}" } }],
    edges: [{ source: "start", target: "reply" }, { source: "reply", target: "end" }],
  } };
}

function documentOf(app) {
  const doc = { headwater_app: 1, name: app.name, slug: app.slug, kind: app.kind, description: app.description, config: app.config };
  if (app.graph) doc.graph = app.graph;
  return doc;
}

async function renderEditor(container, app, kind) {
  const box = alertBox();
  let format = "json";
  let lastDocument = app ? documentOf(app) : template(kind);
  let lastProblems = [];
  const editorId = uid("editor");
  const textarea = h("textarea", { id: editorId, class: "code editor", spellcheck: "false", rows: 24, wrap: "off",
    "aria-describedby": `${editorId}-problems` });
  textarea.value = JSON.stringify(lastDocument, null, 2);
  const formatSelect = h("select", { "aria-label": "Format" }, h("option", { value: "json" }, "JSON"), h("option", { value: "yaml" }, "YAML"));
  const problemsList = h("div", { id: `${editorId}-problems`, class: "problems", "aria-live": "polite" });
  const graphArea = h("div", { class: "graph-area" });
  const saveButton = h("button", { type: "button", class: "button primary" }, app ? "Save new version" : `Create ${kind}`);
  const status = h("span", { class: "muted editor-status" });
  let validationSeq = 0;

  const draw = () => {
    if (kind === "agent") {
      replace(graphArea, h("p", { class: "muted" }, "An agent has no graph: its config names the model, the tools and the mode (react or actionplan)."));
      return;
    }
    replace(graphArea, drawGraph(lastDocument?.graph, lastProblems));
  };
  const showProblems = (problems) => {
    lastProblems = problems;
    if (!problems.length) {
      replace(problemsList, h("p", { class: "ok" }, "✓ No problems found."));
      return;
    }
    replace(problemsList, h("ul", {}, problems.map((p) => {
      const where = p.node_id ? h("button", { type: "button", class: "link", title: "Find this node in the text" }, `node ${p.node_id}`)
        : p.line ? `line ${p.line}` : "document";
      if (p.node_id) where.addEventListener("click", () => findNode(textarea, p.node_id));
      return h("li", { class: "problem", dataset: { nodeId: p.node_id || "" } }, h("strong", {}, where), ": ", p.message);
    })));
  };
  const validate = async () => {
    const seq = ++validationSeq;
    status.textContent = "Checking…";
    try {
      const report = await post("/v1/apps/validate", { source: textarea.value, format });
      if (seq !== validationSeq) return report;
      if (report.document) lastDocument = report.document;
      showProblems(report.errors);
      draw();
      status.textContent = report.valid ? "Valid" : `${report.errors.length} problem${report.errors.length === 1 ? "" : "s"}`;
      return report;
    } catch (err) {
      if (seq === validationSeq) {
        status.textContent = "";
        box.fail(err, "The definition could not be checked");
      }
      return null;
    }
  };
  const validateSoon = debounce(validate, 500);
  // JSON is drawn at once, without waiting for the server (YAML is parsed there).
  const drawSoon = debounce(() => {
    if (format !== "json") return;
    try {
      lastDocument = JSON.parse(textarea.value);
      lastProblems = lastProblems.filter((p) => !p.line);
      draw();
    } catch {
      // the server reports where the JSON breaks
    }
  }, 150);
  textarea.addEventListener("input", () => {
    box.clear();
    drawSoon();
    validateSoon();
  });
  textarea.addEventListener("keydown", (event) => {
    // Tab indents inside the editor; Escape then Tab leaves it (keyboard users are never trapped).
    if (event.key === "Tab" && !event.shiftKey && !textarea.dataset.escaped) {
      event.preventDefault();
      const { selectionStart: s, selectionEnd: e } = textarea;
      textarea.setRangeText("  ", s, e, "end");
      textarea.dispatchEvent(new Event("input"));
    } else if (event.key === "Escape") {
      textarea.dataset.escaped = "1";
    } else {
      delete textarea.dataset.escaped;
    }
  });
  formatSelect.addEventListener("change", async () => {
    const report = await validate();
    const next = formatSelect.value;
    if (!report || !report.document) {
      formatSelect.value = format;
      box.show(`Fix the ${format.toUpperCase()} before switching format.`);
      return;
    }
    format = next;
    textarea.value = format === "json" ? JSON.stringify(report.document, null, 2) : toYaml(report.document);
    validate();
  });
  saveButton.addEventListener("click", async () => {
    box.clear();
    saveButton.disabled = true;
    try {
      const report = await validate();
      if (!report) return;
      if (!report.valid) {
        box.show("Fix the problems listed under the editor before saving.");
        problemsList.querySelector("button, li")?.focus?.();
        return;
      }
      const doc = report.document;
      if (doc.kind !== kind) {
        box.show(`This editor holds a ${kind} app; the document says kind '${doc.kind}'. Import it as a new app instead.`);
        return;
      }
      const body = { name: doc.name, description: doc.description || "", config: doc.config || {} };
      if (doc.graph !== undefined) body.graph = doc.graph;
      if (doc.slug) body.slug = doc.slug;
      const saved = app ? await put(`/v1/apps/${encodeURIComponent(app.id)}`, body) : await post("/v1/apps", { ...body, kind });
      toast(app ? `Saved version ${saved.version}.` : `${kind} "${saved.name}" created.`);
      location.hash = `#/apps/${encodeURIComponent(saved.id)}`;
      if (app) window.dispatchEvent(new HashChangeEvent("hashchange"));
    } catch (err) {
      box.fail(err, "The app could not be saved");
    } finally {
      saveButton.disabled = false;
    }
  });

  const parts = [
    pageHeader(app ? app.name : `New ${kind}`, h("span", { class: `badge kind-${kind}` }, kind), ...(app ? appActions(app, box) : [])),
    box,
    h("div", { class: "editor-layout" },
      h("section", { class: "card editor-pane", "aria-label": "Definition editor" },
        h("div", { class: "editor-toolbar" },
          h("label", { for: editorId }, "Definition"), formatSelect, status, saveButton),
        textarea,
        h("h2", { class: "small-title" }, "Problems"),
        problemsList),
      h("section", { class: "card graph-pane", "aria-label": "Graph drawing" },
        h("h2", { class: "small-title" }, "Graph"), graphArea)),
  ];
  if (app) parts.push(versionsSection(app, box));
  replace(container, ...parts);
  draw();
  validate();
  return () => {
    validateSoon.cancel();
    drawSoon.cancel();
  };
}

function findNode(textarea, nodeId) {
  const text = textarea.value;
  const patterns = [`"id": "${nodeId}"`, `"id":"${nodeId}"`, `id: ${nodeId}`, `id: "${nodeId}"`];
  for (const pattern of patterns) {
    const at = text.indexOf(pattern);
    if (at >= 0) {
      textarea.focus();
      textarea.setSelectionRange(at, at + pattern.length);
      const line = text.slice(0, at).split("\n").length;
      textarea.scrollTop = Math.max(0, (line - 3) * 18);
      return;
    }
  }
  textarea.focus();
}
