// Fill a bulk rotation's progress bar from its status JSON; reload once every attempt finished.
(function () {
  "use strict";
  var box = document.getElementById("bulk");
  if (!box) { return; }
  var bar = document.getElementById("bulk-progress-bar");
  var wrapper = document.getElementById("bulk-progress");
  function show(percent) {
    // The CSP forbids style attributes in the markup; setting the CSSOM property is allowed.
    bar.style.width = percent + "%";
    bar.textContent = percent + "%";
    wrapper.setAttribute("aria-valuenow", String(percent));
  }
  function set(id, value) {
    var node = document.getElementById(id);
    if (node) { node.textContent = String(value); }
  }
  show(parseInt(box.dataset.percent, 10) || 0);
  if (box.dataset.done === "1") { return; }
  function poll() {
    fetch(box.dataset.statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        show(data.percent);
        set("bulk-finished", data.finished);
        set("bulk-succeeded", data.succeeded);
        set("bulk-failed", data.failed);
        set("bulk-refused", data.refused);
        if (data.done) { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 700);
})();
