// One page's picture with the backend's blocks drawn over it as focusable boxes (not a baked PNG): hover, focus or
// click a box to see the block's type, score and text. Boxes are placed by `bbox_norm` (0–1 of the page), so they
// fit whatever size the picture is shown at. A block the engine read as text against its layout label (label
// `figure→text`, `table→text`: the layout model called the region a figure or table, its lines said otherwise) is
// outlined apart, and its details say why, from the page's warning about that region.

import { h, fill } from "./dom.js";
import { plainText } from "./markdown.js";

const TEXT_PREVIEW = 600;

export class PageFigure {
  /**
   * @param {object} page  a PageResult (index, width, height, blocks)
   * @param {Promise<string|null>} imageUrl  the plain page picture (null: none for this document type)
   * @param {object} opts  label (for screen readers), marks: Map(blockIndex -> {note, disagree}) from a comparison,
   *                       onHover(index|null), onSelect(index|null)
   */
  constructor(page, imageUrl, { label = "", marks = new Map(), onHover = () => {}, onSelect = () => {} } = {}) {
    this.page = page;
    this.marks = marks;
    this.onHover = onHover;
    this.onSelect = onSelect;
    this.selected = null;
    this.boxes = [];
    this.element = this.build(label);
    this.load(imageUrl);
  }

  build(label) {
    const { page } = this;
    this.img = h("img", { class: "page-image", alt: `Page ${page.index + 1}${label ? ` as read by ${label}` : ""}` });
    this.overlay = h("div", { class: "overlay", role: "group", "aria-label": `Blocks on page ${page.index + 1}` });
    this.tooltip = h("div", { class: "block-tip", role: "tooltip", hidden: true });
    this.status = h("p", { class: "page-image-status hint" });
    this.canvas = h("div", { class: "page-canvas" }, this.img, this.overlay, this.tooltip);
    if (page.width > 0 && page.height > 0) this.canvas.style.aspectRatio = `${page.width} / ${page.height}`;
    page.blocks.forEach((block, i) => this.boxes.push(this.box(block, i)));
    this.overlay.append(...this.boxes);
    this.canvas.addEventListener("keydown", (e) => {
      if (e.key === "Escape") this.select(null);
    });
    return h("figure", { class: "page-figure" }, this.canvas, legend(page.blocks), this.status);
  }

  box(block, i) {
    const [x0, y0, x1, y1] = normBox(block, this.page);
    const mark = this.marks.get(i);
    const preview = plainText(block.text).replace(/\s+/g, " ").trim().slice(0, 80);
    const overruled = readAsText(block);
    const el = h("button", {
      type: "button",
      class: `block t-${block.type}${mark?.disagree ? " disagree" : ""}${overruled ? " read-as-text" : ""}`,
      dataset: { index: i, type: block.type, ...(overruled ? { label: block.label } : {}) },
      "aria-label": `${block.type} block ${i + 1}${overruled ? ` (${block.label})` : ""}${mark?.disagree ? " (disagreement)" : ""}: ${preview || "no text"}`,
      "aria-pressed": "false",
    });
    Object.assign(el.style, {
      left: `${x0 * 100}%`,
      top: `${y0 * 100}%`,
      width: `${Math.max(0, x1 - x0) * 100}%`,
      height: `${Math.max(0, y1 - y0) * 100}%`,
    });
    el.addEventListener("mouseenter", () => this.hover(i));
    el.addEventListener("focus", () => this.hover(i));
    el.addEventListener("mouseleave", () => this.hover(null));
    el.addEventListener("blur", () => this.hover(null));
    el.addEventListener("click", () => this.select(this.selected === i ? null : i));
    return el;
  }

  async load(imageUrl) {
    try {
      const url = await imageUrl;
      if (url) {
        this.img.src = url;
        this.canvas.classList.add("has-image");
      } else {
        this.status.textContent = "No page picture for this document type: the boxes are drawn on a blank page.";
      }
    } catch (e) {
      this.status.textContent = `The page picture could not be loaded (${e.message}); the boxes are drawn on a blank page.`;
    }
  }

  hover(i) {
    const shown = i ?? this.selected;
    this.boxes.forEach((b, k) => b.classList.toggle("active", k === shown));
    this.showTip(shown);
    this.onHover(shown);
  }

  select(i) {
    this.selected = i;
    this.boxes.forEach((b, k) => b.setAttribute("aria-pressed", String(k === i)));
    this.hover(i);
    this.onSelect(i);
  }

