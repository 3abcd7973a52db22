// Model providers: the built-in ones and those added here (OpenAI-compatible or Anthropic).
// The API key is write-only: it is sent once and the page only ever learns that one is set.
import { formatDate, h, replace } from "./dom.js";
import { del, get, post } from "./api.js";
import { alertBox, confirmDialog, emptyState, field, pageHeader, toast } from "./ui.js";

export async function render(container) {
  const box = alertBox();
  const list = h("div", {}, h("p", { class: "muted" }, "Loading providers…"));

  const name = h("input", { name: "name", required: true, pattern: "[A-Za-z0-9][A-Za-z0-9_.\\-]*", maxlength: 100, placeholder: "e.g. openai" });
  const type = h("select", { name: "type" }, h("option", { value: "openai" }, "OpenAI-compatible"), h("option", { value: "anthropic" }, "Anthropic"));
  const baseUrl = h("input", { name: "base_url", type: "url", placeholder: "https://api.openai.com/v1" });
  const apiKey = h("input", { name: "api_key", type: "password", autocomplete: "new-password", spellcheck: "false" });
  const models = h("input", { name: "models", placeholder: "gpt-4o-mini, gpt-4o" });
  const submit = h("button", { type: "submit", class: "button primary" }, "Add provider");
  const form = h("form", { class: "card stack", "aria-labelledby": "add-provider" },
    h("h2", { id: "add-provider" }, "Add a provider"),
    h("div", { class: "grid-2" },
      field("Name", name, "Models are then named <name>/<model>."),
      field("Type", type),
      field("Base URL", baseUrl, "For OpenAI-compatible servers (vLLM, Ollama, LiteLLM…); empty for the vendor's own."),
      field("API key", apiKey, "Write-only: stored encrypted, never shown again."),
      field("Models", models, "Comma-separated; empty to use the provider's own list.")),
    h("div", { class: "actions" }, submit));
  type.addEventListener("change", () => {
    baseUrl.placeholder = type.value === "anthropic" ? "https://api.anthropic.com" : "https://api.openai.com/v1";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.clear();
    const body = {
      name: name.value.trim(),
      type: type.value,
      models: models.value.split(",").map((m) => m.trim()).filter(Boolean),
    };
    if (baseUrl.value.trim()) body.base_url = baseUrl.value.trim();
    if (apiKey.value) body.api_key = apiKey.value;
    submit.disabled = true;
    try {
      const created = await post("/v1/providers", body);
      apiKey.value = "";
      form.reset();
      toast(`Provider "${created.name}" added.`);
      load();
    } catch (err) {
      box.fail(err, "The provider could not be added");
    } finally {
      submit.disabled = false;
    }
  });

  const load = async () => {
    try {
      const providers = await get("/v1/providers");
      if (!providers.length) {
        replace(list, emptyState("No providers."));
        return;
      }
      replace(list, h("ul", { class: "cards" }, providers.map((provider) => providerCard(provider, box, load))));
    } catch (err) {
      box.fail(err, "The providers could not be listed");
      replace(list);
    }
  };
  replace(container, pageHeader("Providers"), box, list, form);
  await load();
  return null;
}

function providerCard(provider, box, reload) {
  const modelsArea = h("div", { class: "models", "aria-live": "polite" });
  const show = h("button", { type: "button", class: "button", "aria-expanded": "false" }, "Show models");
  show.addEventListener("click", async () => {
    if (show.getAttribute("aria-expanded") === "true") {
      replace(modelsArea);
      show.setAttribute("aria-expanded", "false");
      show.textContent = "Show models";
      return;
    }
    replace(modelsArea, h("p", { class: "muted" }, "Asking the provider…"));
    try {
      const listed = await get(`/v1/providers/${encodeURIComponent(provider.id)}/models`);
      replace(modelsArea, listed.models.length
        ? h("ul", { class: "model-list" }, listed.models.map((m) => h("li", {}, h("code", {}, `${provider.name}/${m}`))))
        : h("p", { class: "muted" }, "This provider lists no models; any model name is accepted."),
        h("p", { class: "muted small" }, listed.source === "configured" ? "Models configured for this provider." : "Models the provider lists."));
      show.setAttribute("aria-expanded", "true");
      show.textContent = "Hide models";
    } catch (err) {
      replace(modelsArea, h("p", { class: "alert alert-error", role: "alert" }, `The models could not be listed: ${err.detail || err.message}`));
    }
  });
  const actions = [show];
  if (!provider.builtin) {
    const remove = h("button", { type: "button", class: "button danger" }, "Delete");
    remove.addEventListener("click", async () => {
      const ok = await confirmDialog({ title: "Delete provider?", message: `Delete "${provider.name}"? Apps using its models fail until they use another.`, confirmLabel: "Delete provider" });
      if (!ok) return;
      try {
        await del(`/v1/providers/${encodeURIComponent(provider.id)}`);
        toast(`Provider "${provider.name}" deleted.`);
        reload();
      } catch (err) {
        box.fail(err, "The provider could not be deleted");
      }
    });
    actions.push(remove);
  }
  return h("li", { class: "card", dataset: { provider: provider.name } },
    h("div", { class: "card-head" }, h("h2", {}, provider.name), h("span", { class: "badge" }, provider.builtin ? "built in" : provider.type)),
    h("dl", { class: "facts" },
      h("dt", {}, "Type"), h("dd", {}, provider.type),
      provider.base_url ? [h("dt", {}, "Base URL"), h("dd", { class: "break" }, provider.base_url)] : null,
      h("dt", {}, "API key"), h("dd", {}, provider.builtin ? "—" : provider.has_api_key ? "set (hidden)" : "none"),
      provider.created_at ? [h("dt", {}, "Added"), h("dd", {}, formatDate(provider.created_at))] : null),
    h("div", { class: "button-row" }, actions),
    modelsArea);
}

