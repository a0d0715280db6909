// A long document through the job API: submit, then follow the job's server-sent events
// (GET /v1/jobs/{id}/events: each page as it finishes, progress after each chunk, the end) and hand the pages on
// as they come, then fetch the complete response. The stream is read with fetch (EventSource cannot send the API
// key) and resumed after Last-Event-ID if it breaks. Against a server without the events route it polls the
// pages finished so far (GET /v1/jobs/{id}/pages), or only the job's status where that route is missing too.

import { ApiError } from "./api.js";

const FIRST_POLL_MS = 400;
const MAX_POLL_MS = 2000;
const RECONNECTS = 5;

/**
 * @param {Api} api
 * @param {FormData} form  the same fields as /v1/ocr
 * @param {object} hooks  signal (AbortSignal), onStatus({state, pages_done, pages_total, job_id}), onPages(pages)
 * @returns {Promise<object>} the job's OCRResponse
 */
export async function runJob(api, form, { signal, onStatus = () => {}, onPages = () => {} }) {
  const submitted = await api.submitJob(form, signal);
  onStatus(submitted);
  let status;
  try {
    status = await followEvents(api, submitted, { signal, onStatus, onPages });
  } catch (e) {
    if (!(e instanceof NoEvents)) throw e;
    status = await poll(api, submitted, { signal, onStatus, onPages });
  }
  if (status.state === "succeeded") return api.jobResult(submitted.job_id, signal);
  if (status.state === "cancelled") throw new JobCancelled(status); // someone's choice (maybe this page's Stop), not a fault
  const err = status.error || { code: status.state === "cancelled" ? "job_cancelled" : "internal_error", message: `the job was ${status.state}` };
  throw new ApiError({ status: 0, code: err.code, message: `The job ${status.state} after ${status.pages_done} of ${status.pages_total} pages: ${err.message}`, accepted: err.accepted ?? null });
}

class NoEvents extends Error {}

/** The job ended cancelled; `status` is its final status (pages done stay readable). */
export class JobCancelled extends Error {
  constructor(status) {
    super(`job ${status.job_id} cancelled`);
    this.name = "JobCancelled";
    this.status = status;
  }
}

/** What the page says when a job was cancelled. */
export function cancelledNote(status) {
  return `Job cancelled after ${status.pages_done} of ${status.pages_total} pages; the pages read stay shown.`;
}

async function followEvents(api, submitted, { signal, onStatus, onPages }) {
  let lastId = null;
  let failures = 0;
  for (;;) {
    let response;
    try {
      response = await api.jobEvents(submitted.job_id, lastId, signal);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404 && !e.message.includes(submitted.job_id)) throw new NoEvents();
      if (e.name === "AbortError" || e instanceof ApiError) throw e;
      if (++failures > RECONNECTS) throw new NoEvents();
      await sleep(Math.min(1000 * 2 ** failures, 10000), signal);
      continue;
    }
    try {
      for await (const event of sseEvents(response.body, signal)) {
        failures = 0;
        if (event.id !== null) lastId = event.id;
        const data = JSON.parse(event.data);
        if (event.event === "page") onPages([data.page]);
        else onStatus(data);
        if (event.event === "end") return data;
      }
    } catch (e) {
      if (e.name === "AbortError") throw e;
    }
    if (++failures > RECONNECTS) throw new NoEvents(); // the stream keeps breaking (a buffering proxy?): poll
    await sleep(Math.min(1000 * 2 ** failures, 10000), signal);
  }
}

/** Events of a text/event-stream body: {id, event, data}. */
async function* sseEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal?.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const fields = {};
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const key = colon < 0 ? line : line.slice(0, colon);
        fields[key] = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      }
      if (fields.event && fields.data !== undefined) yield { id: fields.id ?? null, event: fields.event, data: fields.data };
    }
  }
}

async function poll(api, submitted, { signal, onStatus, onPages }) {
  let seen = 0;
  let pagesRoute = true;
  let wait = FIRST_POLL_MS;
  let lastDone = -1;
  for (;;) {
    await sleep(wait, signal);
    let status;
    if (pagesRoute) {
      try {
        const got = await api.jobPages(submitted.job_id, seen, signal);
        if (got.pages.length) onPages(got.pages);
        seen += got.pages.length;
        status = { ...submitted, ...got };
      } catch (e) {
        if (!(e instanceof ApiError && e.code === "not_found" && seen === 0)) throw e;
        pagesRoute = false; // an older server: progress from the status, pages at the end
        continue;
      }
    } else {
      status = await api.job(submitted.job_id, signal);
    }
    const moved = status.pages_done !== lastDone;
    lastDone = status.pages_done;
    onStatus(status);
    if (!["queued", "running"].includes(status.state)) return status;
    wait = moved ? FIRST_POLL_MS : Math.min(MAX_POLL_MS, wait * 1.5);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(new DOMException("stopped", "AbortError"));
    }, { once: true });
  });
}
