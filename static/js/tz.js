// The viewer's time zone. Tells the server the browser's zone once (a cookie the time-zone middleware
// reads, accounts/timezones.py), and adds the viewer's time to each UTC run of a schedule preview.
// Loaded as a file: the CSP forbids inline script.
(function () {
  "use strict";
  var root = document.documentElement;
  var COOKIE = "pamrotate_tz";
  var UTC_RUN = /\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)/;

  function browserZone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return ""; }
  }

  function storedZone() {
    var match = document.cookie.match(/(?:^|; )pamrotate_tz=([^;]*)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  var zone = browserZone();
  if (zone && storedZone() !== zone) {
    // The next page is drawn in it; this one is not reloaded (it may be the answer to a POST).
    // IANA names are cookie-safe ASCII (letters, digits, "/", "_", "+", "-"): stored as they are.
    document.cookie = COOKIE + "=" + zone + "; path=/; max-age=31536000; SameSite=Lax" +
      (window.location.protocol === "https:" ? "; Secure" : "");
  }

  // The zone the page shows times in: the person's choice, else the browser's.
  var shown = root.dataset.viewerZoneFrom === "person" ? root.dataset.viewerZone : (zone || root.dataset.viewerZone);
  var format;
  try {
    format = new Intl.DateTimeFormat("en-GB", {
      timeZone: shown, weekday: "short", year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short",
    });
  } catch (e) { return; }

  function yourTime(iso) {
    var parts = {};
    format.formatToParts(new Date(iso)).forEach(function (part) { parts[part.type] = part.value; });
    return parts.weekday + " " + parts.year + "-" + parts.month + "-" + parts.day + " " +
      parts.hour + ":" + parts.minute + " " + parts.timeZoneName;
  }

  function annotate(list) {
    list.querySelectorAll("li").forEach(function (item) {
      if (item.querySelector(".viewer-time")) return;
      var match = UTC_RUN.exec(item.textContent);
      if (!match) return;
      var note = document.createElement("span");
      note.className = "viewer-time ms-1";
      note.textContent = "· your time: " + yourTime(match[1]);
      note.title = match[1].replace("T", " ").replace("Z", " UTC");
      item.appendChild(note);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#schedule-preview .next-runs").forEach(function (list) {
      annotate(list);
      new MutationObserver(function () { annotate(list); }).observe(list, { childList: true });
    });
  });
})();
