// Hide a revealed password after a few seconds and go back to the account page.
(function () {
  "use strict";
  var box = document.getElementById("reveal");
  if (!box) { return; }
  var field = document.getElementById("revealed-password");
  var countdown = document.getElementById("reveal-countdown");
  var left = parseInt(box.dataset.seconds, 10) || 30;
  var copy = document.getElementById("copy-password");
  if (copy && navigator.clipboard) {
    copy.addEventListener("click", function () { navigator.clipboard.writeText(field.value); });
  }
  var timer = window.setInterval(function () {
    left -= 1;
    if (countdown) { countdown.textContent = String(left); }
    if (left <= 0) {
      window.clearInterval(timer);
      field.value = "";
      field.placeholder = "hidden";
      window.location.replace(box.dataset.returnUrl);
    }
  }, 1000);
})();
