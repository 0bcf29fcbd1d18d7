// The discovery results page: "select all" ticks every shown account that is not yet managed.
(function () {
  "use strict";
  var all = document.getElementById("select-all");
  if (!all) { return; }
  all.addEventListener("change", function () {
    document.querySelectorAll("input.adopt-choice").forEach(function (box) { box.checked = all.checked; });
  });
})();
