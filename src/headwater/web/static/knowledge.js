// Knowledge bases: create one, upload files (progress bar, per-document status), delete documents,
// and try a query to see the ranked chunks with their scores.
import { formatBytes, formatDate, h, replace, statusBadge, uid } from "./dom.js";
import { del, get, post, upload } from "./api.js";
import { alertBox, confirmDialog, emptyState, field, formatScore, icon, pageHeader, toast } from "./ui.js";

const PENDING = new Set(["queued", "indexing"]);

export async function render(container, { rest }) {
  if (rest[0]) return renderBase(container, rest[0]);
  return renderList(container);
}

async function renderList(container) {
  const box = alertBox();
  const name = h("input", { name: "name", required: true, maxlength: 200, placeholder: "e.g. Handbook" });
  const chunkSize = h("input", { name: "chunk_size", type: "number", min: 100, max: 20000, value: 1000 });
  const submit = h("button", { type: "submit", class: "button primary" }, "Create knowledge base");
  const form = h("form", { class: "card inline-form", "aria-label": "New knowledge base" },
    field("Name", name), field("Chunk size (characters)", chunkSize), h("div", { class: "field field-button" }, submit));
  const list = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  replace(container, pageHeader("Knowledge"), form, box, list);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    submit.disabled = true;
    try {
      const kb = await post("/v1/knowledge-bases", { name: name.value.trim(), chunk_size: Number(chunkSize.value || 1000) });
      toast(`Knowledge base "${kb.name}" created.`);
      location.hash = `#/knowledge/${encodeURIComponent(kb.id)}`;
    } catch (err) {
      box.fail(err, "The knowledge base could not be created");
      submit.disabled = false;
    }
  });
  try {
    const bases = await get("/v1/knowledge-bases");
    if (!bases.length) {
      replace(list, emptyState("No knowledge bases yet. Create one, then upload documents to it."));
      return null;
    }
    replace(list, h("ul", { class: "cards" }, bases.map((kb) => h("li", { class: "card" },
      h("h2", {}, h("a", { href: `#/knowledge/${encodeURIComponent(kb.id)}` }, kb.name)),
      h("dl", { class: "facts" },
        h("dt", {}, "Documents"), h("dd", {}, String(kb.document_count)),
        h("dt", {}, "Chunks of"), h("dd", {}, `${kb.chunk_size} characters`),
        h("dt", {}, "Search"), h("dd", {}, kb.embedding_model ? `hybrid (${kb.embedding_model})` : "full-text"),
        h("dt", {}, "Created"), h("dd", {}, formatDate(kb.created_at)))))));
  } catch (err) {
    box.fail(err, "The knowledge bases could not be listed");
    replace(list);
  }
  return null;
}

