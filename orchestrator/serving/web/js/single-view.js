// One backend's answer, page by page: summary (model, document, timings, usage, warnings, downloads), page
// buttons, and the current page's picture with its blocks beside the rendered markdown. Pages can arrive in
// several goes (the job API), and the full response (timings, totals, downloads) at the end. When the answer has
// chunks (the `chunking` option), their list is shown under the page; hovering one draws its source boxes.

import { ChunkList } from "./chunk-list.js";
import { h, fill } from "./dom.js";
import { PageNav } from "./page-nav.js";
import { PageReading } from "./page-reading.js";
import { documentLine, downloadButtons, facts, modelLine, pageUsageFacts, timingFacts, usageFacts, warningList } from "./summary.js";

export class SingleView {
  constructor({ backend, documentName, pageImages, dpi }) {
    this.backend = backend;
    this.documentName = documentName;
    this.pageImages = pageImages;
    this.dpi = dpi;
    this.pages = new Map(); // page index -> PageResult
    this.total = null;
    this.current = null;
    this.head = h("div", { class: "result-head" }, h("h2", {}, backend), h("p", { class: "hint" }, `Reading ${documentName}…`));
    this.nav = new PageNav((i) => this.show(i));
    this.pageInfo = h("div", { class: "page-info" });
    this.body = h("div", { class: "page-body" });
    this.chunks = h("div", { class: "chunk-pane" });
    this.element = h("div", { class: "single-view", dataset: { backend } }, this.head, this.nav.element, this.pageInfo, this.body, this.chunks);
  }

  /** Pages that arrived (in document order); the first one is shown as soon as it is there. */
  addPages(pages, total = null) {
    for (const p of pages) this.pages.set(p.index, p);
    if (total !== null) this.total = total;
    const indices = [...this.pages.keys()].sort((a, b) => a - b);
    this.nav.set(indices, this.total === null ? 0 : Math.max(0, this.total - indices.length));
    if (this.current === null && indices.length) this.nav.choose(indices[0]);
  }

  /** The complete response: every page, and what only the whole answer knows. */
  setResult(result) {
    this.result = result;
    this.addPages(result.pages, result.pages.length);
    fill(
      this.head,
      h(
        "div",
        { class: "head-line" },
        h("h2", {}, result.backend),
        h("span", { class: "model hint" }, modelLine(result.model)),
        downloadButtons(result),
      ),
      h("p", { class: "doc-line" }, documentLine(result.document)),
      h("div", { class: "fact-groups" }, facts(timingFacts(result.timings)), facts(usageFacts(result.usage))),
      warningList(result.warnings),
      result.escalations && result.escalations.length
        ? warningList(result.escalations.map((e) => `page ${e.page + 1}: ${e.from_backend} → ${e.to_backend} (${e.rules.join(", ")}), answered by ${e.answered_by}`), "Escalated")
        : null,
    );
    if (result.chunks && result.chunking) fill(this.chunks, new ChunkList(result.chunks, result.chunking, (c) => this.showChunk(c)).element);
  }

  /** Draw a chunk's source blocks on its page (going to that page first), or clear them (null). */
  showChunk(chunk) {
    if (!chunk) {
      this.reading?.markBlocks([], "from-chunk");
      return;
    }
    const page = chunk.block_refs.length ? chunk.block_refs[0].page : chunk.pages[0];
    if (page === undefined) return;
    if (page !== this.current) this.nav.choose(page);
    this.reading?.markBlocks(chunk.block_refs.filter((r) => r.page === page).map((r) => r.block), "from-chunk");
  }

  show(index) {
    const page = this.pages.get(index);
    if (!page) return;
    this.current = index;
    fill(this.pageInfo, facts(pageUsageFacts(page), "facts inline"), warningList(page.warnings, `Page ${index + 1} warnings`));
    this.reading = new PageReading(page, this.pageImages.url(index, this.dpi), { label: this.backend });
    fill(this.body, this.reading.element);
  }
}
