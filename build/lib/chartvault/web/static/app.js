// A few lines of progressive enhancement; every page works without them.
(function () {
  "use strict";
  function describe(input, out) {
    var n = input.files ? input.files.length : 0;
    out.textContent = n ? n + " file" + (n === 1 ? "" : "s") + " chosen" : "";
  }
  document.addEventListener("DOMContentLoaded", function () {
    var zone = document.getElementById("dropzone");
    var input = document.getElementById("files");
    var chosen = document.getElementById("chosen");
    if (zone && input && chosen) {
      input.addEventListener("change", function () { describe(input, chosen); });
      ["dragenter", "dragover"].forEach(function (name) {
        zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
      });
      ["dragleave", "drop"].forEach(function (name) {
        zone.addEventListener(name, function () { zone.classList.remove("over"); });
      });
      zone.addEventListener("drop", function (e) {
        e.preventDefault();
        if (e.dataTransfer && e.dataTransfer.files.length) {
          input.files = e.dataTransfer.files;
          describe(input, chosen);
        }
      });
    }
    document.querySelectorAll("input[type=file][data-fills]").forEach(function (picker) {
      picker.addEventListener("change", function () {
        var target = document.getElementById(picker.getAttribute("data-fills"));
        var file = picker.files && picker.files[0];
        if (!target || !file) { return; }
        file.text().then(function (text) { target.value = text; });
      });
    });
    document.body.addEventListener("htmx:configRequest", function (e) {
      var token = document.querySelector("input[name=csrf]");
      if (token) { e.detail.headers["X-CSRF-Token"] = token.value; }
    });
  });
})();
