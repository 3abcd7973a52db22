// The API Keys dialog: list (masked), New API Key (the full key shown once), delete with a confirmation.
import { h, replace, formatDate } from "./dom.js";
import { del, get, post } from "./api.js";
import { alertBox, confirmDialog, copyText, field, icon, openDialog, toast } from "./ui.js";

const SCOPES = [
  ["chatbot", "chatbot: run apps, read their conversations"],
  ["knowledge", "knowledge: add documents to knowledge bases"],
  ["admin", "admin: everything in this workspace"],
];

export function maskedKey(prefix) {
  return `${prefix}${"•".repeat(12)}`;
}

export function openKeysDialog() {
  const box = alertBox();
  const list = h("div", { class: "keys-list", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading keys…"));
  const newButton = h("button", { type: "button", class: "button primary" }, "New API Key");
  const dialog = openDialog({
    title: "API Keys",
    wide: true,
    body: [
      h("p", { class: "muted" }, "Send a key in the X-API-Key header. Only a hash of each key is stored, so a key is shown in full only once, when it is created."),
      box,
      list,
    ],
    actions: [newButton],
  });
  const refresh = async () => {
    try {
      const keys = await get("/v1/api-keys");
      renderList(keys);
    } catch (err) {
      box.fail(err, "The keys could not be listed");
      replace(list);
    }
  };
  const renderList = (keys) => {
    if (!keys.length) {
      replace(list, h("p", { class: "muted" }, "No API keys yet."));
      return;
    }
    replace(list, h("table", { class: "table" },
      h("caption", { class: "sr-only" }, "API keys of this workspace"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Key"),
        h("th", { scope: "col", class: "hide-narrow" }, "Scopes"), h("th", { scope: "col", class: "hide-narrow" }, "Last used"),
        h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")))),
      h("tbody", {}, keys.map((key) => {
        const trash = h("button", { type: "button", class: "icon-button danger", "aria-label": `Delete API key ${key.name}`, title: "Delete" }, icon("trash"));
        trash.addEventListener("click", async () => {
          const ok = await confirmDialog({
            title: "Delete API key?",
            message: `Delete "${key.name}" (${maskedKey(key.prefix)})? Every application using this key loses access at once. This cannot be undone.`,
            confirmLabel: "Delete key",
          });
          if (!ok) return;
          try {
            await del(`/v1/api-keys/${encodeURIComponent(key.id)}`);
            toast(`API key "${key.name}" deleted.`);
            await refresh();
          } catch (err) {
            box.fail(err, "The key could not be deleted");
          }
        });
        return h("tr", { dataset: { keyId: key.id } },
          h("td", {}, key.name),
          h("td", {}, h("code", { class: "masked-key" }, maskedKey(key.prefix))),
          h("td", { class: "hide-narrow" }, key.scopes.join(", ")),
          h("td", { class: "hide-narrow" }, key.last_used_at ? formatDate(key.last_used_at) : "never"),
          h("td", { class: "cell-actions" }, trash),
        );
      })),
    ));
  };
  newButton.addEventListener("click", () => openCreateKeyDialog(refresh));
  refresh();
  return dialog;
}

export function openCreateKeyDialog(onCreated) {
  const box = alertBox();
  const name = h("input", { name: "name", required: true, maxlength: 200, autocomplete: "off", autofocus: true, placeholder: "e.g. website chatbot" });
  const scopeBoxes = SCOPES.map(([scope, label]) => h("label", { class: "check" },
    h("input", { type: "checkbox", name: "scopes", value: scope, checked: scope === "chatbot" }), " ", label));
  const submit = h("button", { type: "submit", class: "button primary" }, "Create API Key");
  const cancel = h("button", { type: "button", class: "button" }, "Cancel");
  const form = h("form", { class: "stack" },
    box,
    field("Name", name, "A descriptive name, to recognise the key in the list."),
    h("fieldset", { class: "scopes" }, h("legend", {}, "Scopes"), scopeBoxes),
    h("div", { class: "actions" }, cancel, submit),
  );
  const dialog = openDialog({ title: "Create API Key", body: form });
  cancel.addEventListener("click", () => dialog.close());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    const scopes = scopeBoxes.map((label) => label.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    if (!name.value.trim()) {
      box.show("Give the key a name.");
      name.focus();
      return;
    }
    if (!scopes.length) {
      box.show("Choose at least one scope.");
      return;
    }
    submit.disabled = true;
    try {
      const created = await post("/v1/api-keys", { name: name.value.trim(), scopes });
      showCreatedKey(dialog, created);
      if (onCreated) onCreated();
    } catch (err) {
      box.fail(err, "The key could not be created");
      submit.disabled = false;
    }
  });
}

function showCreatedKey(dialog, created) {
  const keyField = h("input", { class: "full-key", readonly: true, value: created.key, "aria-label": "Your new API key", spellcheck: "false" });
  const status = h("span", { class: "copy-status", role: "status" });
  const copy = h("button", { type: "button", class: "button primary" }, "Copy");
  copy.addEventListener("click", async () => {
    keyField.select();
    let copied = await copyText(created.key);
    if (!copied) {
      try {
        copied = document.execCommand("copy");
      } catch {
        copied = false;
      }
    }
    status.textContent = copied ? "Copied to the clipboard." : "Select the key and copy it with Ctrl+C (⌘C).";
  });
  const done = h("button", { type: "button", class: "button" }, "Done");
  done.addEventListener("click", () => dialog.close());
  const body = dialog.panel.querySelector(".dialog-body");
  replace(body,
    h("p", {}, `API key "${created.name}" was created.`),
    h("div", { class: "alert alert-warning", role: "alert" },
      h("strong", {}, "Copy this key now. "), "It won't be shown again: only its hash is stored. Store it somewhere safe."),
    h("div", { class: "key-row" }, keyField, copy),
    status,
    h("div", { class: "actions" }, done),
  );
  keyField.focus();
  keyField.select();
}
