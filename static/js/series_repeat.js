// The mail form's "Repeat" section: show the fields of the chosen kind, and before saving the rule in
// words with its next five dates (from the server's preview, so the time-zone rules are the server's).
(function () {
  "use strict";
  var box = document.getElementById("repeat-fields");
  if (!box) { return; }
  function kindValue() {
    var checked = box.querySelector("[name='repeat-kind']:checked");
    return checked ? checked.value : "none";
  }
  var summary = box.querySelector(".repeat-summary");
  var list = box.querySelector(".repeat-upcoming");
  var timer = null;
  var asked = 0;  // the number of the latest preview request: an older answer arriving late is dropped
  var inflight = null;

  function showGroups() {
    var chosen = kindValue();
    box.querySelectorAll(".repeat-group").forEach(function (group) {
      group.hidden = group.dataset.kinds.split(" ").indexOf(chosen) < 0;
    });
  }

  // The submit button says what it will do: start a series, or (mail_form.js's words) send or reserve.
  function label() {
    var button = document.querySelector("#mail-form button[type=submit].primary");
    var reserve = document.getElementById("id_reserve");
    if (!button) { return; }
    if (kindValue() !== "none") { button.textContent = box.dataset.submitLabel; return; }
    button.textContent = reserve && reserve.checked ? button.dataset.reserveLabel : button.dataset.sendLabel;
  }

  function render(data) {
    summary.textContent = data.ok ? data.summary : data.error;
    summary.classList.toggle("bad", !data.ok);
    list.replaceChildren();
    (data.upcoming || []).forEach(function (text) {
      var item = document.createElement("li");
      item.textContent = text;
      list.appendChild(item);
    });
  }

  function refresh() {
    var params = new URLSearchParams();
    box.querySelectorAll("input, select").forEach(function (field) {
      if (!field.name || ((field.type === "checkbox" || field.type === "radio") && !field.checked)) { return; }
      params.append(field.name, field.value);
    });
    clearTimeout(timer);
    if (inflight) { inflight.abort(); }
    var mine = ++asked;
    inflight = new AbortController();
    fetch(box.dataset.previewUrl + "?" + params.toString(), { credentials: "same-origin", signal: inflight.signal })
      .then(function (response) { return response.json(); })
      .then(function (data) { if (mine === asked) { render(data); } })
      .catch(function () { if (mine === asked) { summary.textContent = ""; } });
  }

  box.addEventListener("input", function () {
    showGroups();
    clearTimeout(timer);
    timer = setTimeout(refresh, 250);
  });
  box.addEventListener("change", function () { showGroups(); label(); refresh(); });
  showGroups();
  label();
  if (kindValue() !== "none") { refresh(); }
})();
