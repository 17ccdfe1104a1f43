// The run page's live log: one EventSource for the whole run. Each line goes to its step's
// log as text (textContent), so a step that prints HTML shows it, never runs it. Step heads
// (state, buttons, sign-offs) are fetched again every 3 s, and soon after lines that say
// something changed; a head is replaced only when it did change.
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root || !window.EventSource) { return; }
  var last = Number(root.dataset.lastSeq || 0);
  var status = document.getElementById("live-status");
  var pending = null;
  var dueAt = 0;

  // Coalesce refreshes: a burst of lines asks once; a sooner request (a step ended) wins.
  function refreshSoon(delay) {
    var due = Date.now() + delay;
    if (pending && dueAt <= due) { return; }
    clearTimeout(pending);
    dueAt = due;
    pending = setTimeout(function () { pending = null; refreshState(); }, delay);
  }

  // Step heads are replaced only when what the server renders changed (CSRF tokens aside):
  // a head replaced while someone reaches for its button would swallow the click.
  var rendered = {};
  function withoutTokens(html) { return html.replace(/name="csrf_token" value="[^"]*"/g, ""); }
  function refreshState() {
    fetch(root.dataset.state, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        fresh.querySelectorAll("#run-head, [id^=head-]").forEach(function (element) {
          element.removeAttribute("hx-swap-oob");
          var key = withoutTokens(element.outerHTML);
          var current = document.getElementById(element.id);
          if (!current || rendered[element.id] === key) { return; }
          rendered[element.id] = key;
          current.replaceWith(document.importNode(element, true));
        });
      })
      .catch(function () { /* the next refresh will try again */ });
  }
  document.querySelectorAll("#run-head, [id^=head-]").forEach(function (element) {
    rendered[element.id] = withoutTokens(element.outerHTML);
  });
  setInterval(refreshState, 3000);

  function say(text, live) {
    status = document.getElementById("live-status") || status;
    if (status) { status.textContent = text; status.className = "live " + (live ? "live-on" : "live-off"); }
  }

  function append(line) {
    var log = document.getElementById("log-" + line.step);
    if (!log || line.seq <= last) { return; }
    last = line.seq;
    var item = document.createElement("li");
    item.className = "log-" + line.level;
    item.dataset.seq = String(line.seq);
    var time = document.createElement("time");
    time.textContent = (line.time || "").slice(11, 19);
    var text = document.createElement("span");
    text.textContent = line.text;
    item.append(time, " ", text);
    var following = log.hidden || log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.hidden = false;
    log.appendChild(item);
    if (following) { log.scrollTop = log.scrollHeight; }
  }

  var source = new EventSource(root.dataset.events + "?after=" + last);
  source.addEventListener("open", function () { say("live log: connected", true); });
  source.addEventListener("line", function (event) {
    var line = JSON.parse(event.data);
    append(line);
    refreshSoon(line.level === "info" ? 1500 : 200);
  });
  // The server ends the stream when no step runs; the browser reconnects by itself (with
  // Last-Event-ID), which is how a watcher sees the next step someone else starts.
  source.addEventListener("end", function () { say("live log: waiting for the next step", true); refreshSoon(50); });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) { say("live log: disconnected (reload the page)", false); }
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
