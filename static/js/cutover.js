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

  // An action that is refused or fails keeps the operator where they were (forms marked
  // data-stay): the form posts in the background, and the server's message shows at the top
  // of this page, the form as it was typed. Without this file the error page says the same.
  function showInPlace(status, html) {
    var page = new DOMParser().parseFromString(html, "text/html");
    var said = page.querySelector("[data-error-message]");
    var text = said ? said.textContent.trim() : "The server answered " + status + "; nothing was done.";
    var message = document.createElement("p");
    var outcome = status >= 500 ? "failure" : "refusal";
    message.className = "flash msg msg-" + outcome + " in-place";
    message.dataset.outcome = outcome;
    message.setAttribute("role", "alert");
    message.tabIndex = -1;
    message.textContent = text;
    document.querySelectorAll(".flash.in-place").forEach(function (old) { old.remove(); });
    var main = document.querySelector("main");
    main.insertBefore(message, main.firstChild);
    message.scrollIntoView({ block: "nearest" });
    message.focus({ preventScroll: true });
  }
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.hasAttribute("data-stay") || !window.fetch) { return; }
    event.preventDefault();
    var button = event.submitter;
    var body = new FormData(form);
    if (button && button.name) { body.append(button.name, button.value); }
    if (button) { button.disabled = true; }
    fetch(form.action, { method: "POST", body: body, credentials: "same-origin",
                         headers: { "Accept": "text/html", "X-Cutover-Stay": "1" } })
      .then(function (response) {
        var go = response.headers.get("X-Cutover-Go");  // the redirect, not followed here
        if (go) { window.location.assign(go); return null; }
        if (response.ok) {
          if (response.redirected) { window.location.assign(response.url); return null; }
          return response.text().then(function (html) { document.open(); document.write(html); document.close(); });
        }
        return response.text().then(function (html) {
          if (button) { button.disabled = false; }
          showInPlace(response.status, html);
        });
      })
      .catch(function () { form.submit(); });
  });

  // A table wider than the screen scrolls inside its card; the keyboard must reach it too.
  function reachable() {
    document.querySelectorAll(".diff-table, .side-by-side, .counts").forEach(function (table) {
      if (table.scrollWidth > table.clientWidth + 1) { table.tabIndex = 0; } else { table.removeAttribute("tabindex"); }
    });
  }
  document.addEventListener("DOMContentLoaded", reachable);
  window.addEventListener("resize", reachable);

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
  // Right after the swap, not after the settle: a scroll in between would otherwise be undone.
  document.addEventListener("htmx:afterSwap", function () {
    Object.keys(places).forEach(function (id) {
      var log = document.querySelector("#" + CSS.escape(id) + " .log");
      if (log && places[id] === null) { toEnd(log); } else if (log) { log.scrollTop = places[id]; }
      delete places[id];
    });
  });
})();
