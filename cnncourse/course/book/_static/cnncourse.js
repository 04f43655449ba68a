// The theme's ".ipynb" button opens the notebook in a new tab, which shows its JSON:
// make it a download instead, with the notebook's own file name.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("a.btn-download-source-button").forEach((link) => {
    link.removeAttribute("target");
    link.setAttribute("download", link.getAttribute("href").split("/").pop());
  });
});
