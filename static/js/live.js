/* The "tasks in progress" panel: polls /notifications/?since=, ticks countdowns locally.
 *
 * - Polls every few seconds (data-poll-seconds), never while the tab is hidden, and at once when
 *   it becomes visible again.
 * - A countdown is computed from reserved_at and the server's clock (X-Server-Time), every second,
 *   without asking the server.
 * - Each poll answer carries the whole list of a kind (task_reserve, task_progress): the panel is
 *   rebuilt from those lists, entry by entry, touching only entries that changed.
 */
(function () {
  "use strict";

  var panel = document.getElementById("live-panel");
  if (!panel) return;
  var list = document.getElementById("live-tasks");
  var empty = panel.querySelector(".live-empty");
  var strings = JSON.parse(document.getElementById("live-strings").textContent);
  var csrf = panel.querySelector("input[name=csrfmiddlewaretoken]").value;
  var pollMs = Math.max(1, parseFloat(panel.dataset.pollSeconds) || 3) * 1000;
  var timeZone = panel.dataset.timeZone;
  // Rows are re-read a little before the newest timestamp seen: a write that committed late
  // with an earlier timestamp is not missed. The lists are small; reading one twice is harmless.
  var OVERLAP_SECONDS = 2;
  var DISMISSED_KEY = "reservemail.dismissed";

  var clockOffset = parseFloat(panel.dataset.serverTime) * 1000 - Date.now(); // server minus browser
  var since = 0;
  var newest = 0;
  var lists = { task_reserve: null, task_progress: null };
  var known = {}; // task ids that came from a list (so their absence later means "gone")
  var timer = null;
  var inFlight = false;

  function serverNow() {
    return Date.now() + clockOffset;
  }

  function dismissed() {
    try {
      return JSON.parse(sessionStorage.getItem(DISMISSED_KEY) || "[]");
    } catch (e) {
      return [];
    }
  }

  function remember(taskId) {
    var ids = dismissed();
    if (ids.indexOf(taskId) < 0) ids.push(taskId);
    try {
      sessionStorage.setItem(DISMISSED_KEY, JSON.stringify(ids.slice(-500)));
    } catch (e) {
      /* private mode: the entry just comes back on the next page */
    }
  }

  // Same rules as notifications/remaining.py: largest non-zero unit first, zero units left out.
  function formatRemaining(seconds) {
    var u = strings.units;
    if (seconds <= 0) return u.due;
    var steps = [["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
    var parts = [];
    var rest = seconds;
    steps.forEach(function (step) {
      var amount = Math.floor(rest / step[1]);
      rest -= amount * step[1];
      if (amount) parts.push(amount + u[step[0]]);
    });
    return u.left.replace("%s", parts.join(u.joiner));
  }

  function remainingSeconds(iso) {
    return Math.ceil((Date.parse(iso) - serverNow()) / 1000);
  }

  function formatWhen(iso) {
    // "2026-11-24 15:30" in the user's zone, like the server's {{ value|date:"Y-m-d H:i" }}.
    var parts = {};
    try {
      new Intl.DateTimeFormat("en-CA", {
        timeZone: timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit"
      }).formatToParts(new Date(iso)).forEach(function (p) { parts[p.type] = p.value; });
      return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
    } catch (e) {
      return iso;
    }
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      if (key === "text") node.textContent = attrs[key];
      else node.setAttribute(key, attrs[key]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  function phaseOf(entry) {
    if (entry.status === "reserved" && entry.reserved_at && remainingSeconds(entry.reserved_at) <= 0) return "due";
    if (entry.status === "finished" && entry.failed) return "failed";
    return entry.status;
  }

  function cancelForm(entry) {
    var form = el("form", { method: "post", action: panel.dataset.cancelUrl.replace("/0/", "/" + entry.task_id + "/"), "class": "cancel-form" }, [
      el("input", { type: "hidden", name: "csrfmiddlewaretoken", value: csrf }),
      el("input", { type: "hidden", name: "next", value: panel.dataset.next }),
      el("button", { type: "submit", "class": "link danger", text: entry.status === "running" ? strings.stop : strings.cancel })
    ]);
    return form;
  }

  function closeButton() {
    return el("button", { type: "button", "class": "close", "aria-label": strings.close, title: strings.close, text: "× " + strings.close });
  }

  function build(entry, phase) {
    var progress = Math.max(0, Math.min(100, entry.progress || 0));
    var li = el("li", {
      "class": "live-entry phase-" + phase, "data-task-id": String(entry.task_id), "data-phase": phase
    });
    if (entry.reserved_at) li.setAttribute("data-reserved-at", entry.reserved_at);
    li.appendChild(el("div", { "class": "entry-head" }, [
      el("a", { "class": "entry-title", href: panel.dataset.detailUrl.replace("/0/", "/" + entry.task_id + "/"), text: "#" + entry.task_id + " " + (entry.description || "") }),
      entry.repeats && strings.repeats && strings.repeats[entry.repeats] ? el("span", { "class": "entry-repeats", text: strings.repeats[entry.repeats] }) : null,
      el("span", { "class": "entry-status", text: strings.status[phase] || entry.status })
    ]));
    if (phase === "reserved" || phase === "due") {
      li.appendChild(el("div", { "class": "entry-when" }, [
        el("time", { datetime: entry.reserved_at, text: formatWhen(entry.reserved_at) }),
        document.createTextNode(" · "),
        el("span", { "class": "countdown", "aria-live": "off", text: formatRemaining(remainingSeconds(entry.reserved_at)) })
      ]));
    } else if (phase !== "canceled") {
      var bar = el("div", { "class": "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(progress) }, [
        el("span", { style: "width: " + progress + "%" })
      ]);
      li.appendChild(el("div", { "class": "entry-progress" }, [bar, el("span", { "class": "pct", text: progress + "%" })]));
    }
    var ended = phase === "finished" || phase === "failed" || phase === "canceled";
    li.appendChild(el("div", { "class": "entry-actions" }, [ended || phase === "due" ? closeButton() : cancelForm(entry)]));
    return li;
  }

  // One view per task: the progress entry (the job's own word) wins over the reservation entry.
  function merged() {
    var byId = {};
    var order = [];
    (lists.task_reserve || []).concat(lists.task_progress || []).forEach(function (entry) {
      var id = entry.task_id;
      if (!byId[id]) order.push(id);
      var base = byId[id] || {};
      var next = {};
      Object.keys(base).forEach(function (k) { next[k] = base[k]; });
      Object.keys(entry).forEach(function (k) { if (entry[k] !== null && entry[k] !== undefined) next[k] = entry[k]; });
      byId[id] = next;
    });
    return order.map(function (id) { return byId[id]; });
  }

  function signature(entry, phase) {
    return [phase, entry.progress, entry.reserved_at, entry.description, entry.failed].join("|");
  }

  function render(authoritative) {
    var hidden = dismissed();
    var seen = {};
    merged().forEach(function (entry) {
      var id = String(entry.task_id);
      seen[id] = true;
      known[id] = true;
      var current = list.querySelector('[data-task-id="' + id + '"]');
      if (hidden.indexOf(entry.task_id) >= 0) {
        if (current) current.remove();
        return;
      }
      var phase = phaseOf(entry);
      var sig = signature(entry, phase);
      if (current && current.dataset.sig === sig) return;
      var node = build(entry, phase);
      node.dataset.sig = sig;
      if (current) list.replaceChild(node, current);
      else list.appendChild(node);
    });
    Array.prototype.forEach.call(list.querySelectorAll(".live-entry"), function (li) {
      var id = li.dataset.taskId;
      // Gone from the lists (closed elsewhere, or pruned after its grace period): gone from here.
      if (!seen[id] && (known[id] || authoritative)) li.remove();
    });
    reorder();
    empty.hidden = list.children.length > 0;
  }

  // Sends without a time first (oldest first), then reservations soonest first: as the server draws it.
  function sortKey(li) {
    var at = li.dataset.reservedAt;
    return [at ? 1 : 0, at ? Date.parse(at) : 0, parseInt(li.dataset.taskId, 10)];
  }

  function compareKeys(a, b) {
    for (var i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
  }

  function reorder() {
    var items = Array.prototype.slice.call(list.children);
    var sorted = items.slice().sort(function (a, b) { return compareKeys(sortKey(a), sortKey(b)); });
    if (sorted.some(function (li, i) { return li !== items[i]; })) {
      sorted.forEach(function (li) { list.appendChild(li); });
    }
  }

  function tick() {
    Array.prototype.forEach.call(list.querySelectorAll('.live-entry[data-phase="reserved"]'), function (li) {
      var left = remainingSeconds(li.dataset.reservedAt);
      var countdown = li.querySelector(".countdown");
      if (countdown) countdown.textContent = formatRemaining(left);
      if (left <= 0) {
        // Due: the job is about to start; cancelling is no longer offered, closing is.
        li.dataset.phase = "due";
        li.className = "live-entry phase-due";
        li.querySelector(".entry-status").textContent = strings.status.due;
        var actions = li.querySelector(".entry-actions");
        actions.textContent = "";
        actions.appendChild(closeButton());
      }
    });
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(poll, delay);
  }

  function poll() {
    if (document.hidden) return; // resumed by visibilitychange
    if (inFlight) return schedule(pollMs);
    inFlight = true;
    var full = since === 0;
    var started = Date.now();
    fetch(panel.dataset.pollUrl + "?since=" + encodeURIComponent(since), {
      credentials: "same-origin", headers: { Accept: "application/json" }, cache: "no-store"
    }).then(function (response) {
      if (response.status === 401) throw new Error("signed out");
      if (!response.ok) throw new Error("poll failed: " + response.status);
      var serverTime = parseFloat(response.headers.get("X-Server-Time"));
      if (!isNaN(serverTime)) clockOffset = serverTime * 1000 - (started + Date.now()) / 2;
      return response.json();
    }).then(function (rows) {
      rows.forEach(function (row) {
        if (row.name in lists) lists[row.name] = row.data || [];
        newest = Math.max(newest, row.timestamp);
      });
      since = Math.max(0, newest - OVERLAP_SECONDS);
      render(full);
      tick();
      inFlight = false;
      schedule(pollMs);
    }).catch(function (error) {
      inFlight = false;
      if (String(error.message) === "signed out") return; // stop: the next page asks to sign in
      schedule(pollMs * 2);
    });
  }

  list.addEventListener("click", function (event) {
    var button = event.target.closest("button.close");
    if (!button) return;
    var li = button.closest(".live-entry");
    var taskId = parseInt(li.dataset.taskId, 10);
    remember(taskId);
    var phase = li.dataset.phase;
    li.remove();
    empty.hidden = list.children.length > 0;
    if (phase === "finished" || phase === "failed" || phase === "canceled") {
      // The final state was seen: its entry may leave the list now (not only after the grace).
      var body = new URLSearchParams({ task_id: String(taskId) });
      fetch(panel.dataset.dismissUrl, {
        method: "POST", credentials: "same-origin", body: body,
        headers: { "X-CSRFToken": csrf }
      }).catch(function () { /* pruned after the grace period anyway */ });
    }
  });

  list.addEventListener("submit", function (event) {
    var form = event.target.closest(".cancel-form");
    if (!form) return;
    var li = form.closest(".live-entry");
    var asked = li.dataset.phase === "running" ? strings.confirm_stop : strings.confirm_cancel;
    var question = asked.replace("%(id)s", li.dataset.taskId);
    if (!window.confirm(question)) event.preventDefault();
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) schedule(0);
    else clearTimeout(timer);
  });

  // Server-rendered entries: draw their countdown at once, then hand over to the poll.
  Array.prototype.forEach.call(list.querySelectorAll(".live-entry"), function (li) {
    var time = li.querySelector("time");
    if (time) time.textContent = formatWhen(time.getAttribute("datetime"));
  });
  tick();
  setInterval(tick, 1000);
  schedule(0);
})();
