/* taskorg webview: live updates by polling, the master-change banner, small
   form helpers. Plain JS, no build step, no other origin (see the CSP). */
(function () {
  "use strict";

  var INTERVAL = 1500;          // ms between polls while the tab is visible
  var HIDDEN_INTERVAL = 6000;   // ms between polls while it is hidden
  var REQUEST_TIMEOUT = 10000;  // a poll that takes longer counts as failed
  var SEEN_KEY = "taskorg.cluster";   // last master/epoch this tab saw
  var BANNER_KEY = "taskorg.banner";  // master-change notice not dismissed yet

  var body = document.body;
  var lastHtml = {};

  function byId(id) { return document.getElementById(id); }

  function setText(selector, text) {
    var nodes = document.querySelectorAll(selector);
    for (var i = 0; i < nodes.length; i++) { nodes[i].textContent = text; }
  }

  function store(key, value) {
    try {
      if (value === null) { sessionStorage.removeItem(key); } else { sessionStorage.setItem(key, JSON.stringify(value)); }
    } catch (e) { /* private mode: the banner then lasts one page */ }
  }

  function load(key) {
    try { return JSON.parse(sessionStorage.getItem(key) || "null"); } catch (e) { return null; }
  }

  /* ---- the master-change banner ---------------------------------------- */
  function showChangeBanner(text) {
    var banner = byId("master-changed");
    if (!banner) { return; }
    banner.querySelector(".banner-text").textContent = text;
    banner.hidden = false;
  }

  function noteCluster(cluster) {
    if (!cluster || !cluster.master) { return; }
    var epoch = cluster.epoch === undefined || cluster.epoch === "" ? null : String(cluster.epoch);
    var last = load(SEEN_KEY);
    if (last && last.master && (last.master !== cluster.master || (epoch !== null && last.epoch !== null && last.epoch !== epoch))) {
      var text = last.master !== cluster.master
        ? "The master changed: " + last.master + " \u2192 " + cluster.master + (epoch !== null ? " (epoch " + epoch + ")" : "") + "."
        : "A new master term began: " + cluster.master + ", epoch " + epoch + ".";
      store(BANNER_KEY, {text: text});
      showChangeBanner(text);
    }
    store(SEEN_KEY, {master: cluster.master, epoch: epoch});
  }

  function applyCluster(cluster) {
    noteCluster(cluster);
    setText('[data-field="master"]', cluster.master || "\u2013");
    setText('[data-field="epoch"]', cluster.epoch === null || cluster.epoch === undefined ? "\u2013" : String(cluster.epoch));
    var state = byId("cluster-state");
    if (state) {
      state.hidden = cluster.state === "ok";
      state.querySelector(".banner-text").textContent = cluster.message || "";
    }
    body.setAttribute("data-state", cluster.state || "");
  }

  /* ---- live regions ------------------------------------------------------ */
  function busy(region) {
    // Do not swap a region under the user's hand (a focused button or field).
    var active = document.activeElement;
    return active && active !== body && region.contains(active) && /^(BUTTON|INPUT|SELECT|TEXTAREA|A)$/.test(active.tagName);
  }

  function applyFragments(fragments) {
    Object.keys(fragments || {}).forEach(function (name) {
      var region = document.querySelector('[data-live="' + name + '"]');
      var html = fragments[name];
      if (!region || lastHtml[name] === html || busy(region)) { return; }
      var follow = region.querySelector("pre[data-follow]");
      var atBottom = !follow || follow.scrollTop + follow.clientHeight >= follow.scrollHeight - 8;
      var scrollTop = follow ? follow.scrollTop : 0;
      region.innerHTML = html;  // server-rendered by Jinja (autoescaped)
      lastHtml[name] = html;
      var pre = region.querySelector("pre[data-follow]");
      if (pre) { pre.scrollTop = atBottom ? pre.scrollHeight : scrollTop; }
    });
  }

  function setOffline(offline) {
    var banner = byId("webview-offline");
    if (banner) { banner.hidden = !offline; }
  }

  function poll(url) {
    var controller = window.AbortController ? new AbortController() : null;
    var timer = controller ? setTimeout(function () { controller.abort(); }, REQUEST_TIMEOUT) : null;
    fetch(url, {credentials: "same-origin", cache: "no-store", headers: {"Accept": "application/json"},
                signal: controller ? controller.signal : undefined})
      .then(function (response) {
        if (response.status === 401) {
          window.location.href = body.getAttribute("data-login") + "?next=" +
            encodeURIComponent(window.location.pathname + window.location.search);
          throw new Error("logged out");
        }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        setOffline(false);
        applyCluster(data.cluster || {});
        applyFragments(data.fragments);
        body.setAttribute("data-polled", String(Date.now()));
      })
      .catch(function () { setOffline(true); })
      .then(function () {
        if (timer) { clearTimeout(timer); }
        setTimeout(function () { poll(url); }, document.hidden ? HIDDEN_INTERVAL : INTERVAL);
      });
  }

  /* ---- the log tab: server-sent events, one per line ------------------------- */
  var MAX_LOG_CHARS = 512 * 1024;  // older text is dropped from the top past this

  function streamLogs(pre) {
    if (!window.EventSource) { return; }
    var url = pre.getAttribute("data-stream");
    var after = pre.getAttribute("data-after");
    var note = pre.parentNode.querySelector(".log-note");
    var fresh = pre.textContent === "(no output yet)";
    var source = new EventSource(url + (after ? (url.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(after) : ""));
    source.onmessage = function (event) {
      var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
      if (fresh) { pre.textContent = ""; fresh = false; }
      pre.appendChild(document.createTextNode(event.data + "\n"));  // text, never markup
      if (pre.textContent.length > MAX_LOG_CHARS) { pre.textContent = pre.textContent.slice(-MAX_LOG_CHARS / 2); }
      if (atBottom) { pre.scrollTop = pre.scrollHeight; }
      if (note) { note.hidden = true; }
      body.setAttribute("data-log-lines", String((parseInt(body.getAttribute("data-log-lines") || "0", 10)) + 1));
    };
    source.addEventListener("note", function (event) {
      if (note) { note.textContent = "Logs paused: " + event.data + " (retrying)"; note.hidden = false; }
    });
    source.addEventListener("end", function () { source.close(); });
  }

  /* ---- forms --------------------------------------------------------------- */
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); }
  });

  function setupEditor() {
    var area = byId("spec");
    if (!area) { return; }
    var gutter = area.parentNode.querySelector(".gutter");
    var bad = {};
    (area.getAttribute("data-bad-lines") || "").split(",").forEach(function (n) { if (n) { bad[n] = true; } });

    function render() {
      var count = area.value.split("\n").length;
      gutter.textContent = "";
      for (var n = 1; n <= count; n++) {
        var span = document.createElement("span");
        span.textContent = String(n);
        if (bad[String(n)]) { span.className = "bad"; }
        gutter.appendChild(span);
        gutter.appendChild(document.createTextNode("\n"));
      }
      gutter.scrollTop = area.scrollTop;
    }
    area.addEventListener("input", function () { bad = {}; render(); });
    area.addEventListener("scroll", function () { gutter.scrollTop = area.scrollTop; });
    render();

    // Clicking a problem puts the cursor on its line in the editor.
    document.addEventListener("click", function (event) {
      var problem = event.target.closest ? event.target.closest(".problem[data-line]") : null;
      if (!problem) { return; }
      var line = parseInt(problem.getAttribute("data-line"), 10);
      var lines = area.value.split("\n");
      var start = 0;
      for (var i = 0; i < line - 1 && i < lines.length; i++) { start += lines[i].length + 1; }
      area.focus();
      area.setSelectionRange(start, start + (lines[line - 1] || "").length);
      var lineHeight = parseFloat(getComputedStyle(area).lineHeight) || 20;
      area.scrollTop = Math.max(0, (line - 3) * lineHeight);
    });

    // A chosen file is loaded into the editor, so it can be fixed in place.
    var file = byId("file");
    var source = byId("source");
    if (file && window.FileReader) {
      file.addEventListener("change", function () {
        var chosen = file.files && file.files[0];
        if (!chosen) { return; }
        var reader = new FileReader();
        reader.onload = function () {
          area.value = String(reader.result);
          if (source) { source.value = chosen.name; }
          file.value = "";  // the editor's text is what gets sent now
          bad = {};
          render();
        };
        reader.readAsText(chosen);
      });
    }
  }

  /* ---- start ---------------------------------------------------------------- */
  var pending = load(BANNER_KEY);
  if (pending && pending.text) { showChangeBanner(pending.text); }
  var close = document.querySelector("#master-changed .banner-close");
  if (close) {
    close.addEventListener("click", function () { byId("master-changed").hidden = true; store(BANNER_KEY, null); });
  }
  if (body.hasAttribute("data-master")) {
    noteCluster({master: body.getAttribute("data-master"), epoch: body.getAttribute("data-epoch")});
  }
  setupEditor();
  var logs = document.querySelector("pre[data-stream]");
  if (logs) { streamLogs(logs); }
  var url = body.getAttribute("data-poll");
  if (url) { setTimeout(function () { poll(url); }, INTERVAL); }
})();
