// phototag serve: a little plain JavaScript on top of pages that work without it.
"use strict";

// A small copy of an uploaded photo, kept in this tab to show beside its tags.
function remember(file) {
  return new Promise((resolve) => {
    sessionStorage.removeItem("phototag-upload");
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => {
      try {
        const scale = Math.min(1, 480 / Math.max(img.naturalWidth, img.naturalHeight));
        const canvas = document.createElement("canvas");
        canvas.width = Math.round(img.naturalWidth * scale);
        canvas.height = Math.round(img.naturalHeight * scale);
        canvas.getContext("2d").drawImage(img, 0, 0, canvas.width, canvas.height);
        sessionStorage.setItem("phototag-upload", canvas.toDataURL("image/jpeg", 0.8));
      } catch (e) { /* no preview then */ }
      URL.revokeObjectURL(url);
      resolve();
    };
    img.onerror = () => { URL.revokeObjectURL(url); resolve(); };
    img.src = url;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  // Upload: a dropped or chosen photo is sent at once; the picked mode and count go along.
  const form = document.querySelector(".uploadform");
  if (form) {
    const zone = form.querySelector(".dropzone");
    const input = form.querySelector('input[type="file"]');
    const name = form.querySelector(".dropname");
    const send = async () => {
      if (!input.files.length) return;
      name.textContent = "sending " + input.files[0].name + "…";
      zone.classList.add("busy");
      await remember(input.files[0]);
      form.submit();
    };
    input.addEventListener("change", send);
    ["dragenter", "dragover"].forEach((kind) => zone.addEventListener(kind, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    }));
    ["dragleave", "drop"].forEach((kind) => zone.addEventListener(kind, () => zone.classList.remove("over")));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length) {
        input.files = event.dataTransfer.files;
        send();
      }
    });
    form.querySelectorAll('input[name="mode"]').forEach((radio) => radio.addEventListener("change", () => {
      form.classList.toggle("tagsmode", form.querySelector('input[name="mode"]:checked').value === "tags");
    }));
    form.classList.toggle("tagsmode", form.querySelector('input[name="mode"]:checked').value === "tags");
  }

  // The tags of an upload: show the photo itself beside them (it never left this browser
  // for good: the server deleted its copy).
  const preview = document.querySelector(".upload-preview");
  const url = sessionStorage.getItem("phototag-upload");
  if (preview && url) {
    sessionStorage.removeItem("phototag-upload");
    preview.src = url;
    preview.hidden = false;
    preview.addEventListener("error", () => { preview.hidden = true; });
  }

  // Tags page: filter as you type.
  const filter = document.querySelector(".filter");
  if (filter) {
    filter.addEventListener("input", () => {
      const q = filter.value.trim().toLowerCase();
      document.querySelectorAll(".tagcloud li").forEach((li) => {
        li.hidden = q !== "" && !li.dataset.tag.toLowerCase().includes(q);
      });
    });
  }

  // Photo page: a change keeps the scroll position when the page comes back.
  document.querySelectorAll(".tagform, .addform").forEach((f) => f.addEventListener("submit", () => {
    sessionStorage.setItem("phototag-scroll", String(window.scrollY));
  }));
  const scroll = sessionStorage.getItem("phototag-scroll");
  if (scroll !== null && document.querySelector(".photo")) {
    sessionStorage.removeItem("phototag-scroll");
    window.scrollTo(0, Number(scroll));
  }
});
