// Shared pieces of the page: messages, dialogs (focus kept inside, Escape closes), confirmations.
import { h, replace, svg, uid } from "./dom.js";
import { ApiError } from "./api.js";

export function describeError(err, action) {
  if (err instanceof ApiError) {
    const status = err.status ? ` (HTTP ${err.status})` : "";
    const hint = {
      403: " You are signed in, but this is not allowed.",
      404: " It may have been deleted.",
      413: " The file or request is too large.",
      415: " This file type is not accepted.",
      429: " Too many requests: wait a moment and try again.",
    }[err.status] || "";
    return `${action ? action + ": " : ""}${err.detail}${status}.${hint}`.replace(/\.\./g, ".");
  }
  return `${action ? action + ": " : ""}${err && err.message ? err.message : String(err)}`;
}

// An inline message area (role=alert) that a page or dialog shows its errors in.
export function alertBox() {
  const box = h("div", { class: "alert", role: "alert", hidden: true });
  box.show = (message, kind = "error") => {
    box.className = `alert alert-${kind}`;
    replace(box, message);
    box.hidden = false;
  };
  box.fail = (err, action) => box.show(describeError(err, action));
  box.clear = () => {
    box.hidden = true;
    replace(box);
  };
  return box;
}

export function toast(message, kind = "info") {
  const area = document.getElementById("toasts");
  const item = h("div", { class: `toast toast-${kind}` }, message);
  area.append(item);
  setTimeout(() => item.remove(), kind === "error" ? 8000 : 4000);
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

// A modal dialog. Focus moves in, Tab cycles inside, Escape (or Close) closes, focus goes back.
export function openDialog({ title, body, actions = [], onClose, wide = false, label }) {
  const opener = document.activeElement;
  const titleId = uid("dialog-title");
  const closeButton = h("button", { type: "button", class: "icon-button", "aria-label": "Close" }, "✕");
  const panel = h("div", { class: `dialog${wide ? " dialog-wide" : ""}`, role: "dialog", "aria-modal": "true", "aria-labelledby": titleId },
    h("div", { class: "dialog-head" }, h("h2", { id: titleId }, title), closeButton),
    h("div", { class: "dialog-body" }, body),
    actions.length ? h("div", { class: "dialog-actions" }, actions) : null,
  );
  if (label) panel.setAttribute("aria-label", label);
  const backdrop = h("div", { class: "backdrop" }, panel);
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    document.removeEventListener("keydown", onKey, true);
    backdrop.remove();
    if (onClose) onClose();
    if (opener && document.contains(opener)) opener.focus();
  };
  const onKey = (event) => {
    if (!document.contains(backdrop)) return;
    // Only the topmost dialog handles keys.
    const dialogs = document.querySelectorAll(".backdrop");
    if (dialogs[dialogs.length - 1] !== backdrop) return;
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      close();
    } else if (event.key === "Tab") {
      const items = [...panel.querySelectorAll(FOCUSABLE)].filter((el) => el.offsetParent !== null);
      if (!items.length) return;
      const first = items[0];
      const last = items[items.length - 1];
      if (event.shiftKey && (document.activeElement === first || !panel.contains(document.activeElement))) {
        event.preventDefault();
        last.focus();
      } else if (!event.shiftKey && (document.activeElement === last || !panel.contains(document.activeElement))) {
        event.preventDefault();
        first.focus();
      }
    }
  };
  closeButton.addEventListener("click", close);
  backdrop.addEventListener("mousedown", (event) => {
    if (event.target === backdrop) close();
  });
  document.addEventListener("keydown", onKey, true);
  document.body.append(backdrop);
  const focusTarget = panel.querySelector("[autofocus]") || panel.querySelector(".dialog-body " + FOCUSABLE) || closeButton;
  focusTarget.focus();
  return { close, panel };
}

// Resolves true when the user confirms, false otherwise.
export function confirmDialog({ title, message, confirmLabel = "Delete", danger = true }) {
  return new Promise((resolve) => {
    let answered = false;
    const cancel = h("button", { type: "button", class: "button" }, "Cancel");
    const confirm = h("button", { type: "button", class: danger ? "button danger" : "button primary" }, confirmLabel);
    const dialog = openDialog({
      title,
      body: h("p", {}, message),
      actions: [cancel, confirm],
      onClose: () => {
        if (!answered) resolve(false);
      },
    });
    cancel.addEventListener("click", () => dialog.close());
    confirm.addEventListener("click", () => {
      answered = true;
      dialog.close();
      resolve(true);
    });
    cancel.focus();
  });
}

export function field(labelText, control, hint) {
  const id = control.id || uid("field");
  control.id = id;
  const hintEl = hint ? h("small", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, labelText), control, hintEl);
}

export function emptyState(text, ...actions) {
  return h("div", { class: "empty" }, h("p", {}, text), actions);
}

export function pageHeader(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", {}, title), h("div", { class: "page-actions" }, actions));
}

export function download(filename, text, type) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const link = h("a", { href: url, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

const ICONS = {
  trash: "M9 3h6l1 2h4v2H4V5h4l1-2zm-3 6h12l-1 12H7L6 9zm4 2v8h2v-8h-2zm4 0v8h2v-8h-2z",
  clip: "M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9V15.5a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10h-1.5z",
};

// A small inline icon (system fonts have no emoji on many servers); decorative: the button carries the label.
export function icon(name, size = 18) {
  return svg("svg", { viewBox: "0 0 24 24", width: size, height: size, "aria-hidden": "true", focusable: "false" },
    svg("path", { d: ICONS[name], fill: "currentColor" }));
}

export function formatScore(score) {
  const value = Number(score);
  if (!Number.isFinite(value)) return String(score);
  return Math.abs(value) >= 0.001 || value === 0 ? value.toFixed(4) : value.toExponential(2);
}
