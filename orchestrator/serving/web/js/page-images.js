// The plain picture of a page, for drawing blocks over it. The browser shows PNG, JPEG, WebP and BMP uploads
// itself (no round trip); PDF pages and TIFF frames are rendered by the service (POST /v1/page-image) with the
// same code and DPI the backends used, fetched only for the pages a person looks at, and kept for the session.

const BROWSER = "browser";
const SERVER = "server";
const NONE = "none";

/** What the file is, from its first bytes (as the service decides: never from its name). */
export async function sniff(file) {
  const head = new Uint8Array(await file.slice(0, 1024).arrayBuffer());
  const ascii = String.fromCharCode(...head.slice(0, 16));
  const starts = (...bytes) => bytes.every((b, i) => head[i] === b);
  if (String.fromCharCode(...head).includes("%PDF-")) return { mediaType: "application/pdf", display: SERVER };
  if (starts(0x89, 0x50, 0x4e, 0x47)) return { mediaType: "image/png", display: BROWSER };
  if (starts(0xff, 0xd8, 0xff)) return { mediaType: "image/jpeg", display: BROWSER };
  if (ascii.startsWith("II*\0") || ascii.startsWith("MM\0*")) return { mediaType: "image/tiff", display: SERVER };
  if (ascii.startsWith("RIFF") && ascii.slice(8, 12) === "WEBP") return { mediaType: "image/webp", display: BROWSER };
  if (ascii.startsWith("BM")) return { mediaType: "image/bmp", display: BROWSER };
  if (starts(0x50, 0x4b, 0x03, 0x04)) return { mediaType: "application/zip", display: NONE }; // DOCX, XLSX, EPUB...
  return { mediaType: file.type || "application/octet-stream", display: NONE };
}

export class PageImages {
  constructor(api) {
    this.api = api;
    this.file = null;
    this.display = NONE;
    this.cache = new Map(); // "index@dpi" -> Promise<object URL>
  }

  setFile(file, display) {
    for (const url of this.cache.values()) url.then((u) => u && u.startsWith("blob:") && URL.revokeObjectURL(u), () => {});
    this.cache.clear();
    this.file = file;
    this.display = display;
  }

  /** Whether pages of this file have a picture at all (DOCX, HTML... have none). */
  get available() {
    return this.display !== NONE;
  }

  /** Object URL of page `index` (0-based) at `dpi`, or null when there is no picture. Rejects with ApiError. */
  url(index, dpi) {
    if (!this.file || this.display === NONE) return Promise.resolve(null);
    if (this.display === BROWSER) {
      const key = "file";
      if (!this.cache.has(key)) this.cache.set(key, Promise.resolve(URL.createObjectURL(this.file)));
      return this.cache.get(key);
    }
    const key = `${index}@${dpi || ""}`;
    if (!this.cache.has(key)) {
      const pending = this.api.pageImage(this.file, index + 1, dpi).then((blob) => URL.createObjectURL(blob));
      pending.catch(() => this.cache.delete(key)); // a failure is not kept: the next look tries again
      this.cache.set(key, pending);
    }
    return this.cache.get(key);
  }
}
