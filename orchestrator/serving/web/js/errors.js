// An error a person can act on: what happened (the API's message), what is accepted instead, and the request id
// to quote. Used for the whole request, and inside a comparison column for one backend's failure.

import { h, typeLabel } from "./dom.js";

const TITLES = {
  empty_document: "The file is empty",
  unsupported_media_type: "This kind of file is not accepted",
  invalid_document: "The file could not be read",
  encrypted_document: "The document is encrypted",
  document_too_large: "The file is too large",
  too_many_pages: "Too many pages for one request",
  too_many_pixels: "A page is too large",
  invalid_page_range: "The page range does not fit the document",
  invalid_option: "An option was not accepted",
  unknown_backend: "No such backend",
  backend_unavailable: "The backend is not available right now",
  models_missing: "The backend's models are not installed",
  unauthorized: "An API key is needed",
  overloaded: "The service is busy",
  timeout: "The request took too long",
  not_found: "Not found",
  job_not_finished: "The job has not finished",
  internal_error: "Something broke on the server",
  network: "No answer from the service",
};

const HINTS = {
  too_many_pages: "Give a page range, or tick “use the job API” for long documents.",
  overloaded: "Wait a moment and try again.",
  backend_unavailable: "Try again in a moment, or pick another backend.",
  timeout: "Try fewer pages, or the job API.",
  unauthorized: "Enter the service's API key above.",
  internal_error: "Quote the request id to whoever runs the service.",
};

export function errorTitle(code) {
  return TITLES[code] || "The request failed";
}

export function errorCard(error, { compact = false } = {}) {
  const code = error.code || "error";
  return h(
    "div",
    { class: `error-body${compact ? " compact" : ""}`, dataset: { code } },
    h("h3", { class: "error-title" }, errorTitle(code), " ", h("code", { class: "error-code" }, code)),
    h("p", { class: "error-message" }, error.message || "No details were given."),
    acceptedView(error.accepted),
    HINTS[code] ? h("p", { class: "hint" }, HINTS[code]) : null,
    error.requestId ? h("p", { class: "hint request-id" }, "Request id: ", h("code", {}, error.requestId)) : null,
  );
}

function acceptedView(accepted) {
  if (accepted === null || accepted === undefined || accepted === "") return null;
  if (Array.isArray(accepted)) {
    return h(
      "div",
      { class: "accepted" },
      h("span", { class: "accepted-label" }, "Accepted: "),
      h("ul", { class: "chips" }, accepted.map((a) => h("li", { class: "chip" }, describe(a)))),
    );
  }
  if (typeof accepted === "object") {
    return h(
      "div",
      { class: "accepted" },
      h("span", { class: "accepted-label" }, "Accepted: "),
      h(
        "dl",
        { class: "accepted-list" },
        Object.entries(accepted).map(([k, v]) => [h("dt", {}, k), h("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]),
      ),
    );
  }
  return h("p", { class: "accepted" }, "Accepted: ", String(accepted));
}

function describe(value) {
  if (typeof value !== "string") return JSON.stringify(value);
  const label = typeLabel(value);
  return label === value ? value : `${label} (${value})`;
}
