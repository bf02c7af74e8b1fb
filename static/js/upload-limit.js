// Checks a chosen archive against the server's upload limit (data-max-bytes
// on the file input) before anything is sent, so a person reads why instead
// of waiting for a 413 or a reset connection. A file, not inline code: the
// CSP allows no inline JS. The server enforces the limit regardless.
(() => {
  const FILE_INPUT = "input[type=file][data-max-bytes]";

  // As Django's filesizeformat writes it (1024-based, one decimal).
  function size(bytes) {
    const units = ["KB", "MB", "GB", "TB"];
    if (bytes < 1024) return `${bytes}\u00a0bytes`;
    let value = bytes / 1024;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${value.toFixed(1)}\u00a0${units[unit]}`;
  }

  function check(input) {
    const limit = Number(input.dataset.maxBytes);
    const file = input.files && input.files[0];
    const message =
      file && limit && file.size > limit
        ? `${file.name} is ${size(file.size)}: larger than the upload limit of ${input.dataset.maxText}. Nothing was sent.`
        : "";
    // Our own message rather than setCustomValidity: the browser's bubble
    // would repeat it over the page.
    if (message) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
    const box = input.form && input.form.querySelector("[data-upload-size-error]");
    if (box) {
      box.textContent = message;
      box.hidden = !message;
    }
    return !message;
  }

  document.addEventListener("change", (event) => {
    if (event.target.matches && event.target.matches(FILE_INPUT)) check(event.target);
  });
  // Capture phase: before htmx's own submit handler sends the form.
  document.addEventListener(
    "submit",
    (event) => {
      const input = event.target.querySelector && event.target.querySelector(FILE_INPUT);
      if (input && !check(input)) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    },
    true,
  );
  // A file chosen before this (deferred) script ran fired its change event
  // unheard: check what is already chosen.
  for (const input of document.querySelectorAll(FILE_INPUT)) {
    if (input.files && input.files.length) check(input);
  }
})();
