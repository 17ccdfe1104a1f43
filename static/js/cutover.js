// Small progressive enhancements; every page works without this file.
(function () {
  "use strict";
  // htmx requests (added by later pages) send the CSRF token as a header.
  document.addEventListener("htmx:configRequest", function (event) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { event.detail.headers["X-CSRFToken"] = meta.content; }
  });
  // Buttons that need a second thought carry data-confirm="question".
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = (button && button.dataset.confirm) || event.target.dataset.confirm;
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  // A log's last line is its verdict: logs open at their end, and one folded away opens at
  // its end too. A job panel htmx replaces while the job runs keeps following the tail, or
  // keeps the operator's place if they scrolled up to read.
  function atEnd(log) { return log.scrollHeight - log.scrollTop - log.clientHeight < 40; }
  function toEnd(log) { log.scrollTop = log.scrollHeight; }
  document.addEventListener("DOMContentLoaded", function () { document.querySelectorAll(".log").forEach(toEnd); });
  document.addEventListener("toggle", function (event) {
    if (event.target.open) { event.target.querySelectorAll(".log").forEach(toEnd); }
  }, true);  // toggle does not bubble
  var places = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var panel = event.detail.target;
    var log = panel && panel.id && panel.querySelector(".log");
    if (log) { places[panel.id] = atEnd(log) ? null : log.scrollTop; }
  });
  document.addEventListener("htmx:afterSettle", function () {
    Object.keys(places).forEach(function (id) {
      var log = document.querySelector("#" + CSS.escape(id) + " .log");
      if (log && places[id] === null) { toEnd(log); } else if (log) { log.scrollTop = places[id]; }
      delete places[id];
    });
  });
})();
