"use strict";
// Starts ReDoc on /api/redoc/ from a file, not an inline script, so the page's Content-Security-Policy
// can forbid inline scripts (and every other host: see reservemail.api.OfflineRedocView).
(function () {
  var container = document.getElementById("redoc-container");
  var settings = document.getElementById("redoc-settings");
  Redoc.init(container.dataset.specUrl, settings ? JSON.parse(settings.textContent) : {}, container);
})();
