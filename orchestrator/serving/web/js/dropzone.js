// Choosing the document: the file picker, or a file dropped anywhere on the drop zone (or on the page).

export function setupDropzone(zone, input, onFile) {
  const take = (files) => {
    if (files && files.length) onFile(files[0]);
  };
  input.addEventListener("change", () => take(input.files));
  for (const target of [zone, document.body]) {
    target.addEventListener("dragover", (e) => {
      if (![...(e.dataTransfer?.types || [])].includes("Files")) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
      zone.classList.add("dragging");
    });
    target.addEventListener("dragleave", (e) => {
      if (!zone.contains(e.relatedTarget)) zone.classList.remove("dragging");
    });
    target.addEventListener("drop", (e) => {
      e.preventDefault();
      e.stopPropagation();
      zone.classList.remove("dragging");
      take(e.dataTransfer?.files);
    });
  }
}
