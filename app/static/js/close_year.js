// 年度结转: while the one-pass close runs (a second or two for a province), show a progress bar and
// keep the button from being pressed twice. The page works without it: the run is idempotent anyway.
document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("close-year-form");
  if (!form) return;
  form.addEventListener("submit", () => {
    const button = document.getElementById("close-year");
    const bar = document.getElementById("close-year-progress");
    if (button) {
      button.disabled = true;
      button.textContent = "正在结转…";
    }
    if (bar) bar.hidden = false;
  });
});
