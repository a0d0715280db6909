// What a response says about itself: who answered with which model, the document, timings, usage, warnings,
// and the downloads. Shared by the one-backend view and each column of a comparison.

import { h, fmtBytes, fmtNumber, fmtSeconds, typeLabel, download, outName } from "./dom.js";

export function modelLine(model) {
  if (!model) return "";
  return [model.id, model.version && `v${model.version}`, model.engine, model.device].filter(Boolean).join(" · ");
}

export function documentLine(doc) {
  if (!doc) return "";
  const pages = doc.pages_processed.length === doc.page_count ? `${doc.page_count} page${doc.page_count === 1 ? "" : "s"}` : `${doc.pages_processed.length} of ${doc.page_count} pages`;
  return `${doc.name} · ${typeLabel(doc.media_type)} · ${pages} · ${fmtBytes(doc.size_bytes)}`;
}

/** Figures as a definition list: label → value, skipping the unknown. */
export function facts(pairs, cls = "facts") {
  const shown = pairs.filter(([, v]) => v !== null && v !== undefined && v !== "");
  return h("dl", { class: cls }, shown.map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v))));
}

export function timingFacts(timings) {
  if (!timings) return [];
  return [
    ["Total", fmtSeconds(timings.total_s)],
    ["Engine", fmtSeconds(timings.inference_s)],
    ["Queue", fmtSeconds(timings.queue_s)],
  ];
}

export function usageFacts(usage) {
  if (!usage) return [];
  const compute = usage.compute;
  return [
    ["Pages", fmtNumber(usage.pages)],
    ["Vision tokens", usage.vision_tokens === null ? null : fmtNumber(usage.vision_tokens)],
    ["Output tokens", usage.output_tokens === null ? null : fmtNumber(usage.output_tokens)],
    ["Compression", usage.compression_ratio === null || usage.compression_ratio === undefined ? null : `${usage.compression_ratio.toFixed(2)} text tokens / vision token`],
    ["CPU-seconds", compute ? fmtNumber(compute.cpu_seconds, 2) : null],
    ["GPU-seconds", compute && compute.gpu_seconds ? fmtNumber(compute.gpu_seconds, 2) : null],
  ];
}

export function pageUsageFacts(page) {
  const u = page.usage || {};
  return [
    ["Size", `${page.width} × ${page.height} px${page.dpi ? ` at ${Math.round(page.dpi)} DPI` : ""}`],
    ["Blocks", String(page.blocks.length)],
    ["Vision tokens", u.vision_tokens ?? null],
    ["Output tokens", u.output_tokens ?? null],
    ["Compression", u.compression_ratio === null || u.compression_ratio === undefined ? null : u.compression_ratio.toFixed(2)],
    ["Read by", page.backend || null],
  ];
}

export function warningList(warnings, title = "Warnings") {
  if (!warnings || warnings.length === 0) return null;
  return h("div", { class: "warnings", role: "note" }, h("strong", {}, `${title}: `), h("ul", {}, warnings.map((w) => h("li", {}, w))));
}

export function downloadButtons(result, label = "") {
  const name = result.document ? result.document.name : "document";
  const tag = label || result.backend || "result";
  return h(
    "div",
    { class: "downloads" },
    h("button", { type: "button", class: "secondary small", onclick: () => download(outName(name, `${tag}.md`), result.markdown || "", "text/markdown") }, "↓ Markdown"),
    h("button", { type: "button", class: "secondary small", onclick: () => download(outName(name, `${tag}.json`), JSON.stringify(result, null, 2), "application/json") }, "↓ JSON"),
  );
}
