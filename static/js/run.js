// The run page's live log: one EventSource for the whole run. Each line goes to its step's
// log as text (textContent), so a step that prints HTML shows it, never runs it. Step heads
// (state, buttons, sign-offs), their one-line summaries and the progress header are fetched
// again every 3 s, and soon after lines that say something changed; each is replaced only
// when it did change. A step folds or opens by itself only when the server's idea of it
// changes (it finished, or it is now the one to act on); otherwise the operator's choice stays.
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
  var SWAPPED = "#run-head, #run-progress, [id^=sum-], [id^=job-link-], [id^=head-]";
  function withoutTokens(html) { return html.replace(/name="csrf_token" value="[^"]*"/g, ""); }
  function foldAsTold(current, fresh) {
    var fold = current.parentElement;
    if (current.tagName === "SUMMARY" && fold && current.dataset.open !== fresh.dataset.open) {
      fold.open = fresh.dataset.open === "true";
    }
  }
  function refreshState() {
    fetch(root.dataset.state, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        fresh.querySelectorAll(SWAPPED).forEach(function (element) {
          element.removeAttribute("hx-swap-oob");
          var key = withoutTokens(element.outerHTML);
          var current = document.getElementById(element.id);
          if (!current || rendered[element.id] === key) { return; }
          rendered[element.id] = key;
          foldAsTold(current, element);
          current.replaceWith(document.importNode(element, true));
        });
      })
      .catch(function () { /* the next refresh will try again */ });
  }
  document.querySelectorAll(SWAPPED).forEach(function (element) {
    rendered[element.id] = withoutTokens(element.outerHTML);
  });
  setInterval(refreshState, 3000);

  // A finished or abandoned run says so in its header; nothing the stream says overrides that.
  function closed() {
    var element = document.getElementById("live-status");
    return Boolean(element && element.dataset.closed === "true");
  }
  function say(text, live) {
    status = document.getElementById("live-status") || status;
    if (status && !closed()) { status.textContent = text; status.className = "live " + (live ? "live-on" : "live-off"); }
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
    showVerdict(line);
  }

  // The newest line is the step's verdict, next to its title, before the next refresh says so.
  function showVerdict(line) {
    var verdict = document.getElementById("verdict-" + line.step);
    if (!verdict) { return; }
    verdict.textContent = line.text;
    verdict.title = line.text;
    verdict.className = "step-verdict verdict-" + line.level;
  }

  // A link to a step (the progress header's) opens the step it leads to.
  function openStep(id) {
    var step = id && document.getElementById(id);
    var fold = step && step.querySelector(".step-fold");
    if (fold) { fold.open = true; }
  }
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest('a[href^="#step-"]');
    if (link) { openStep(link.getAttribute("href").slice(1)); }
  });
  window.addEventListener("hashchange", function () { openStep(location.hash.slice(1)); });
  openStep(location.hash.slice(1));

  var source = new EventSource(root.dataset.events + "?after=" + last);
  source.addEventListener("open", function () { say("live log: connected", true); });
  source.addEventListener("line", function (event) {
    var line = JSON.parse(event.data);
    append(line);
    refreshSoon(line.level === "info" ? 1500 : 200);
  });
  // The server ends the stream when no step runs; the browser reconnects by itself (with
  // Last-Event-ID), which is how a watcher sees the next step someone else starts.
  source.addEventListener("end", function () {
    if (closed()) { source.close(); return; }
    say("live log: waiting for the next step", true);
    refreshSoon(50);
  });
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) { say("live log: disconnected (reload the page)", false); }
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
