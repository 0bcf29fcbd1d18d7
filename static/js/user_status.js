// While an account has a queued or running rotation, poll its status and reload when it changes.
(function () {
  "use strict";
  var panel = document.getElementById("rotation-panel");
  if (!panel || !panel.dataset.statusUrl || !panel.dataset.activeAttempt) { return; }
  var seen = [
    panel.dataset.rotationStatus,
    panel.dataset.activeAttempt,
    panel.dataset.activeState,
  ].join("|");
  function key(data) {
    var active = data.active_attempt || {};
    return [data.rotation_status, active.id ? String(active.id) : "", active.state || ""].join("|");
  }
  function poll() {
    fetch(panel.dataset.statusUrl, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (key(data) !== seen) { window.location.reload(); return; }
        window.setTimeout(poll, 1500);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
