// Shows an upload's progress in the <progress data-upload-progress> of the
// form htmx is sending. A file, not inline code: the CSP allows no inline JS.
document.addEventListener("htmx:xhr:progress", (event) => {
  const form = event.target.closest("form");
  const bar = form && form.querySelector("progress[data-upload-progress]");
  if (!bar || !event.detail.lengthComputable) return;
  bar.hidden = false;
  bar.value = Math.round((event.detail.loaded / event.detail.total) * 100);
});
document.addEventListener("htmx:afterRequest", (event) => {
  const bar = event.target.querySelector && event.target.querySelector("progress[data-upload-progress]");
  if (bar && !event.detail.successful) bar.hidden = true;
});
