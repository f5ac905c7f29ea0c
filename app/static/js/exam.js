// The exam page: countdown from the server's deadline, autosave with sequence numbers, resume.
//
// Every change gets the next sequence number (kept in localStorage, never below the server's
// highest), is queued, and is sent with the others in one PUT; the server keeps the highest number
// per question, so a late or repeated save never overwrites a newer answer. Unsent changes survive
// a reload or a crash in localStorage and are re-sent when the page opens again. The clock counts
// down from the seconds the server said were left; at zero the page flushes and submits, and the
// server closes the attempt by itself in any case.
(function () {
  "use strict";
  var form = document.getElementById("exam");
  if (!form) return;
  var attemptId = form.dataset.attempt;
  var apiBase = "/api/my/exams/attempts/" + attemptId;
  var keySeq = "exam:" + attemptId + ":seq";
  var keyPending = "exam:" + attemptId + ":pending";
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var statusEl = document.getElementById("save-status");
  var clockEl = document.getElementById("countdown");
  var countEl = document.getElementById("answered-count");
  var submitting = false;
  var inflight = null;
  var retryTimer = null;
  var flushTimer = null;

  function load(key, fallback) {
    try { var v = window.localStorage.getItem(key); return v === null ? fallback : JSON.parse(v); }
    catch (e) { return fallback; }
  }
  function store(key, value) {
    try { window.localStorage.setItem(key, JSON.stringify(value)); } catch (e) { /* private mode: memory only */ }
  }

  var seq = Math.max(Number(form.dataset.maxSeq) || 0, Number(load(keySeq, 0)) || 0);
  var pending = load(keyPending, {}) || {};

  function fieldset(position) { return document.getElementById("q" + position); }
  function choiceOf(fs) {
    var out = [];
    fs.querySelectorAll("input").forEach(function (input) { if (input.checked) out.push(Number(input.value)); });
    return out;
  }
  function setStatus(text, cls) {
    statusEl.textContent = text;
    statusEl.className = "save-status" + (cls ? " " + cls : "");
  }
  function countAnswered() {
    var n = 0, total = 0;
    form.querySelectorAll("fieldset.question").forEach(function (fs) { total += 1; if (choiceOf(fs).length) n += 1; });
    countEl.textContent = "已答 " + n + " / " + total + " 题";
  }

  // Unsent changes from before a reload win over the server's copy only if they are newer.
  Object.keys(pending).forEach(function (position) {
    var item = pending[position];
    var fs = fieldset(position);
    if (!fs || item.seq <= Number(fs.dataset.seq || 0)) { delete pending[position]; return; }
    fs.querySelectorAll("input").forEach(function (input) { input.checked = item.choice.indexOf(Number(input.value)) >= 0; });
    seq = Math.max(seq, item.seq);
  });
  store(keyPending, pending);
  countAnswered();

  function hhmmss(d) { return d.toTimeString().slice(0, 8); }

  function flush(keepalive) {
    var items = Object.keys(pending).map(function (k) { return pending[k]; });
    if (!items.length) return Promise.resolve(true);
    if (inflight) return inflight.then(function () { return flush(keepalive); });
    setStatus("正在保存…");
    inflight = fetch(apiBase + "/answers", {
      method: "PUT",
      headers: { "content-type": "application/json", "x-csrftoken": csrf, accept: "application/json" },
      body: JSON.stringify({ answers: items }),
      credentials: "same-origin",
      keepalive: !!keepalive
    }).then(function (resp) {
      if (resp.status === 409) { window.location.reload(); return false; }
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      return resp.json().then(function (body) {
        items.forEach(function (item) {
          var now = pending[item.position];
          if (now && now.seq === item.seq) delete pending[item.position];
          var fs = fieldset(item.position);
          if (fs && item.seq > Number(fs.dataset.seq || 0)) fs.dataset.seq = String(item.seq);
        });
        store(keyPending, pending);
        resync(body.seconds_left);
        setStatus("已自动保存 " + hhmmss(new Date()), "ok");
        return true;
      });
    }).catch(function () {
      setStatus("保存失败（网络中断？），答案已暂存在本机，正在重试…", "err");
      clearTimeout(retryTimer);
      retryTimer = setTimeout(function () { flush(false); }, 3000);
      return false;
    }).finally(function () { inflight = null; });
    return inflight;
  }

  function schedule() {
    clearTimeout(flushTimer);
    flushTimer = setTimeout(function () { flush(false); }, 600);
  }

  form.addEventListener("change", function (event) {
    var fs = event.target.closest("fieldset.question");
    if (!fs) return;
    seq += 1;
    store(keySeq, seq);
    pending[fs.dataset.position] = { position: Number(fs.dataset.position), choice: choiceOf(fs), seq: seq };
    store(keyPending, pending);
    countAnswered();
    schedule();
  });

  // The clock: seconds the server said were left, counted with a monotonic timer.
  var left = Number(form.dataset.secondsLeft) || 0;
  var base = performance.now();
  function resync(secondsLeft) {
    if (typeof secondsLeft === "number") { left = secondsLeft; base = performance.now(); }
  }
  function remaining() { return Math.max(0, left - (performance.now() - base) / 1000); }
  function tick() {
    var s = Math.ceil(remaining());
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    clockEl.textContent = (h ? h + ":" : "") + String(m).padStart(2, "0") + ":" + String(sec).padStart(2, "0");
    clockEl.parentElement.classList.toggle("low", s <= 300);
    if (s <= 0 && !submitting) { setStatus("时间到，正在交卷…"); submit(); return; }
    setTimeout(tick, 250);
  }

  // Submitting: the JSON submit asking for no paper back (Prefer: return=minimal), then the result
  // page; if that fails for any reason, the form post, which answers with the result or the error.
  function submit() {
    if (submitting) return;
    submitting = true;
    setStatus("正在交卷…");
    flush(false).then(function () {
      return fetch(apiBase + "/submit", {
        method: "POST",
        headers: { "x-csrftoken": csrf, accept: "application/json", prefer: "return=minimal" },
        credentials: "same-origin"
      });
    }).then(function (resp) {
      if (!resp.ok) throw new Error("HTTP " + resp.status);
      try { window.localStorage.removeItem(keyPending); window.localStorage.removeItem(keySeq); } catch (e) { /* private mode */ }
      window.location.replace(window.location.pathname);
    }).catch(function () { form.submit(); });
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });

  // Heartbeat: anything still queued goes out at least every 30 seconds.
  setInterval(function () { flush(false); }, 30000);

  // Leaving the exam screen (another tab or app) is logged, and submits when the session says so.
  // A reload or a navigation is not leaving: the page fires pagehide first, and resumes on return.
  var unloading = false;
  window.addEventListener("pagehide", function () { unloading = true; flush(true); });
  window.addEventListener("pageshow", function () { unloading = false; });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState !== "hidden" || submitting) return;
    flush(true);
    if (unloading) return;
    fetch(apiBase + "/leave", {
      method: "POST", headers: { "x-csrftoken": csrf, accept: "application/json" },
      credentials: "same-origin", keepalive: true
    }).catch(function () { /* logged on the next save instead */ });
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      fetch(apiBase, { headers: { accept: "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (!body) return;
          if (body.status !== "open") { window.location.reload(); return; }
          resync(body.seconds_left);
        }).catch(function () {});
    }
  });

  tick();
  // Changes left over from before a reload or a crash go out at once.
  if (Object.keys(pending).length) flush(false);
})();
