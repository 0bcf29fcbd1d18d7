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

  // The schedule preview: ask the server to describe the schedule and list its next runs.
  var previewTimer = null;
  var previewRequest = 0;

  function scheduleQuery() {
    var type = document.getElementById("id_schedule_type");
    var params = new URLSearchParams({ schedule_type: type.value });
    (SCHEDULE_FIELDS[type.value] || ALL).forEach(function (name) {
      var field = document.getElementById("id_schedule_" + name);
      if (field && field.value !== "") params.set("schedule_" + name, field.value);
    });
    var configuration = document.getElementById("id_configuration");
    if (configuration && configuration.value) params.set("configuration", configuration.value);
    return params.toString();
  }

  function showPreview(box, data) {
    var description = box.querySelector(".schedule-description");
    var runs = box.querySelector(".schedule-runs");
    var list = box.querySelector(".next-runs");
    box.classList.remove("d-none");
    box.classList.toggle("alert-info", !!data.ok);
    box.classList.toggle("alert-warning", !data.ok);
    description.textContent = data.ok ? data.description : "This schedule cannot run: " + data.error;
    list.replaceChildren();
    var utc = data.ok ? data.next_runs : [];
    utc.forEach(function (when, index) {
      var item = document.createElement("li");
      var note = document.createElement("span");
      item.textContent = (data.next_runs_local[index] || "") + " ";
      note.className = "text-body-secondary";
      note.textContent = "(" + when + ")";
      item.appendChild(note);
      list.appendChild(item);
    });
    runs.classList.toggle("d-none", utc.length === 0);
  }

  function refreshPreview() {
    var box = document.getElementById("schedule-preview");
    if (!box || !document.getElementById("id_schedule_type")) return;
    var request = ++previewRequest;
    fetch(box.dataset.url + "?" + scheduleQuery(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) { return response.json(); })
      .then(function (data) {
        if (request === previewRequest) showPreview(box, data);  // a later change won
      })
      .catch(function () { /* the preview is a convenience; saving still validates */ });
  }

  function schedulePreviewSoon() {
    window.clearTimeout(previewTimer);
    previewTimer = window.setTimeout(refreshPreview, 250);
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
    if (type && document.getElementById("schedule-preview")) {
      ["type", "configuration"].concat(ALL).forEach(function (name) {
        var field = document.getElementById(name === "configuration" ? "id_configuration" : "id_schedule_" + name);
        if (!field) return;
        field.addEventListener("change", schedulePreviewSoon);
        field.addEventListener("input", schedulePreviewSoon);
      });
      refreshPreview();
    }
    var configuration = document.getElementById("id_configuration");
    if (configuration) {
      configuration.addEventListener("change", filterByConfiguration);
      filterByConfiguration();
      // Choosing a directory chooses its configuration (the server infers it too).
      var directory = document.getElementById("id_resource");
      if (directory) {
        directory.addEventListener("change", function () {
          var option = directory.options[directory.selectedIndex];
          if (option && option.dataset.configuration && !configuration.value) {
            configuration.value = option.dataset.configuration;
            configuration.dispatchEvent(new Event("change"));
          }
        });
      }
    }
    // Buttons that start many rotations ask first, naming how many ({count}: the boxes ticked).
    document.addEventListener("submit", function (event) {
      var button = event.submitter;
      if (!button || !button.dataset.confirm) return;
      var text = button.dataset.confirm;
      if (button.dataset.confirmCount) {
        var ticked = event.target.querySelectorAll("input[name=" + button.dataset.confirmCount + "]:checked").length;
        text = text.replace("{count}", String(ticked));
      }
      if (!window.confirm(text)) event.preventDefault();
    });
    // Copy and download buttons for secrets shown once (a token, recovery codes): data-copy / data-download
    // name the element whose value or lines they take.
    function textOf(id) {
      var node = document.getElementById(id);
      if (!node) return "";
      if ("value" in node && node.tagName === "INPUT") return node.value;
      return Array.prototype.map.call(node.querySelectorAll("li"), function (li) { return li.textContent.trim(); })
        .join("\n") || node.textContent.trim();
    }
    document.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        if (!navigator.clipboard) return;
        navigator.clipboard.writeText(textOf(button.dataset.copy)).then(function () { button.textContent = "Copied"; });
      });
    });
    document.querySelectorAll("button[data-download]").forEach(function (button) {
      button.addEventListener("click", function () {
        var blob = new Blob([textOf(button.dataset.download) + "\n"], { type: "text/plain" });
        var link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = button.dataset.filename || "download.txt";
        document.body.appendChild(link);
        link.click();
        link.remove();
        URL.revokeObjectURL(link.href);
      });
    });
    // On phones a list's filters start folded unless one is in use.
    var filters = document.querySelector("details.list-filters");
    if (filters && window.matchMedia("(max-width: 575.98px)").matches && !window.location.search) {
      filters.open = false;
    }
    // Filters on list pages apply as soon as a select changes.
    document.querySelectorAll("form[role=search] select, form[role=search] input[type=checkbox]").forEach(
      function (control) {
        control.addEventListener("change", function () { control.form.submit(); });
      }
    );
  });
})();
