// Poll an attempt's status until it ends, then reload so the page shows the final state.
(function () {
  "use strict";
  var box = document.getElementById("attempt");
  if (!box || box.dataset.finished === "1") { return; }
  var url = box.dataset.statusUrl;
  var state = document.getElementById("attempt-state");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (state) { state.textContent = data.state_display; }
        if (data.finished || data.state === "unknown") { window.location.reload(); return; }
        window.setTimeout(poll, 1000);
      })
      .catch(function () { window.setTimeout(poll, 3000); });
  }
  window.setTimeout(poll, 700);
})();
