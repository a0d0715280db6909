// Small DOM and formatting helpers. Text always goes in as text nodes: only sanitised markdown uses innerHTML.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

/** Append children to `node`, skipping null/false ones (the DOM's own append would write "null"). */
export function add(node, ...children) {
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/** Replace `node`'s children (null/false children are skipped, as in h()). */
export function fill(node, ...children) {
  clear(node);
  append(node, children);
  return node;
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function fmtSeconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 120) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function fmtNumber(n, digits = 0) {
  if (n === null || n === undefined) return "–";
  return Number(n).toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

export function pct(x) {
  return x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`;
}

const TYPE_LABELS = {
  "application/pdf": "PDF",
  "image/png": "PNG",
  "image/jpeg": "JPEG",
  "image/tiff": "TIFF",
  "image/webp": "WebP",
  "image/bmp": "BMP",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "DOCX",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": "PPTX",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "XLSX",
  "application/epub+zip": "EPUB",
  "text/html": "HTML",
  "text/csv": "CSV",
};

const EXTENSIONS = {
  "application/pdf": [".pdf"],
  "image/png": [".png"],
  "image/jpeg": [".jpg", ".jpeg"],
  "image/tiff": [".tif", ".tiff"],
  "image/webp": [".webp"],
  "image/bmp": [".bmp"],
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document": [".docx"],
  "application/vnd.openxmlformats-officedocument.presentationml.presentation": [".pptx"],
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": [".xlsx"],
  "application/epub+zip": [".epub"],
  "text/html": [".html", ".htm"],
  "text/csv": [".csv"],
};

export function typeLabel(mediaType) {
  return TYPE_LABELS[mediaType] || mediaType;
}

/** The file picker's `accept` list for these media types: the types and their usual extensions. */
export function acceptList(mediaTypes) {
  return [...mediaTypes, ...mediaTypes.flatMap((t) => EXTENSIONS[t] || [])].join(",");
}

export function download(filename, text, mediaType) {
  const url = URL.createObjectURL(new Blob([text], { type: mediaType }));
  const a = h("a", { href: url, download: filename, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A file name for a download: the document's name without its extension, then the given suffix. */
export function outName(documentName, suffix) {
  const base = (documentName || "document").replace(/\.[^.]+$/, "").replace(/[^\w.-]+/g, "_") || "document";
  return `${base}.${suffix}`;
}
