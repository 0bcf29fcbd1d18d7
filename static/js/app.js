// pamrotate page behaviour. Loaded as a file: the CSP forbids inline script.
(function () {
  "use strict";

  // Which schedule fields each schedule type uses; the others are hidden (not cleared).
  var SCHEDULE_FIELDS = {
    ON_DEMAND: [],
    USE_DEFAULT: [],
    DAILY: ["time", "interval", "tz"],
    WEEKLY: ["time", "weekday", "tz"],
    MONTHLY_BY_DAY: ["time", "day", "tz"],
    MONTHLY_BY_WEEKDAY: ["time", "weekday", "week", "tz"],
    CRON: ["cron", "tz"],
  };
  var ALL = ["time", "interval", "weekday", "day", "week", "cron", "tz"];

  function showScheduleFields() {
    var type = document.getElementById("id_schedule_type");
    if (!type) return;
    var used = SCHEDULE_FIELDS[type.value] || ALL;
    ALL.forEach(function (name) {
      var wrapper = document.getElementById("div_id_schedule_" + name);
      if (wrapper) wrapper.classList.toggle("d-none", used.indexOf(name) === -1);
    });
  }

  // Options of configuration-dependent selects carry data-configuration; show only the
  // ones that belong to the chosen configuration (the server checks it again).
  function filterByConfiguration() {
    var configuration = document.getElementById("id_configuration");
    if (!configuration) return;
    document.querySelectorAll("select option[data-configuration]").forEach(function (option) {
      var other = configuration.value && option.dataset.configuration !== configuration.value;
      option.hidden = !!other;
      option.disabled = !!other;
      if (other && option.selected) option.parentElement.value = "";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var type = document.getElementById("id_schedule_type");
    if (type) {
      type.addEventListener("change", showScheduleFields);
      showScheduleFields();
    }
    var configuration = document.getElementById("id_configuration");
    if (configuration) {
      configuration.addEventListener("change", filterByConfiguration);
      filterByConfiguration();
    }
    // Filters on list pages apply as soon as a select changes.
    document.querySelectorAll("form[role=search] select, form[role=search] input[type=checkbox]").forEach(
      function (control) {
        control.addEventListener("change", function () { control.form.submit(); });
      }
    );
  });
})();
