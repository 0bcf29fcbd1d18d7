// Record forms: the complexity description, the directory's port from its TLS mode, the unsaved
// connection test. Loaded as a file: the CSP forbids inline script.
(function () {
  "use strict";

  var PARTS = ["length", "upper", "lower", "digits", "special"];

  // Mirrors records/complexity.py Complexity.describe(); the model validates on save.
  function describeComplexity() {
    var box = document.getElementById("complexity-description");
    if (!box) return;
    var values = {};
    var blank = true;
    PARTS.forEach(function (name) {
      var field = document.getElementById("id_complexity_" + name);
      var text = field ? field.value.trim() : "";
      if (text !== "") blank = false;
      values[name] = text === "" ? 0 : parseInt(text, 10);
    });
    var chars = document.getElementById("id_complexity_special_chars");
    var problem = "";
    if (blank && box.dataset.optional) {
      box.textContent = "Uses the configuration's default complexity.";
      box.classList.replace("alert-warning", "alert-info");
      return;
    }
    var minimums = values.upper + values.lower + values.digits + values.special;
    if (PARTS.some(function (name) { return isNaN(values[name]) || values[name] < 0; })) {
      problem = "every value must be a whole number, 0 or more";
    } else if (values.length < 4 || values.length > 256) {
      problem = "length must be between 4 and 256";
    } else if (minimums > values.length) {
      problem = "the minimum counts add up to " + minimums + ", more than the length " + values.length;
    } else if (values.special && chars && chars.value === "") {
      problem = "special characters are required but none are allowed";
    }
    box.classList.toggle("alert-warning", !!problem);
    box.classList.toggle("alert-info", !problem);
    box.textContent = problem
      ? "This complexity cannot be used: " + problem + "."
      : values.length + " characters, at least " + values.upper + " uppercase, " + values.lower +
        " lowercase, " + values.digits + (values.digits === 1 ? " digit, " : " digits, ") +
        values.special + " special";
  }

  // The usual port follows the TLS mode (636 LDAPS, 389 StartTLS) unless someone typed another.
  var USUAL_PORTS = ["", "636", "389"];

  function followTlsMode(changed) {
    var type = document.getElementById("id_directory_type");
    var ssl = document.getElementById("id_use_ssl");
    var startTls = document.getElementById("id_start_tls");
    var port = document.getElementById("id_port");
    if (!type || !ssl || !startTls || !port) return;
    if (type.value === "active_directory") {
      ssl.checked = true;
      startTls.checked = false;
    } else if (changed === startTls && startTls.checked) {
      ssl.checked = false;
    } else if (changed === ssl && ssl.checked) {
      startTls.checked = false;
    }
    startTls.disabled = type.value === "active_directory";
    if (changed && USUAL_PORTS.indexOf(port.value.trim()) !== -1) {
      port.value = ssl.checked ? "636" : startTls.checked ? "389" : port.value;
    }
  }

  // Test connection on the unsaved form: POST its fields; the answer lists the steps.
  function testUnsaved(button) {
    var form = button.closest("form");
    var result = document.getElementById("unsaved-test-result");
    var data = new FormData(form);
    button.disabled = true;
    result.className = "alert alert-secondary mt-2";
    result.textContent = "Testing…";
    fetch(button.dataset.url, {
      method: "POST",
      body: data,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": data.get("csrfmiddlewaretoken") || "" },
    })
      .then(function (response) { return response.json(); })
      .then(function (answer) {
        result.className = "alert mt-2 " + (answer.ok ? "alert-success" : "alert-danger");
        result.replaceChildren();
        var title = document.createElement("div");
        title.className = "fw-semibold";
        title.textContent = answer.ok ? "Connection test passed." : "Connection test failed.";
        result.appendChild(title);
        var list = document.createElement("ul");
        list.className = "mb-0";
        (answer.steps || []).forEach(function (step) {
          var item = document.createElement("li");
          item.textContent = (step.ok ? "✓ " : "✗ ") + step.name + (step.message ? ": " + step.message : "");
          list.appendChild(item);
        });
        (answer.errors || []).forEach(function (error) {
          var item = document.createElement("li");
          item.textContent = error;
          list.appendChild(item);
        });
        result.appendChild(list);
      })
      .catch(function () {
        result.className = "alert alert-danger mt-2";
        result.textContent = "The test could not be run; try again.";
      })
      .finally(function () { button.disabled = false; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".complexity-part").forEach(function (field) {
      field.addEventListener("input", describeComplexity);
    });
    describeComplexity();
    ["id_directory_type", "id_use_ssl", "id_start_tls"].forEach(function (id) {
      var field = document.getElementById(id);
      if (field) field.addEventListener("change", function () { followTlsMode(field); });
    });
    if (document.getElementById("id_directory_type")) followTlsMode(null);
    var button = document.getElementById("test-unsaved-connection");
    if (button) button.addEventListener("click", function () { testUnsaved(button); });
  });
})();
