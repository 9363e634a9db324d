/* Household card scanning with the laptop camera, where the browser can read QR codes itself
   (the BarcodeDetector API: Chromium-based browsers). Elsewhere the number is typed: nothing here
   is needed for the form to work. No external library. */
(function () {
  "use strict";
  var box = document.getElementById("scanner-box");
  var unsupported = document.getElementById("scan-unsupported");
  var input = document.getElementById("household_card");
  if (!box || !input) { return; }
  if (!("BarcodeDetector" in window) || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    if (unsupported) { unsupported.hidden = false; }
    return;
  }
  var start = document.getElementById("scan-start");
  var stop = document.getElementById("scan-stop");
  var video = document.getElementById("scanner");
  var status = document.getElementById("scan-status");
  var stream = null;
  var timer = null;
  var detector = null;

  function finish() {
    if (timer) { clearTimeout(timer); timer = null; }
    if (stream) { stream.getTracks().forEach(function (t) { t.stop(); }); stream = null; }
    video.hidden = true; stop.hidden = true; start.hidden = false;
  }

  function look() {
    detector.detect(video).then(function (codes) {
      var found = codes.map(function (c) { return (c.rawValue || "").replace(/[\s-]/g, ""); })
                       .filter(function (v) { return /^[0-9]{8,16}$/.test(v); });
      if (found.length) {
        input.value = found[0];
        status.textContent = box.dataset.found || "✓ " + found[0];
        finish();
        var next = document.getElementById("quantity");
        if (next) { next.focus(); }
        return;
      }
      timer = setTimeout(look, 250);
    }).catch(function () { timer = setTimeout(look, 500); });
  }

  BarcodeDetector.getSupportedFormats().then(function (formats) {
    if (formats.indexOf("qr_code") < 0) {
      if (unsupported) { unsupported.hidden = false; }
      return;
    }
    detector = new BarcodeDetector({ formats: ["qr_code"] });
    box.hidden = false;
    start.addEventListener("click", function () {
      navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false })
        .then(function (s) {
          stream = s; video.srcObject = s; video.hidden = false; stop.hidden = false; start.hidden = true;
          return video.play();
        })
        .then(look)
        .catch(function (e) { status.textContent = String(e && e.name || e); finish(); });
    });
    stop.addEventListener("click", finish);
  }).catch(function () { if (unsupported) { unsupported.hidden = false; } });
}());
