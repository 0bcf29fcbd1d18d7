// Show "no worker of gateway X is running" once a running worker would have taken the attempt.
// The server says how long that is (data-show-after, seconds); the page reloads when the attempt moves.
(function () {
  "use strict";
  document.querySelectorAll(".waiting-warning[data-show-after]").forEach(function (warning) {
    var seconds = parseInt(warning.dataset.showAfter, 10) || 0;
    window.setTimeout(function () {
      var state = document.getElementById("attempt-state");  // attempt.js keeps it current
      if (state && state.textContent.trim() !== "Queued") { return; }
      warning.classList.remove("d-none");
    }, seconds * 1000);
  });
})();
