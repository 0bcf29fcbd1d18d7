// Keep "gateway X has taken no task for N s" current on a queued attempt: ask the attempt's status
// every few seconds and show, update or hide the warning (the server decides, rotation/status.py).
(function () {
  "use strict";
  document.querySelectorAll(".waiting-warning[data-status-url]").forEach(function (warning) {
    var reason = warning.querySelector(".waiting-reason");
    function poll() {
      fetch(warning.dataset.statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (data) {
          if (!data) { return; }
          if (reason) { reason.textContent = data.waiting || ""; }
          warning.classList.toggle("d-none", !data.waiting);
          if (data.state === "queued") { window.setTimeout(poll, 3000); }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 3000);
  });
})();
