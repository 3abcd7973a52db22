// The Studio shell: sign-in, navigation, and the hash router that renders one page at a time.
import { h, replace } from "./dom.js";
import { ApiError, currentSession, loadSession, onSignedOut, signIn, signOut } from "./api.js";
import { alertBox, describeError, field, toast } from "./ui.js";

const PAGES = [
  { path: "apps", label: "Apps", module: "./apps.js" },
  { path: "chat", label: "Chat", module: "./chat.js" },
  { path: "runs", label: "Runs", module: "./runs.js" },
  { path: "knowledge", label: "Knowledge", module: "./knowledge.js" },
  { path: "providers", label: "Providers", module: "./providers.js" },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const account = document.getElementById("account");
let cleanup = null;
let renderToken = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart = ""] = raw.split("?");
  const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
  return { page: parts[0] || "apps", rest: parts.slice(1), query: new URLSearchParams(queryPart) };
}

function buildNav() {
  replace(nav, h("ul", {}, PAGES.map((page) => h("li", {}, h("a", { href: `#/${page.path}`, dataset: { page: page.path } }, page.label)))));
  const keysButton = h("button", { type: "button", class: "button", id: "api-keys-button", "aria-haspopup": "dialog" }, "API Keys");
  const keysMenuButton = h("button", { type: "button", class: "button menu-toggle", "aria-label": "API key actions", "aria-haspopup": "menu", "aria-expanded": "false" }, "▾");
  const menu = h("ul", { class: "menu", role: "menu", hidden: true },
    h("li", { role: "none" }, h("button", { type: "button", role: "menuitem", dataset: { action: "list" } }, "View API Keys")),
    h("li", { role: "none" }, h("button", { type: "button", role: "menuitem", dataset: { action: "new" } }, "New API Key")),
  );
  const closeMenu = () => {
    menu.hidden = true;
    keysMenuButton.setAttribute("aria-expanded", "false");
  };
  keysButton.addEventListener("click", async () => (await import("./keys.js")).openKeysDialog());
  keysMenuButton.addEventListener("click", () => {
    menu.hidden = !menu.hidden;
    keysMenuButton.setAttribute("aria-expanded", String(!menu.hidden));
    if (!menu.hidden) menu.querySelector("button").focus();
  });
  menu.addEventListener("keydown", (event) => {
    const items = [...menu.querySelectorAll("button")];
    const index = items.indexOf(document.activeElement);
    if (event.key === "Escape") {
      closeMenu();
      keysMenuButton.focus();
    } else if (event.key === "ArrowDown") {
      event.preventDefault();
      items[(index + 1) % items.length].focus();
    } else if (event.key === "ArrowUp") {
      event.preventDefault();
      items[(index - 1 + items.length) % items.length].focus();
    }
  });
  menu.addEventListener("click", async (event) => {
    const action = event.target.dataset.action;
    if (!action) return;
    closeMenu();
    const keys = await import("./keys.js");
    if (action === "new") keys.openCreateKeyDialog();
    else keys.openKeysDialog();
  });
  document.addEventListener("click", (event) => {
    if (!menu.hidden && !menu.contains(event.target) && event.target !== keysMenuButton) closeMenu();
  });
  const who = currentSession();
  const whoText = who.method === "password" ? "admin" : `key ${who.key_name || ""}`.trim();
  const signOutButton = h("button", { type: "button", class: "button ghost", id: "sign-out" }, "Sign out");
  signOutButton.addEventListener("click", async () => {
    try {
      await signOut();
    } catch (err) {
      toast(describeError(err, "Signing out failed"), "error");
    }
    showSignIn("You are signed out.");
  });
  replace(account,
    h("div", { class: "keys-control" }, keysButton, keysMenuButton, menu),
    h("span", { class: "who muted", title: `workspace ${who.workspace_id}` }, whoText),
    signOutButton,
  );
  nav.hidden = false;
  account.hidden = false;
}

function highlightNav(page) {
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function route() {
  if (!currentSession()) return;
  const { page, rest, query } = parseHash();
  const entry = PAGES.find((p) => p.path === page) || PAGES[0];
  highlightNav(entry.path);
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // a page that fails to clean up must not block the next
    }
    cleanup = null;
  }
  const token = ++renderToken;
  const container = h("div", { class: "page" });
  replace(main, container);
  try {
    const module = await import(entry.module);
    if (token !== renderToken) return;
    cleanup = (await module.render(container, { rest, query })) || null;
    document.title = `${entry.label} · Headwater Studio`;
  } catch (err) {
    if (token !== renderToken) return;
    if (err instanceof ApiError && err.status === 401) return; // the sign-in form is showing
    const box = alertBox();
    replace(container, box);
    box.fail(err, `The ${entry.label} page could not load`);
  }
}

function showSignIn(message) {
  if (cleanup) {
    try {
      cleanup();
    } catch {
      // ignore
    }
    cleanup = null;
  }
  document.querySelectorAll(".backdrop").forEach((el) => el.remove());
  nav.hidden = true;
  account.hidden = true;
  document.title = "Sign in · Headwater Studio";
  const box = alertBox();
  if (message) box.show(message, "info");
  const method = h("select", { name: "method" },
    h("option", { value: "password" }, "Admin user and password"),
    h("option", { value: "api_key" }, "Admin API key"),
  );
  const username = h("input", { name: "username", autocomplete: "username", value: "admin", required: true });
  const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
  const apiKey = h("input", { name: "api_key", type: "password", autocomplete: "off", spellcheck: "false", placeholder: "hw_…" });
  const passwordFields = h("div", {}, field("User name", username), field("Password", password));
  const keyFields = h("div", { hidden: true }, field("API key (admin scope)", apiKey, "The key is checked once; the Studio then uses a session cookie."));
  const submit = h("button", { type: "submit", class: "button primary" }, "Sign in");
  method.addEventListener("change", () => {
    const byKey = method.value === "api_key";
    passwordFields.hidden = byKey;
    keyFields.hidden = !byKey;
    username.required = !byKey;
    password.required = !byKey;
    apiKey.required = byKey;
  });
  const form = h("form", { class: "card sign-in", "aria-labelledby": "sign-in-title" },
    h("h1", { id: "sign-in-title" }, "Sign in to the Studio"),
    box,
    field("Sign in with", method),
    passwordFields,
    keyFields,
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    box.clear();
    try {
      const credentials = method.value === "api_key"
        ? { api_key: apiKey.value.trim() }
        : { username: username.value, password: password.value };
      await signIn(credentials);
      start();
    } catch (err) {
      box.fail(err, "Sign-in failed");
      submit.disabled = false;
    }
  });
  replace(main, h("div", { class: "page sign-in-page" }, form));
  (method.value === "api_key" ? apiKey : password).focus();
}

function start() {
  buildNav();
  if (!location.hash) history.replaceState(null, "", "#/apps");
  route();
}

onSignedOut((message) => showSignIn(message ? `Please sign in again: ${message}` : "Please sign in again."));
window.addEventListener("hashchange", () => {
  route();
  main.focus({ preventScroll: true });
});

(async () => {
  try {
    const info = await loadSession();
    if (info) start();
    else showSignIn();
  } catch (err) {
    const box = alertBox();
    replace(main, box);
    box.fail(err, "The Studio could not start");
  }
})();
