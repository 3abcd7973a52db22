// Calls to the Headwater API with the Studio session cookie (sent by the browser, httpOnly)
// and the CSRF token (kept in memory only) on every state-changing request.

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
const session = { csrf: null, info: null };
const signedOutListeners = new Set();

export class ApiError extends Error {
  constructor(status, detail, runId = null) {
    super(detail);
    this.status = status;
    this.detail = detail;
    this.runId = runId;
  }
}

export function setSession(info) {
  session.info = info;
  session.csrf = info ? info.csrf_token : null;
}

export function currentSession() {
  return session.info;
}

export function onSignedOut(listener) {
  signedOutListeners.add(listener);
}

function signedOut(message) {
  setSession(null);
  for (const listener of signedOutListeners) listener(message);
}

function headersFor(method, extra = {}) {
  const headers = { Accept: "application/json", ...extra };
  if (!SAFE.has(method) && session.csrf) headers["X-CSRF-Token"] = session.csrf;
  return headers;
}

async function errorFrom(response) {
  let detail = `${response.status} ${response.statusText || "error"}`;
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") detail = body.detail;
    else if (body && body.error && body.error.message) detail = body.error.message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(response.status, detail, response.headers.get("X-Run-Id"));
}

// fetch() that turns every failure into an ApiError with a readable message.
export async function raw(method, path, { json, body, headers = {}, signal, expectAuth = true } = {}) {
  const init = { method, headers: headersFor(method, headers), credentials: "same-origin", signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "the server could not be reached (is it running?)");
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && expectAuth) signedOut(error.detail);
    throw error;
  }
  return response;
}

export async function api(method, path, options = {}) {
  const response = await raw(method, path, options);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

export const get = (path, options) => api("GET", path, options);
export const post = (path, json, options = {}) => api("POST", path, { ...options, json });
export const put = (path, json, options = {}) => api("PUT", path, { ...options, json });
export const del = (path, options) => api("DELETE", path, options);

// Server-Sent Events from a fetch() response: yields {event, id, data} with data parsed as JSON when it is.
export async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const message = parseBlock(block);
        if (message) yield message;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseBlock(block) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length) return null;
  const text = data.join("\n");
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // plain text data ([DONE] and the like)
  }
  return { event, id, data: parsed };
}

// Multipart upload with progress (fetch() cannot report upload progress; XMLHttpRequest can).
export function upload(path, formData, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    xhr.withCredentials = true;
    for (const [name, value] of Object.entries(headersFor("POST"))) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(body);
        return;
      }
      const detail = body && typeof body.detail === "string" ? body.detail : `${xhr.status} ${xhr.statusText}`;
      if (xhr.status === 401) signedOut(detail);
      reject(new ApiError(xhr.status, detail));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "the upload could not reach the server")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "the upload was cancelled")));
    xhr.send(formData);
  });
}

export async function signIn(credentials) {
  const info = await api("POST", "/studio/api/session", { json: credentials, expectAuth: false });
  setSession(info);
  return info;
}

export async function loadSession() {
  try {
    const info = await api("GET", "/studio/api/session", { expectAuth: false });
    setSession(info);
    return info;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export async function signOut() {
  try {
    await api("DELETE", "/studio/api/session", { expectAuth: false });
  } finally {
    setSession(null);
  }
}
