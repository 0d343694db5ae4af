// The upload page: drag and drop onto the file box, the chosen files and their size, the
// limits checked before sending, and the upload's own progress (htmx's htmx:xhr:progress).
// No inline script anywhere: the CSP forbids it. The server checks everything again.
(function () {
  "use strict";

  function human(bytes) {
    var units = ["B", "KB", "MB", "GB"];
    var value = bytes;
    var unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : String(value)) + " " + units[unit];
  }

  function formOf(element) {
    return element && element.closest ? element.closest("#upload-form") : null;
  }

  // What is chosen, and whether it is within the limits; returns the problem or "".
  function describe(form) {
    var input = form.querySelector("input[type=file]");
    var chosen = form.querySelector("[data-files-chosen]");
    var problemBox = form.querySelector("[data-files-problem]");
    var files = Array.prototype.slice.call(input.files || []);
    var total = files.reduce(function (sum, file) { return sum + file.size; }, 0);
    var maxFiles = parseInt(form.getAttribute("data-max-files"), 10);
    var maxBytes = parseInt(form.getAttribute("data-max-bytes"), 10);
    var problem = "";
    if (files.length > maxFiles) {
      problem = "A batch holds at most " + maxFiles + " images; you chose " + files.length + ".";
    } else {
      var big = files.filter(function (file) { return file.size > maxBytes; });
      if (big.length) {
        problem = big.map(function (file) { return file.name; }).join(", ") +
          ": over the limit of " + form.getAttribute("data-max-bytes-label") + " a file.";
      }
    }
    chosen.textContent = files.length ?
      files.length + (files.length === 1 ? " file, " : " files, ") + human(total) : "";
    problemBox.textContent = problem;
    problemBox.hidden = !problem;
    return problem;
  }

  document.addEventListener("change", function (event) {
    var form = formOf(event.target);
    if (form && event.target.type === "file") describe(form);
  });

  ["dragenter", "dragover"].forEach(function (name) {
    document.addEventListener(name, function (event) {
      var zone = event.target.closest && event.target.closest("[data-dropzone]");
      if (!zone) return;
      event.preventDefault();
      zone.classList.add("is-over");
    });
  });
  document.addEventListener("dragleave", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (zone && !zone.contains(event.relatedTarget)) zone.classList.remove("is-over");
  });
  document.addEventListener("drop", function (event) {
    var zone = event.target.closest && event.target.closest("[data-dropzone]");
    if (!zone) return;
    event.preventDefault();
    zone.classList.remove("is-over");
    var input = zone.querySelector("input[type=file]");
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });

  // Refuse before sending what the server would refuse after a long upload.
  document.addEventListener("htmx:confirm", function (event) {
    var form = formOf(event.target);
    if (form && event.target === form && describe(form)) event.preventDefault();
  });

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = formOf(event.target);
    if (!form || event.target !== form) return;
    var box = form.querySelector("[data-upload-progress]");
    box.hidden = false;
    box.querySelector("progress").value = 0;
    box.querySelector("[data-upload-status]").textContent = "Uploading…";
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = formOf(event.target);
    if (!form || !event.detail.lengthComputable) return;
    var box = form.querySelector("[data-upload-progress]");
    var percent = Math.round(100 * event.detail.loaded / event.detail.total);
    box.querySelector("progress").value = percent;
    box.querySelector("[data-upload-status]").textContent = percent < 100 ?
      "Uploading: " + human(event.detail.loaded) + " of " + human(event.detail.total) +
        " (" + percent + "%)" :
      "Uploaded; checking the files…";
  });
})();
