// 名册: the rows are shown at once; the exact number of officers the view keeps is counted apart
// (a province-wide count with exam or training filters takes a moment) and filled in here.
// Without scripts the page offers a 统计人数 link that reloads it with the count.
document.addEventListener("DOMContentLoaded", () => {
  const total = document.getElementById("roster-total");
  if (!total || !total.dataset.src) return;
  total.textContent = "统计中…";
  fetch(total.dataset.src, { headers: { Accept: "application/json" }, credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
    .then((body) => {
      total.textContent = String(body.total);
    })
    .catch(() => {
      total.textContent = "暂时无法统计，请刷新重试";
    });
});
