// The page's controller: loads the backends, keeps the chosen file and options, runs one backend (one request,
// or the job API for long documents) or a comparison, and shows progress, results and errors.

import { Api, ApiError } from "./api.js";
import { h, clear, fill, fmtBytes, fmtSeconds, typeLabel, acceptList } from "./dom.js";
import { errorCard } from "./errors.js";
import { BackendPicker } from "./backend-picker.js";
import { setupDropzone } from "./dropzone.js";
import { PageImages, sniff } from "./page-images.js";
import { SingleView } from "./single-view.js";
import { CompareView } from "./compare-view.js";
import { ExtractView } from "./extract-view.js";
import { runJob, JobCancelled, cancelledNote } from "./job-runner.js";

const $ = (id) => document.getElementById(id);
const root = document.querySelector('meta[name="ocrserve-root"]').content;
const api = new Api(root);
const pageImages = new PageImages(api);
const picker = new BackendPicker($("backend-list"), $("backend-options"), () => refreshRunButton());

const state = { file: null, sniffed: null, running: null, jobTouched: false, job: null };

// --- API key ------------------------------------------------------------------------------------------------

function showKeyPanel(message = "") {
  $("key-panel").hidden = false;
  $("key-toggle").hidden = false;
  $("key-toggle").setAttribute("aria-expanded", "true");
  $("key-message").textContent = message;
  $("api-key").focus();
}

api.onUnauthorized = () => showKeyPanel(api.key ? "That key was not accepted." : "");

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  api.key = $("api-key").value.trim();
  $("api-key").value = "";
  $("key-message").textContent = "";
  loadBackends();
});

$("key-forget").addEventListener("click", () => {
  api.key = "";
  $("key-message").textContent = "Key forgotten.";
});

$("key-toggle").addEventListener("click", () => {
  const open = $("key-panel").hidden;
  $("key-panel").hidden = !open;
  $("key-toggle").setAttribute("aria-expanded", String(open));
  if (open) $("api-key").focus();
});

// --- backends -----------------------------------------------------------------------------------------------

async function loadBackends() {
  $("service-status").textContent = "Asking the service…";
  try {
    const listing = await api.backends();
    $("key-panel").hidden = true;
    $("key-toggle").setAttribute("aria-expanded", "false");
    if (api.key) $("key-toggle").hidden = false;
    picker.set(listing);
    const ready = listing.backends.filter((b) => b.status === "ready").length;
    $("service-status").textContent = `${ready} of ${listing.backends.length} backends ready`;
    $("service-status").className = `service-status ${ready ? "ok" : "bad"}`;
    const types = picker.mediaTypes();
    $("file-input").setAttribute("accept", acceptList(types));
    $("accepted-types").textContent = `Accepted: ${types.map(typeLabel).join(", ")}. The type is read from the file's content.`;
  } catch (e) {
    $("service-status").textContent = e.code === "unauthorized" ? "API key needed" : "Service not reachable";
    $("service-status").className = "service-status bad";
    fill($("backend-list"), h("div", { class: "error-card inline" }, errorCard(e, { compact: true })));
  }
  refreshRunButton();
}

// --- the document -------------------------------------------------------------------------------------------

setupDropzone($("dropzone"), $("file-input"), async (file) => {
  state.file = file;
  state.sniffed = await sniff(file);
  pageImages.setFile(file, state.sniffed.display);
  picker.setFileType(state.sniffed.mediaType);
  const kind = state.sniffed.mediaType === "application/zip" ? "office/EPUB (zip)" : typeLabel(state.sniffed.mediaType);
  fill($("file-summary"), h("strong", {}, file.name), ` · ${fmtBytes(file.size)} · ${kind}`);
  if (!state.jobTouched) $("use-job").checked = ["application/pdf", "image/tiff"].includes(state.sniffed.mediaType);
  refreshRunButton();
});

$("use-job").addEventListener("change", () => {
  state.jobTouched = true;
});

function refreshRunButton() {
  const chosen = picker.selected();
  const run = $("run");
  run.disabled = Boolean(state.running) || !state.file || chosen.length === 0;
  run.textContent = chosen.length > 1 ? `Compare ${chosen.length} backends` : chosen.length === 1 ? `Read with ${chosen[0]}` : "Read";
  $("use-job").disabled = chosen.length > 1;
  $("use-job").parentElement.title = chosen.length > 1 ? "Comparisons run as one request" : "";
  $("form-message").textContent = !state.file ? "Choose a document to start." : chosen.length === 0 ? "Tick at least one backend." : "";
}

// --- running ------------------------------------------------------------------------------------------------

$("run-form").addEventListener("submit", (e) => {
  e.preventDefault();
  if (!$("run").disabled) run();
});

// Stop: a plain request is dropped at once; a job is asked about, since it would go on in the service.
$("cancel").addEventListener("click", () => {
  if (state.job && ["queued", "running"].includes(state.job.state)) $("stop-choice").hidden = false;
  else state.running?.abort();
});
$("keep-job").addEventListener("click", () => {
  $("stop-choice").hidden = true;
  state.stopNote = `Stopped watching. The job goes on in the service (job ${state.job?.job_id}).`;
  state.running?.abort();
});
$("cancel-job").addEventListener("click", async () => {
  $("stop-choice").hidden = true;
  const job = state.job;
  try {
    const cancelled = await api.cancelJob(job.job_id);
    state.stopNote = cancelledNote(cancelled);
  } catch (e) {
    state.stopNote = `The job could not be cancelled: ${e.message}`;
  }
  state.running?.abort();
});

