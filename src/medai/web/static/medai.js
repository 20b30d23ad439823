// MedAI web page: progressive enhancement only (every form works without it). No inline script: CSP.
"use strict";
(function () {
  // File drop areas: drag a file onto the area, check its size before anything is sent.
  function setupDrop(area) {
    var input = area.querySelector("input[type=file]");
    var status = area.querySelector("[data-drop-status]");
    var limit = parseInt(area.getAttribute("data-max-bytes") || "0", 10);
    var form = area.closest("form");
    function describe() {
      if (!status) return;
      var files = input.files;
      if (!files || files.length === 0) { status.textContent = "No file chosen."; return; }
      var names = [];
      for (var i = 0; i < files.length; i++) names.push(files[i].name + " (" + Math.round(files[i].size / 1024) + " KB)");
      status.textContent = "Chosen: " + names.join(", ");
    }
    function tooBig() {
      if (!limit) return null;
      var total = 0;
      for (var i = 0; i < input.files.length; i++) total += input.files[i].size;
      return total > limit ? total : null;
    }
    ["dragenter", "dragover"].forEach(function (type) {
      area.addEventListener(type, function (e) { e.preventDefault(); area.classList.add("over"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      area.addEventListener(type, function () { area.classList.remove("over"); });
    });
    area.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) { input.files = e.dataTransfer.files; describe(); }
    });
    input.addEventListener("change", describe);
    if (form) {
      form.addEventListener("submit", function (e) {
        var total = tooBig();
        var box = form.querySelector("[data-upload-error]");
        if (total !== null) {
          e.preventDefault();
          if (box) {
            box.textContent = "The file is too large: " + (total / 1048576).toFixed(1) + " MB; the limit is " +
              (limit / 1048576).toFixed(0) + " MB. Choose a smaller file.";
            box.hidden = false;
            box.focus();
          }
        }
      });
    }
  }

  // Job progress: poll the job's status and update the page until it is done or failed.
  function setupJob(panel) {
    var url = panel.getAttribute("data-job-status");
    var statusEl = panel.querySelector("[data-job-state]");
    var bar = panel.querySelector("progress");
    var link = panel.querySelector("[data-job-result]");
    var errorEl = panel.querySelector("[data-job-error]");
    var steps = { queued: 1, running: 2, done: 3, failed: 3 };
    function poll() {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (job) {
          statusEl.textContent = job.status;
          if (bar) bar.value = steps[job.status] || 0;
          if (job.status === "done") { if (link) link.hidden = false; return; }
          if (job.status === "failed") { if (errorEl) { errorEl.textContent = job.error || "The job failed."; errorEl.hidden = false; } return; }
          setTimeout(poll, 1000);
        })
        .catch(function () { setTimeout(poll, 3000); });
    }
    if (url && statusEl.textContent !== "done" && statusEl.textContent !== "failed") setTimeout(poll, 500);
  }

  // Buttons that need a second thought (revoking a key, retiring a model).
  function setupConfirm(form) {
    form.addEventListener("submit", function (e) {
      if (!window.confirm(form.getAttribute("data-confirm"))) e.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-drop]").forEach(setupDrop);
    document.querySelectorAll("[data-job-status]").forEach(setupJob);
    document.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  });
})();