  /** Mark blocks from elsewhere (the markdown pane, another backend's column) with a CSS class. */
  mark(indices, cls) {
    const set = new Set(indices);
    this.boxes.forEach((b, k) => b.classList.toggle(cls, set.has(k)));
  }

  showTip(i) {
    if (i === null || i === undefined) {
      this.tooltip.hidden = true;
      return;
    }
    const block = this.page.blocks[i];
    const text = plainText(block.text).trim();
    const note = this.marks.get(i)?.note;
    const why = readAsText(block) ? whyReadAsText(block, this.page) : null;
    fill(
      this.tooltip,
      h(
        "div",
        { class: "tip-head" },
        h("span", { class: `type-chip t-${block.type}` }, block.type),
        block.label && block.label !== block.type ? h("span", { class: "hint" }, ` label ${block.label}`) : null,
        h("span", { class: "hint" }, ` · score ${block.score === null || block.score === undefined ? "–" : block.score.toFixed(2)}`),
        h("span", { class: "hint" }, ` · block ${i + 1} of ${this.page.blocks.length}`),
      ),
      note ? h("p", { class: `tip-note${this.marks.get(i).disagree ? " bad" : ""}` }, note) : null,
      why ? h("p", { class: "tip-note tip-why" }, why) : null,
      h("p", { class: "tip-text" }, text ? (text.length > TEXT_PREVIEW ? `${text.slice(0, TEXT_PREVIEW)}…` : text) : "(no text)"),
    );
    const [x0, y0, , y1] = normBox(block, this.page);
    const below = y1 < 0.7;
    Object.assign(this.tooltip.style, {
      left: `${Math.min(x0, 0.55) * 100}%`,
      top: below ? `calc(${y1 * 100}% + 6px)` : "auto",
      bottom: below ? "auto" : `calc(${(1 - y0) * 100}% + 6px)`,
    });
    this.tooltip.hidden = false;
  }
}

/** Which colour is which type, for the types on this page, with their counts; and the blocks read as text. */
function legend(blocks) {
  const counts = new Map();
  for (const b of blocks) counts.set(b.type, (counts.get(b.type) || 0) + 1);
  if (counts.size === 0) return h("figcaption", { class: "legend hint" }, "No blocks on this page.");
  const overruled = new Map();
  for (const b of blocks) if (readAsText(b)) overruled.set(b.label, (overruled.get(b.label) || 0) + 1);
  return h(
    "figcaption",
    { class: "legend" },
    [...counts].map(([type, n]) => h("span", { class: "legend-item" }, h("span", { class: `swatch t-${type}`, "aria-hidden": "true" }), `${type} ${n}`)),
    [...overruled].map(([label, n]) =>
      h("span", { class: "legend-item read-as-text-item", title: "The layout model's label, overruled by the lines inside the region" }, h("span", { class: "swatch read-as-text", "aria-hidden": "true" }), `${label} ${n}`),
    ),
  );
}

/** Whether the engine read this block as text against its layout label (`figure→text`, `table→text`). */
function readAsText(block) {
  return typeof block.label === "string" && block.label.endsWith("→text");
}

/**
 * Why a block was read as text: the page's warning about the region it came from (the one whose box holds the
 * block's centre), e.g. "figure→text: figure region at [0, 0, 908, 505] read as text, it holds 8 of the page's 8
 * lines (a picture holds labels, not the page)".
 */
function whyReadAsText(block, page) {
  const mine = (page.warnings || []).filter((w) => w.startsWith(`${block.label}:`));
  const [x0, y0, x1, y1] = block.bbox || [0, 0, 0, 0];
  const cx = (x0 + x1) / 2;
  const cy = (y0 + y1) / 2;
  const holding = mine.find((w) => {
    const m = w.match(/at \[(-?[\d.]+), (-?[\d.]+), (-?[\d.]+), (-?[\d.]+)\]/);
    return m && cx >= +m[1] && cx <= +m[3] && cy >= +m[2] && cy <= +m[4];
  });
  return holding || mine[0] || `Read as text: the layout model's ${block.label.replace("→text", "")} label was overruled by the lines inside it.`;
}

/** The block's box as 0–1 fractions of the page, clamped. */
export function normBox(block, page) {
  let box = block.bbox_norm;
  if (!box || box.length !== 4) {
    const [x0, y0, x1, y1] = block.bbox;
    box = [x0 / page.width, y0 / page.height, x1 / page.width, y1 / page.height];
  }
  return box.map((v) => Math.min(1, Math.max(0, Number(v) || 0)));
}
