// The answer's chunks for a retrieval index (`chunks`, asked with the `chunking` option): one row per chunk with
// its heading path, pages, tokens and text. Hovering or focusing a chunk calls onHover(chunk) so the view can draw
// the chunk's source boxes on its page; leaving it calls onHover(null).

import { h } from "./dom.js";

const TEXT_PREVIEW = 240;

export class ChunkList {
  /**
   * @param {object[]} chunks  the response's `chunks`
   * @param {object} chunking  the response's `chunking` (mode, tokenizer, limits)
   * @param {function} onHover  called with a chunk, or null
   */
  constructor(chunks, chunking, onHover) {
    const rows = chunks.map((chunk) => this.row(chunk, onHover));
    this.element = h(
      "details",
      { class: "chunk-list", open: true },
      h(
        "summary",
        {},
        `Chunks (${chunks.length})`,
        h("span", { class: "hint" }, ` ${chunking.mode}, at most ${chunking.chunk_tokens} tokens by ${chunking.tokenizer}; hover one to see where it was read`),
      ),
      h("ol", { class: "chunks" }, rows),
    );
  }

  row(chunk, onHover) {
    const text = chunk.text.slice(chunk.overlap_chars || 0).replace(/\s+/g, " ").trim();
    const pages = chunk.pages.map((p) => p + 1).join(", ");
    const el = h(
      "li",
      { class: `chunk${chunk.oversize ? " oversize" : ""}`, tabindex: "0", dataset: { id: chunk.id } },
      h(
        "div",
        { class: "chunk-head" },
        h("strong", {}, chunk.id),
        chunk.heading_path.length ? h("span", { class: "chunk-path" }, ` ${chunk.heading_path.join(" › ")}`) : null,
        h("span", { class: "hint" }, ` · page ${pages || "–"} · ${chunk.tokens} tokens · ${chunk.boxes.length} boxes${chunk.oversize ? " · one table over the limit" : ""}`),
      ),
      h("p", { class: "chunk-text" }, text.length > TEXT_PREVIEW ? `${text.slice(0, TEXT_PREVIEW)}…` : text),
    );
    el.addEventListener("mouseenter", () => onHover(chunk));
    el.addEventListener("focus", () => onHover(chunk));
    el.addEventListener("mouseleave", () => onHover(null));
    el.addEventListener("blur", () => onHover(null));
    return el;
  }
}
