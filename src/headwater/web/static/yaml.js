// Writes JSON data as block YAML (for the editor's YAML view; the server parses YAML, with safe_load).
// Strings are written double-quoted with JSON escapes (valid YAML) unless plainly safe.

const PLAIN = /^[A-Za-z_][A-Za-z0-9_ ./-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|~|y|n)$/i;

function scalar(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const text = String(value);
  if (PLAIN.test(text) && !RESERVED.test(text) && !/\s$/.test(text)) return text;
  return JSON.stringify(text);
}

function isScalar(value) {
  return value === null || typeof value !== "object";
}

function key(name) {
  return PLAIN.test(name) && !RESERVED.test(name) && !name.includes(" ") ? name : JSON.stringify(name);
}

function lines(value, indent) {
  const pad = " ".repeat(indent);
  if (Array.isArray(value)) {
    if (!value.length) return [`${pad}[]`];
    const out = [];
    for (const item of value) {
      if (isScalar(item)) {
        out.push(`${pad}- ${scalar(item)}`);
      } else if (Array.isArray(item) || !Object.keys(item).length) {
        out.push(`${pad}-`, ...lines(item, indent + 2));
      } else {
        const inner = lines(item, indent + 2);
        out.push(`${pad}- ${inner[0].slice(indent + 2)}`, ...inner.slice(1));
      }
    }
    return out;
  }
  if (value && typeof value === "object") {
    const entries = Object.entries(value);
    if (!entries.length) return [`${pad}{}`];
    const out = [];
    for (const [name, item] of entries) {
      if (isScalar(item)) out.push(`${pad}${key(name)}: ${scalar(item)}`);
      else if (Array.isArray(item) ? !item.length : !Object.keys(item).length) out.push(`${pad}${key(name)}: ${Array.isArray(item) ? "[]" : "{}"}`);
      else out.push(`${pad}${key(name)}:`, ...lines(item, indent + 2));
    }
    return out;
  }
  return [`${pad}${scalar(value)}`];
}

export function toYaml(value) {
  return `${lines(value, 0).join("\n")}\n`;
}
