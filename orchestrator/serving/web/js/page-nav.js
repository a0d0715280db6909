// Page buttons: one per page that has arrived, a count of those still to come, and the arrow keys to move.

import { h, fill } from "./dom.js";

export class PageNav {
  constructor(onChoose) {
    this.onChoose = onChoose;
    this.indices = []; // document page indices (0-based), in order
    this.current = null;
    this.pending = 0;
    this.list = h("div", { class: "page-buttons", role: "toolbar", "aria-label": "Pages" });
    this.more = h("span", { class: "hint pages-pending", "aria-live": "polite" });
    this.element = h("nav", { class: "page-nav", "aria-label": "Pages" }, h("span", { class: "nav-label" }, "Page"), this.list, this.more);
    this.list.addEventListener("keydown", (e) => {
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
      if (!step) return;
      e.preventDefault();
      const at = this.indices.indexOf(this.current);
      const next = this.indices[Math.min(this.indices.length - 1, Math.max(0, at + step))];
      if (next !== undefined) this.choose(next, true);
    });
  }

  set(indices, pending = 0) {
    this.indices = [...indices];
    this.pending = pending;
    this.render();
  }

  render() {
    fill(
      this.list,
      ...this.indices.map((i) =>
        h(
          "button",
          {
            type: "button",
            class: `page-button${i === this.current ? " current" : ""}`,
            dataset: { page: i },
            "aria-current": i === this.current ? "page" : false,
            tabindex: i === this.current || (this.current === null && i === this.indices[0]) ? "0" : "-1",
            onclick: () => this.choose(i),
          },
          String(i + 1),
        ),
      ),
    );
    this.more.textContent = this.pending > 0 ? `+${this.pending} to come` : "";
    this.element.hidden = this.indices.length <= 1 && this.pending === 0;
  }

  choose(index, focus = false) {
    this.current = index;
    this.render();
    if (focus) this.list.querySelector(`[data-page="${index}"]`)?.focus();
    this.onChoose(index);
  }
}
