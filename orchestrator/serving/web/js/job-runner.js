// A long document through the job API: submit, then poll the pages finished so far (GET /v1/jobs/{id}/pages)
// and hand them on as they come, then fetch the complete response. Against a server without the pages route it
// polls the job's status for the progress bar and shows the pages at the end.

import { ApiError } from "./api.js";

const FIRST_POLL_MS = 400;
const MAX_POLL_MS = 2000;

/**
 * @param {Api} api
 * @param {FormData} form  the same fields as /v1/ocr
 * @param {object} hooks  signal (AbortSignal), onStatus({state, pages_done, pages_total, job_id}), onPages(pages)
 * @returns {Promise<object>} the job's OCRResponse
 */
export async function runJob(api, form, { signal, onStatus = () => {}, onPages = () => {} }) {
  const submitted = await api.submitJob(form, signal);
  onStatus(submitted);
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
    if (status.state === "succeeded") return api.jobResult(submitted.job_id, signal);
    if (status.state === "failed" || status.state === "interrupted") {
      const err = status.error || { code: "internal_error", message: `the job was ${status.state}` };
      throw new ApiError({ status: 0, code: err.code, message: `The job ${status.state} after ${status.pages_done} of ${status.pages_total} pages: ${err.message}`, accepted: err.accepted ?? null });
    }
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