async function renderBase(container, kbId) {
  const box = alertBox();
  const kb = await get(`/v1/knowledge-bases/${encodeURIComponent(kbId)}`);
  const base = `/v1/knowledge-bases/${encodeURIComponent(kb.id)}`;
  let pollTimer = null;
  let gone = false;

  // upload
  const fileInput = h("input", { type: "file", multiple: true, id: uid("files"), name: "files" });
  const uploadButton = h("button", { type: "submit", class: "button primary" }, "Upload");
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": "Upload progress" });
  const progressText = h("span", { class: "muted", role: "status" });
  const drop = h("div", { class: "drop-zone" }, h("p", {}, "Drop files here, or choose them:"), fileInput);
  const uploadForm = h("form", { class: "card stack", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload documents"),
    h("label", { for: fileInput.id, class: "sr-only" }, "Files to upload"),
    drop,
    h("small", { class: "hint" }, "PDF, Word, PowerPoint, HTML, Markdown, text, CSV, JSON, audio; up to 20 files per upload."),
    h("div", { class: "actions" }, progress, progressText, uploadButton));
  for (const type of ["dragenter", "dragover"]) drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("dragging"); });
  for (const type of ["dragleave", "drop"]) drop.addEventListener(type, () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    fileInput.files = event.dataTransfer.files;
  });

  // documents
  const documents = h("div", { class: "table-wrap" }, h("p", { class: "muted" }, "Loading documents…"));
  const loadDocuments = async () => {
    clearTimeout(pollTimer);
    if (gone) return;
    try {
      const docs = await get(`${base}/documents`);
      renderDocuments(docs);
      if (docs.some((d) => PENDING.has(d.status))) pollTimer = setTimeout(loadDocuments, 800);
    } catch (err) {
      box.fail(err, "The documents could not be listed");
    }
  };
  const renderDocuments = (docs) => {
    if (!docs.length) {
      replace(documents, emptyState("No documents yet."));
      return;
    }
    replace(documents, h("table", { class: "table docs-table" },
      h("caption", { class: "sr-only" }, "Documents and their indexing status"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Document"), h("th", { scope: "col" }, "Status"),
        h("th", { scope: "col", class: "num hide-narrow" }, "Size"), h("th", { scope: "col", class: "num hide-narrow" }, "Chunks"),
        h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, docs.map((doc) => {
        const remove = h("button", { type: "button", class: "icon-button danger", "aria-label": `Delete document ${doc.title}`, title: "Delete" }, icon("trash"));
        remove.addEventListener("click", async () => {
          const ok = await confirmDialog({ title: "Delete document?", message: `Delete "${doc.title}" and its chunks from ${kb.name}?`, confirmLabel: "Delete document" });
          if (!ok) return;
          try {
            await del(`${base}/documents/${encodeURIComponent(doc.id)}`);
            toast(`Document "${doc.title}" deleted.`);
            loadDocuments();
          } catch (err) {
            box.fail(err, "The document could not be deleted");
          }
        });
        const stage = PENDING.has(doc.status) && doc.progress && doc.progress.stage ? ` (${doc.progress.stage})` : "";
        return h("tr", { dataset: { documentId: doc.id, status: doc.status } },
          h("td", {}, h("div", {}, doc.title), h("div", { class: "muted small" }, doc.file_name || doc.source_url || doc.kind || "")),
          h("td", {}, statusBadge(doc.status), stage, doc.error ? h("div", { class: "error-text" }, doc.error) : null),
          h("td", { class: "num hide-narrow" }, formatBytes(doc.size_bytes)),
          h("td", { class: "num hide-narrow" }, String(doc.chunk_count)),
          h("td", { class: "cell-actions" }, remove));
      }))));
  };

  uploadForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    if (!fileInput.files.length) {
      box.show("Choose one or more files first.");
      return;
    }
    const form = new FormData();
    for (const file of fileInput.files) form.append("files", file, file.name);
    uploadButton.disabled = true;
    progress.hidden = false;
    progress.value = 0;
    progressText.textContent = "Uploading…";
    try {
      const result = await upload(`${base}/documents`, form, (fraction) => {
        progress.value = Math.round(fraction * 100);
        progressText.textContent = `${progress.value}%`;
      });
      const count = result?.documents?.length || 0;
      progressText.textContent = `Uploaded ${count} document${count === 1 ? "" : "s"}; indexing…`;
      fileInput.value = "";
      loadDocuments();
    } catch (err) {
      progressText.textContent = "";
      box.fail(err, "The upload failed");
    } finally {
      uploadButton.disabled = false;
      setTimeout(() => { progress.hidden = true; }, 1500);
    }
  });

  // query
  const queryInput = h("input", { type: "search", name: "query", required: true, placeholder: "Ask something the documents answer" });
  const topK = h("input", { type: "number", min: 1, max: 50, value: 4, name: "top_k" });
  const queryButton = h("button", { type: "submit", class: "button primary" }, "Search");
  const results = h("div", { class: "results", "aria-live": "polite" });
  const queryForm = h("form", { class: "card stack", "aria-labelledby": "query-title" },
    h("h2", { id: "query-title" }, "Try a query"),
    h("div", { class: "inline-form" }, field("Query", queryInput), field("Top k", topK), h("div", { class: "field field-button" }, queryButton)),
    results);
  queryForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    queryButton.disabled = true;
    try {
      const answer = await post(`${base}/query`, { query: queryInput.value, top_k: Number(topK.value || 4) });
      const warnings = (answer.warnings || []).map((w) => h("p", { class: "alert alert-warning" }, w));
      if (!answer.results.length) {
        replace(results, warnings, h("p", { class: "muted" }, `No chunk matches (${answer.mode} search).`));
        return;
      }
      replace(results, warnings, h("p", { class: "muted" }, `${answer.results.length} chunks, ${answer.mode} search, best first:`),
        h("ol", { class: "chunks" }, answer.results.map((chunk, i) => h("li", { class: "chunk" },
          h("div", { class: "chunk-head" },
            h("span", { class: "rank" }, `#${i + 1}`),
            h("strong", {}, chunk.title || "document"),
            h("span", { class: "score" }, `score ${formatScore(chunk.score)}`)),
          chunk.url ? h("div", { class: "muted small" }, chunk.url) : null,
          h("p", { class: "chunk-text" }, chunk.text)))));
    } catch (err) {
      box.fail(err, "The query failed");
    } finally {
      queryButton.disabled = false;
    }
  });

  const deleteBase = h("button", { type: "button", class: "button danger" }, "Delete knowledge base");
  deleteBase.addEventListener("click", async () => {
    const ok = await confirmDialog({ title: "Delete knowledge base?", message: `Delete "${kb.name}" with all its documents? Apps using it lose these sources.`, confirmLabel: "Delete knowledge base" });
    if (!ok) return;
    try {
      await del(base);
      toast(`Knowledge base "${kb.name}" deleted.`);
      location.hash = "#/knowledge";
    } catch (err) {
      box.fail(err, "The knowledge base could not be deleted");
    }
  });

  replace(container,
    pageHeader(kb.name, h("a", { class: "button ghost", href: "#/knowledge" }, "All knowledge bases"), deleteBase),
    h("p", { class: "muted" }, `Slug ${kb.slug} · chunks of ${kb.chunk_size} characters (overlap ${kb.chunk_overlap}) · ${kb.embedding_model ? `hybrid search with ${kb.embedding_model}` : "full-text search"}`),
    box, uploadForm,
    h("section", { class: "card", "aria-labelledby": "docs-title" }, h("h2", { id: "docs-title" }, "Documents"), documents),
    queryForm);
  loadDocuments();
  return () => {
    gone = true;
    clearTimeout(pollTimer);
  };
}
