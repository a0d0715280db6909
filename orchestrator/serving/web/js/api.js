// The service's HTTP API as the page uses it. Every failure becomes an ApiError carrying the API's own error
// (code, message, what is accepted) — or, when the answer is not the API's JSON, a plain sentence; never a trace.

const KEY_STORAGE = "ocrserve.apiKey";

export class ApiError extends Error {
  constructor({ status = 0, code = "network", message, accepted = null, requestId = null, backend = null }) {
    super(message);
    this.status = status;
    this.code = code;
    this.accepted = accepted;
    this.requestId = requestId;
    this.backend = backend;
  }
}

export class Api {
  constructor(root) {
    this.root = root; // the app's route prefix ('' at the host's root)
    this.onUnauthorized = () => {};
  }

  get key() {
    return sessionStorage.getItem(KEY_STORAGE) || "";
  }

  set key(value) {
    if (value) sessionStorage.setItem(KEY_STORAGE, value);
    else sessionStorage.removeItem(KEY_STORAGE);
  }

  url(path) {
    return `${this.root}${path}`;
  }

  async request(path, { method = "GET", body = null, signal = null, expect = "json", headers: extra = {} } = {}) {
    const headers = { ...extra };
    if (this.key) headers["x-api-key"] = this.key;
    let response;
    try {
      response = await fetch(this.url(path), { method, body, headers, signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError({ message: "The service did not answer: is it running, and is this page's address right?" });
    }
    if (!response.ok) throw await errorOf(response, this);
    if (expect === "blob") return response.blob();
    if (expect === "response") return response;
    return response.json();
  }

  backends() {
    return this.request("/v1/backends");
  }

  ocr(form, signal) {
    return this.request("/v1/ocr", { method: "POST", body: form, signal });
  }

  extract(form, signal) {
    return this.request("/v1/extract", { method: "POST", body: form, signal });
  }

  compare(form, signal) {
    return this.request("/v1/compare", { method: "POST", body: form, signal });
  }

  submitJob(form, signal) {
    return this.request("/v1/jobs", { method: "POST", body: form, signal });
  }

  jobPages(jobId, start, signal) {
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}/pages?start=${start}`, { signal });
  }

  job(jobId, signal) {
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}`, { signal });
  }

  /** The job's event stream (a Response whose body is text/event-stream), resumed after `lastEventId`. */
  jobEvents(jobId, lastEventId, signal) {
    const headers = lastEventId === null ? {} : { "Last-Event-ID": String(lastEventId) };
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}/events`, { signal, headers, expect: "response" });
  }

  cancelJob(jobId, signal) {
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}`, { method: "DELETE", signal });
  }

  jobResult(jobId, signal) {
    return this.request(`/v1/jobs/${encodeURIComponent(jobId)}/result`, { signal });
  }

  pageImage(file, page, dpi, signal) {
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("page", String(page));
    if (dpi) form.append("dpi", String(dpi));
    return this.request("/v1/page-image", { method: "POST", body: form, signal, expect: "blob" });
  }
}

async function errorOf(response, api) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not the API's JSON (a proxy's page, a dropped connection)
  }
  const requestId = response.headers.get("x-request-id");
  if (body && body.error && body.error.message) {
    const error = new ApiError({
      status: response.status,
      code: body.error.code,
      message: body.error.message,
      accepted: body.error.accepted ?? null,
      requestId: body.request_id || requestId,
      backend: body.backend || null,
    });
    if (error.code === "unauthorized") api.onUnauthorized(error);
    return error;
  }
  return new ApiError({
    status: response.status,
    code: `http_${response.status}`,
    message: `The service answered HTTP ${response.status} ${response.statusText || ""}`.trim() + " without details.",
    requestId,
  });
}