function commonForm() {
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  const pages = $("pages").value.trim();
  const dpi = $("dpi").value.trim();
  if (pages) form.append("pages", pages);
  if (dpi) form.append("dpi", dpi);
  form.append("include_boxes_image", "false"); // the page draws its own overlay
  return form;
}

async function run() {
  const chosen = picker.selected();
  const controller = new AbortController();
  state.running = controller;
  $("cancel").hidden = false;
  $("error").hidden = true;
  clear($("output"));
  refreshRunButton();
  const dpi = $("dpi").value.trim() ? Number($("dpi").value) : null;
  const timer = startProgress(chosen.length > 1 ? `Comparing ${chosen.join(", ")}…` : `Reading with ${chosen[0]}…`);
  try {
    if (chosen.length > 1) await runCompare(chosen, dpi, controller.signal);
    else await runSingle(chosen[0], dpi, controller.signal);
    $("results").focus({ preventScroll: true });
  } catch (e) {
    if (e.name === "AbortError") showMessage(state.stopNote || "Stopped.");
    else if (e instanceof JobCancelled) showMessage(cancelledNote(e.status)); // its end may come before DELETE's answer
    else showError(e);
  } finally {
    clearInterval(timer);
    $("progress").hidden = true;
    $("cancel").hidden = true;
    $("stop-choice").hidden = true;
    state.running = null;
    state.job = null;
    state.stopNote = null;
    refreshRunButton();
  }
}

async function runSingle(backend, dpi, signal) {
  const preset = $("extract-preset").value;
  if (preset) return runExtract(backend, preset, dpi, signal);
  const form = commonForm();
  form.append("backend", backend);
  const options = picker.options()[backend];
  if (options) form.append("options", JSON.stringify(options));
  const chunking = $("chunking").value;
  if (chunking !== "none") {
    const size = Number($("chunk-tokens").value) || 512;
    form.append("chunking", chunking);
    form.append("chunk_tokens", String(size));
    if (chunking === "tokens") form.append("chunk_overlap", String(Math.floor(size / 8)));
  }
  const view = new SingleView({ backend, documentName: state.file.name, pageImages, dpi });
  if ($("use-job").checked && chunking === "none") {  // chunks are cut from one request's answer
    fill($("output"), view.element);
    try {
      const result = await runJob(api, form, {
        signal,
        onStatus: (s) => jobProgress(s),
        onPages: (pages) => view.addPages(pages, jobTotal),
      });
      view.setResult(result);
      return;
    } catch (e) {
      // the job API is not deployed in this application: one request instead
      if (!(e instanceof ApiError && e.code === "not_found" && /job API is not deployed/.test(e.message))) throw e;
    }
  }
  const result = await api.ocr(form, signal);
  view.setResult(result);
  fill($("output"), view.element);
}

/** Fields as JSON with a shipped schema (POST /v1/extract), each value's evidence drawn on its page. */
async function runExtract(backend, preset, dpi, signal) {
  const form = new FormData();
  form.append("file", state.file, state.file.name);
  const pages = $("pages").value.trim();
  if (pages) form.append("pages", pages);
  if (dpi) form.append("dpi", String(dpi));
  form.append("backend", backend);
  form.append("preset", preset);
  form.append("scope", "document");
  const options = picker.options()[backend];
  if (options) form.append("options", JSON.stringify(options));
  const result = await api.extract(form, signal);
  fill($("output"), new ExtractView(result, { pageImages, dpi }).element);
}

let jobTotal = null;

function jobProgress(status) {
  state.job = status;
  jobTotal = status.pages_total;
  const bar = $("progress-bar");
  bar.max = Math.max(1, status.pages_total);
  bar.value = status.pages_done || 0;
  $("progress-text").textContent = `Job ${status.state}: ${status.pages_done || 0} of ${status.pages_total} pages`;
}

async function runCompare(backends, dpi, signal) {
  const form = commonForm();
  form.append("backends", backends.join(","));
  const options = picker.options();
  if (Object.keys(options).length) form.append("options", JSON.stringify(options));
  const response = await api.compare(form, signal);
  fill($("output"), new CompareView(response, { pageImages, dpi }).element);
}

// --- progress and errors ------------------------------------------------------------------------------------

function startProgress(text) {
  const started = performance.now();
  $("progress").hidden = false;
  $("progress-text").textContent = text;
  const bar = $("progress-bar");
  bar.removeAttribute("value"); // indeterminate until a job reports pages
  jobTotal = null;
  const tick = () => ($("progress-time").textContent = fmtSeconds((performance.now() - started) / 1000));
  tick();
  return setInterval(tick, 250);
}

function showError(error) {
  const box = $("error");
  const err = error instanceof ApiError ? error : new ApiError({ code: "internal_error", message: "The page hit an unexpected problem; reload it and try again." });
  if (!(error instanceof ApiError)) console.error(error); // for whoever debugs the page; never shown as text
  fill(box, errorCard(err));
  box.hidden = false;
}

function showMessage(text) {
  const box = $("error");
  fill(box, h("p", {}, text));
  box.hidden = false;
}

loadBackends();
