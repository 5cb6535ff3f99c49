// The pages (talk page, kiosk, iframe embed) take the element's options from their URL:
// ?server=wss://...&token=...&mode=push-to-talk&lang=zh&language=zh&persona=museum_guide&voice=...&instructions=...
// &kiosk&idle-reset=90&autostart. A kiosk operator pins a persona by pinning the URL.

const OPTIONS = ["server", "token", "mode", "lang", "language", "persona", "voice", "instructions", "idle-reset"];
const FLAGS = ["kiosk", "settings", "autostart"];

const params = new URLSearchParams(location.search);
const element = document.querySelector("tingshuo-assistant");
for (const name of OPTIONS) if (params.has(name)) element.setAttribute(name, params.get(name));
for (const name of FLAGS) {
  if (!params.has(name)) continue;
  if (params.get(name) === "0" || params.get(name) === "false") element.removeAttribute(name);
  else element.setAttribute(name, "");
}
document.documentElement.lang = params.get("lang") === "zh" ? "zh-CN" : document.documentElement.lang;
