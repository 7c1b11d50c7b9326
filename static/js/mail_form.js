/* The mail form: "reserve" reveals the date-time picker; the picker never offers the past;
 * only the context fields the chosen template reads are shown; the button says what will happen. */
(function () {
  "use strict";

  var form = document.getElementById("mail-form");
  if (!form) return;
  var reserve = form.querySelector("input[name=reserve]"); // absent when editing a reservation: always reserved
  var when = document.getElementById("when-group");
  var picker = form.querySelector("input[name=scheduled_at]");
  var template = form.querySelector("select[name=template]");
  var submit = form.querySelector("button[type=submit].primary");

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  // The earliest minute that can still be picked, in the user's zone (the server's, not the browser's).
  var zone = picker.dataset.timeZone;
  function nowInZone() {
    var parts = {};
    try {
      new Intl.DateTimeFormat("en-CA", {
        timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit"
      }).formatToParts(new Date()).forEach(function (p) { parts[p.type] = p.value; });
      return parts.year + "-" + parts.month + "-" + parts.day + "T" + parts.hour + ":" + parts.minute;
    } catch (e) {
      var d = new Date();
      return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
    }
  }

  function refreshMin() {
    picker.min = nowInZone();
  }

  function reserving() {
    return !reserve || reserve.checked;
  }

  function showWhen() {
    when.hidden = !reserving();
    picker.required = reserving();
    submit.textContent = reserving() ? submit.dataset.reserveLabel : submit.dataset.sendLabel;
    if (reserving() && !picker.value) {
      // Suggest ten minutes from now, on a whole minute (left empty across midnight).
      refreshMin();
      var base = picker.min.split("T");
      var hm = base[1].split(":");
      var minutes = parseInt(hm[0], 10) * 60 + parseInt(hm[1], 10) + 10;
      if (minutes < 24 * 60) picker.value = base[0] + "T" + pad(Math.floor(minutes / 60)) + ":" + pad(minutes % 60);
    }
  }

  function showContextFields() {
    var chosen = template.value;
    Array.prototype.forEach.call(form.querySelectorAll("[data-templates]"), function (input) {
      var row = input.closest(".field");
      var used = input.dataset.templates.split(" ").indexOf(chosen) >= 0;
      row.hidden = !used && !input.value;
    });
  }

  // One submit at a time: a double click on any of the buttons sends the form once (for "Send" and
  // "Send a test to me" the server refuses the twin as well: tasks/submissions.py). Not disabling the
  // buttons, which would drop the clicked one's action; released after a while, and when the back
  // button shows the page again, so a stopped or slow request can be sent again on purpose.
  var sending = false;
  form.addEventListener("submit", function (event) {
    if (sending) {
      event.preventDefault();
      return;
    }
    sending = true;
    setTimeout(function () { sending = false; }, 5000);
  });
  window.addEventListener("pageshow", function () { sending = false; });

  if (reserve) reserve.addEventListener("change", showWhen);
  template.addEventListener("change", showContextFields);
  refreshMin();
  setInterval(refreshMin, 30000);
  showWhen();
  showContextFields();
})();
