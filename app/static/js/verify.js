// The public verification page: the signed part of a scanned QR code is in location.hash, which
// the browser never sends to the server. Post it to the public check endpoint, which compares it
// with the code the authority issued under this number; a forged or altered code reads 无法验证.
(function () {
  "use strict";
  var status = document.getElementById("status");
  var hash = window.location.hash.replace(/^#/, "");
  if (!status || !hash) { return; }
  var box = document.getElementById("qr-check");
  var word = document.getElementById("check-word");
  var note = document.getElementById("check-note");
  function show(ok, title, text) {
    box.hidden = false;
    box.className = ok ? "v-check" : "v-check bad";
    word.textContent = title;
    note.textContent = text;
  }
  fetch("/api/public/certificates/check", {
    method: "POST",
    headers: { "Content-Type": "application/json", "Accept": "application/json" },
    body: JSON.stringify({ number: status.getAttribute("data-number"), fragment: hash }),
    credentials: "omit"
  }).then(function (r) {
    if (r.status === 429) { throw new Error("busy"); }
    return r.json();
  }).then(function (d) {
    if (d.match) {
      show(true, "二维码核验通过", d.message);
    } else {
      status.className = "v-status s-unverifiable";
      document.getElementById("status-word").textContent = "无法验证";
      document.getElementById("status-note").textContent = d.message;
      show(false, "二维码与证件不符", "下方为该证号在发证机关登记的信息，仅供核对，不能证明所持证件为真。");
    }
  }).catch(function () {
    show(false, "暂时无法核验二维码", "网络繁忙，请稍后刷新页面重试；上方状态为该证号的实时登记状态。");
  });
})();
