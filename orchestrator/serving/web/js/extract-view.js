// An extraction's answer (POST /v1/extract): each leaf field with its value, how it matched the page's OCR
// (exact / normalised / fuzzy / not found) and where: the evidence boxes are drawn over the page picture, and
// hovering or focusing a field picks its boxes out. A value with no evidence on the page is flagged, never hidden.

import { h, fill } from "./dom.js";
import { PageNav } from "./page-nav.js";
import { warningList } from "./summary.js";

export class ExtractView {
  constructor(result, { pageImages, dpi }) {
    this.result = result;
    this.pageImages = pageImages;
    this.dpi = dpi;
    // scope 'document': one list for the document; scope 'page': each page's own
    this.evidence = result.evidence || result.pages.flatMap((p) => p.evidence || []);
    this.pages = result.pages.map((p) => p.index);
    this.nav = new PageNav((i) => this.show(i));
    this.canvas = h("div", { class: "page-canvas" });
    this.fields = h("ol", { class: "fields" }, this.evidence.map((e, k) => this.row(e, k)));
    this.element = h(
      "div",
      { class: "extract-view", dataset: { backend: result.backend } },
      h(
        "div",
        { class: "result-head" },
        h("h2", {}, `${result.backend}: ${result.json_schema}`),
        h("p", { class: result.valid ? "hint" : "bad" }, result.valid ? "The answer validates against the schema." : `Does not validate: ${result.errors.join("; ")}`),
        warningList(result.warnings),
      ),
      this.nav.element,
      h(
        "div",
        { class: "reading" },
        h("div", { class: "figure-pane" }, h("figure", { class: "page-figure" }, this.canvas)),
        h("div", { class: "markdown-pane" }, this.evidence.length ? this.fields : h("p", { class: "hint" }, "No evidence in this answer (it needs include_markdown).")),
      ),
    );
    this.nav.set(this.pages);
    if (this.pages.length) this.nav.choose(this.pages[0]);
  }

  row(e, k) {
    const where = e.page === null || e.page === undefined ? "not on the pages" : `page ${e.page + 1}`;
    const el = h(
      "li",
      { class: `field m-${e.match}`, tabindex: "0", dataset: { path: e.path, match: e.match } },
      h("code", {}, e.path),
      " ",
      h("strong", {}, JSON.stringify(e.value)),
      h("span", { class: "hint" }, ` · ${e.match.replace("_", " ")}${e.match === "fuzzy" ? ` ${e.score.toFixed(2)}` : ""} · ${where}${e.candidates > 1 ? ` · ${e.candidates} places match` : ""}`),
      e.match === "not_found" ? h("p", { class: "field-flag" }, "No evidence for this value on the pages: check it by hand.") : null,
    );
    const on = () => this.pick(k);
    el.addEventListener("mouseenter", on);
    el.addEventListener("focus", on);
    el.addEventListener("mouseleave", () => this.pick(null));
    el.addEventListener("blur", () => this.pick(null));
    return el;
  }

  /** The page picture with every field's boxes on it (each box knows its field). */
  show(index) {
    this.current = index;
    const img = h("img", { class: "page-image", alt: `Page ${index + 1} with the extracted fields' evidence` });
    const boxes = [];
    this.evidence.forEach((e, k) => {
      for (const box of e.boxes || []) {
        if (box.page !== index) continue;
        const [x0, y0, x1, y1] = box.bbox_norm.map((v) => Math.min(1, Math.max(0, v)));
        const el = h("div", { class: `evidence-box m-${e.match}`, title: `${e.path}: ${JSON.stringify(e.value)}`, dataset: { field: k } });
        Object.assign(el.style, { left: `${x0 * 100}%`, top: `${y0 * 100}%`, width: `${(x1 - x0) * 100}%`, height: `${(y1 - y0) * 100}%` });
        boxes.push(el);
      }
    });
    fill(this.canvas, img, h("div", { class: "overlay" }, boxes));
    this.pageImages.url(index, this.dpi).then(
      (url) => {
        if (url) {
          img.src = url;
          this.canvas.classList.add("has-image");
        }
      },
      () => {},
    );
  }

  /** Pick out field `k`'s boxes (going to its page), or none. */
  pick(k) {
    const e = k === null ? null : this.evidence[k];
    if (e && e.page !== null && e.page !== undefined && e.page !== this.current && this.pages.includes(e.page)) this.nav.choose(e.page);
    this.canvas.querySelectorAll(".evidence-box").forEach((b) => b.classList.toggle("active", k !== null && b.dataset.field === String(k)));
    this.fields.querySelectorAll(".field").forEach((f, i) => f.classList.toggle("active", i === k));
  }
}
