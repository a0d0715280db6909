// A page as one backend read it: the picture with its blocks, and the rendered markdown, linked both ways —
// hovering a block highlights its text in the markdown (and scrolls to it); hovering text highlights its block.

import { h } from "./dom.js";
import { PageFigure } from "./page-figure.js";
import { matchBlocks, renderMarkdown } from "./markdown.js";

export class PageReading {
  /**
   * @param {object} page  a PageResult
   * @param {Promise<string|null>} imageUrl  the plain page picture
   * @param {object} opts  label, marks (Map index -> {note, disagree}), onHover(index|null) for linked views,
   *                       stacked (markdown under the picture instead of beside it)
   */
  constructor(page, imageUrl, { label = "", marks = new Map(), onHover = () => {}, stacked = false } = {}) {
    this.page = page;
    this.onHoverOut = onHover;
    this.figure = new PageFigure(page, imageUrl, { label, marks, onHover: (i) => this.blockHovered(i) });
    this.markdown = page.markdown.trim() ? renderMarkdown(page.markdown) : h("p", { class: "hint" }, "No text in this page's markdown.");
    this.pane = h("div", { class: "markdown-pane", tabindex: "0", "aria-label": `Markdown of page ${page.index + 1}${label ? ` by ${label}` : ""}` }, this.markdown);
    const { blockUnits, unitBlocks } = matchBlocks(page.blocks, this.markdown);
    this.blockUnits = blockUnits;
    for (const [unit, blocks] of unitBlocks) {
      unit.classList.add("linked");
      unit.addEventListener("mouseenter", () => this.figure.mark(blocks, "from-text"));
      unit.addEventListener("mouseleave", () => this.figure.mark([], "from-text"));
    }
    this.element = h("div", { class: `reading${stacked ? " stacked" : ""}` }, h("div", { class: "figure-pane" }, this.figure.element), this.pane);
  }

  blockHovered(i) {
    for (const units of this.blockUnits) units.forEach((u) => u.classList.remove("hl"));
    const units = i === null || i === undefined ? [] : this.blockUnits[i] || [];
    units.forEach((u) => u.classList.add("hl"));
    if (units.length) scrollWithin(this.pane, units[0]);
    this.onHoverOut(i);
  }

  markBlocks(indices, cls) {
    this.figure.mark(indices, cls);
  }
}

/** Scroll `pane` (not the whole page) so that `el` is in view. */
function scrollWithin(pane, el) {
  const p = pane.getBoundingClientRect();
  const r = el.getBoundingClientRect();
  if (r.top < p.top || r.bottom > p.bottom) pane.scrollTop += r.top - p.top - 24;
}
