/*!
 * rag chat widget: cited answers from your documents, in a corner of any page.
 *
 * Embed with one tag (no framework, no keys, nothing else on the page):
 *   <script src="https://YOUR-RAG-HOST/widget.js" defer></script>
 * The service must list the page's origin in RAG_CORS_ORIGINS.
 *
 * Optional attributes on that <script> tag:
 *   data-title        heading of the chat panel and name of the launcher
 *                     (default "Ask the documents")
 *   data-placeholder  placeholder of the question box (default "Ask a question…")
 *   data-accent       accent colour, any CSS colour (default #1d4ed8); text drawn on it
 *                     is black or white, whichever contrasts more
 *   data-position     "bottom-right" (default) or "bottom-left"
 *   data-open         "true" opens the panel when the page loads
 *   data-api          base URL of the service (default: the folder this script came from)
 *   data-max-wait     longest wait, in seconds, for a busy, starting or rate-limited
 *                     service before the question is given up (default 15, MAX_WAIT_MS;
 *                     0 never retries); read each time a question is asked
 *
 * A busy service is waited for: on 503 with Retry-After (a busy or starting service) or
 * on 429 (rate limited) the question is asked again by itself, never sooner than the
 * Retry-After asks and with a random extra wait on top, for at most data-max-wait seconds
 * from the first refusal. Meanwhile the conversation shows what is happening (busy,
 * starting or rate limited, from the error code of the service), the status is
 * announced, and a "Stop waiting" button cancels. Only when the wait is spent, or the
 * service asks for more than is left of it, does an error say what happened.
 *
 * It adds one <rag-chat> element with an open shadow root: page styles don't reach in,
 * its styles don't leak out, and the only global it defines is that custom element.
 * Every text from the service or the reader is set with textContent, never as HTML.
 */
(() => {
  "use strict";

  const TAG = "rag-chat";
  const script =
    document.currentScript || document.querySelector('script[src$="widget.js"]');
  const SCRIPT_SRC = (script && script.src) || location.href;
  const DEFAULT_ACCENT = "#1d4ed8";
  const MAX_HISTORY = 40;
  const TIMEOUT_MS = 90000;
  /** Longest a question waits for a busy, starting or rate-limited service, from its first
   * refusal to its last attempt (data-max-wait overrides it, in seconds). */
  const MAX_WAIT_MS = 15000;
  /** Ceiling of data-max-wait. */
  const MAX_WAIT_LIMIT_MS = 600000;
  /** Jitter added on top of each Retry-After (never taken off it): a random share of up to
   * half of it, and at least up to this many milliseconds, so that widgets refused at the
   * same moment do not all come back at the same moment. */
  const JITTER_MIN_MS = 250;
  const JITTER_SHARE = 0.5;
  /** The wait assumed when a refusal's Retry-After cannot be read (a service on another
   * origin that does not expose the header), by kind of refusal. */
  const FALLBACK_RETRY_MS = { busy: 1000, starting: 5000, limited: 5000, unavailable: 5000 };

  const STYLES = `
:host{all:initial!important;display:block!important;position:static!important}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
.wrap{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:#1b1f24;-webkit-font-smoothing:antialiased;text-align:left}
.sr{position:absolute!important;width:1px;height:1px;padding:0;margin:-1px;overflow:hidden;
clip:rect(0 0 0 0);white-space:nowrap;border:0}
button,input{font:inherit;color:inherit;margin:0}
.launcher{position:fixed;bottom:20px;right:20px;z-index:2147483000;width:58px;height:58px;
border-radius:50%;border:2px solid var(--on-accent);background:var(--accent);color:var(--on-accent);
cursor:pointer;display:grid;place-items:center;padding:0;
box-shadow:0 4px 14px rgba(0,0,0,.28),0 0 0 1px rgba(0,0,0,.12)}
.launcher:hover{filter:brightness(1.08)}
.launcher:focus-visible{outline:3px solid #1b1f24;outline-offset:3px;box-shadow:0 0 0 3px #fff}
.launcher svg{width:28px;height:28px;fill:none;stroke:currentColor;stroke-width:2;
stroke-linecap:round;stroke-linejoin:round}
.left .launcher{right:auto;left:20px}
.panel{position:fixed;bottom:90px;right:20px;z-index:2147483000;width:390px;
height:min(620px,calc(100vh - 110px));display:flex;flex-direction:column;background:#fff;
border:1px solid #c9ced6;border-radius:14px;overflow:hidden;
box-shadow:0 12px 40px rgba(16,24,40,.28)}
.left .panel{right:auto;left:20px}
.head{display:flex;align-items:center;gap:8px;padding:12px 10px 12px 16px;
background:var(--accent);color:var(--on-accent)}
.head h2{margin:0;flex:1;font-size:16px;font-weight:650;line-height:1.3}
.close{border:0;background:transparent;color:inherit;width:36px;height:36px;border-radius:8px;
cursor:pointer;font-size:24px;line-height:1;display:grid;place-items:center}
.close:hover{background:rgba(127,127,127,.25)}
.close:focus-visible{outline:3px solid var(--on-accent);outline-offset:-3px}
.log{position:relative;flex:1;overflow-y:auto;padding:14px;background:#f5f6f8;display:flex;flex-direction:column;
gap:12px;overscroll-behavior:contain}
.log:focus-visible{outline:3px solid #1b1f24;outline-offset:-3px}
.intro{margin:0;color:#3f4752;font-size:14px}
.q{align-self:flex-end;max-width:85%;margin:0;padding:8px 12px;border-radius:14px 14px 4px 14px;
background:var(--accent);color:var(--on-accent);overflow-wrap:anywhere;white-space:pre-wrap}
.card{align-self:stretch;margin:0;padding:12px 14px;background:#fff;border:1px solid #d5d9e0;
border-radius:4px 14px 14px 14px;overflow-wrap:anywhere}
.label{margin:0 0 2px;font-size:12px;font-weight:600;letter-spacing:.04em;text-transform:uppercase;
color:#4b5563}
.answer{margin:0 0 8px;font-size:21px;font-weight:700;line-height:1.3;color:#111827}
blockquote{margin:0 0 10px;padding:2px 0 2px 10px;border-left:3px solid var(--accent);
color:#27303b;font-size:14px;white-space:pre-wrap}
mark{background:#ffe066;color:#111827;border-radius:2px;padding:0 1px;font-weight:600}
.src{margin:0 0 4px;font-size:13px;color:#3f4752}
.src .t{font-weight:600;color:#1b1f24}
a{color:#0b4fa8;text-underline-offset:2px}
a:hover{color:#083a7a}
a:focus-visible{outline:3px solid #1b1f24;outline-offset:2px;border-radius:2px}
.link{font-size:14px;font-weight:600}
.none{margin:0 0 6px;font-size:17px;font-weight:700;color:#111827}
.sub{margin:0 0 6px;font-size:14px;color:#3f4752}
ul{margin:0;padding:0;list-style:none;display:grid;gap:8px}
li{padding:8px 10px;border:1px solid #e1e4e9;border-radius:8px;background:#fafbfc}
.snip{margin:4px 0 0;font-size:13px;color:#3f4752}
.err{border-color:#e8a39c;background:#fdf1f0;color:#7d1a14}
.err p{margin:0}
.err .detail{margin-top:4px;font-size:13px}
.wait{display:flex;align-items:center;gap:10px;color:#3f4752;font-size:14px}
.dots{display:inline-flex;gap:4px}
.dots i{width:7px;height:7px;border-radius:50%;background:#6b7280;animation:b 1s infinite ease-in-out}
.dots i:nth-child(2){animation-delay:.15s}.dots i:nth-child(3){animation-delay:.3s}
@keyframes b{0%,80%,100%{opacity:.25;transform:translateY(0)}40%{opacity:1;transform:translateY(-3px)}}
form{display:flex;gap:8px;padding:10px;border-top:1px solid #d5d9e0;background:#fff}
input{flex:1;min-width:0;padding:9px 12px;border:1px solid #6b7280;border-radius:10px;background:#fff;
color:#1b1f24}
input::placeholder{color:#5f6773}
input:focus-visible{outline:3px solid var(--focus);outline-offset:1px}
.ask{padding:9px 16px;border:0;border-radius:10px;background:var(--accent);color:var(--on-accent);
font-weight:650;cursor:pointer}
.ask:focus-visible{outline:3px solid #1b1f24;outline-offset:2px}
.ask[aria-disabled=true]{opacity:.75;cursor:progress}
.wait.held{flex-wrap:wrap}
.wait .msg{flex:1;min-width:12em;margin:0}
.stop{padding:5px 12px;border:1px solid #6b7280;border-radius:8px;background:#fff;color:#1b1f24;
font-size:14px;font-weight:600;cursor:pointer}
.stop:hover{background:#eef0f3}
.stop:focus-visible{outline:3px solid #1b1f24;outline-offset:2px}
.note{border-color:#c9ced6;background:#fff;color:#27303b}
.note p{margin:0}
@media (max-width:480px){.panel,.left .panel{left:8px;right:8px;width:auto;bottom:86px;
height:calc(100vh - 100px)}}
@media (prefers-reduced-motion:reduce){.dots i{animation:none;opacity:.7}}
`;

  // ---- colours -------------------------------------------------------------------------

  function rgbOf(colour) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 1;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    if (!g) return null;
    g.fillStyle = "#fff";
    g.fillRect(0, 0, 1, 1); // translucent colours are judged over white
    g.fillStyle = colour;
    g.fillRect(0, 0, 1, 1);
    const d = g.getImageData(0, 0, 1, 1).data;
    return [d[0], d[1], d[2]];
  }

  function luminance([r, g, b]) {
    const lin = (v) => {
      const c = v / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    };
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  }

  const contrast = (a, b) => (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);

  /** The accent and the text colour drawn on it (black or white, whichever reads better). */
  function palette(requested) {
    const accent =
      requested && window.CSS && window.CSS.supports("color", requested) ? requested : DEFAULT_ACCENT;
    const rgb = rgbOf(accent) || [29, 78, 216];
    const l = luminance(rgb);
    const onAccent = contrast(l, 1) >= contrast(l, 0) ? "#ffffff" : "#000000";
    // The focus ring of the question box is the accent when it shows on white, else dark.
    const focus = contrast(l, 1) >= 3 ? accent : "#1b1f24";
    return { accent, onAccent, focus };
  }

  // ---- DOM helpers (text only ever goes in as text nodes) ------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) {
      if (c === null || c === undefined || c === false) continue;
      el.append(typeof c === "string" ? document.createTextNode(c) : c);
    }
    return el;
  }

  function svg(paths) {
    const NS = "http://www.w3.org/2000/svg";
    const el = document.createElementNS(NS, "svg");
    el.setAttribute("viewBox", "0 0 24 24");
    el.setAttribute("aria-hidden", "true");
    el.setAttribute("focusable", "false");
    for (const d of paths) {
      const p = document.createElementNS(NS, "path");
      p.setAttribute("d", d);
      el.append(p);
    }
    return el;
  }

  const ICON_CHAT = ["M21 12a8 8 0 0 1-11.6 7.1L4 21l1.9-5.4A8 8 0 1 1 21 12z", "M8.5 12h.01M12 12h.01M15.5 12h.01"];
  const ICON_CLOSE = ["M6 9l6 6 6-6"];

  function formatDate(iso) {
    if (!iso) return null;
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
    if (!m) return iso;
    const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3]));
    try {
      return new Intl.DateTimeFormat(undefined, { dateStyle: "long", timeZone: "UTC" }).format(d);
    } catch {
      return iso;
    }
  }

  function snippet(text, max) {
    const t = String(text || "").replace(/\s+/g, " ").trim();
    if (t.length <= max) return t;
    const cut = t.lastIndexOf(" ", max);
    return t.slice(0, cut > max * 0.6 ? cut : max) + "…";
  }

  const isObj = (v) => v !== null && typeof v === "object";

  /** Milliseconds a Retry-After header asks for (seconds or an HTTP date), or null. */
  function retryAfterMs(value) {
    const v = String(value || "").trim();
    if (!v) return null;
    if (/^\d+$/.test(v)) return Math.min(Number(v), 86400) * 1000;
    const at = Date.parse(v);
    return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
  }

  /** Which kind of refusal an error is, from the code the service puts in its body:
   * one worth waiting for ("busy", "starting", "limited", "unavailable") or null. */
  function refusalKind(status, code, retryAfter) {
    if (status === 429) return "limited";
    if (status !== 503) return null;
    if (code === "overloaded") return "busy";
    if (code === "not_ready") return "starting";
    return retryAfter !== null ? "unavailable" : null; // a 503 that names no wait: an error
  }

  const seconds = (ms) => Math.max(1, Math.ceil(ms / 1000));

  /** What the conversation says while a refused question waits for its next attempt. */
  function waitingText(kind, ms) {
    const when = ms > 0 ? `asking again in ${seconds(ms)} s…` : "asking again…";
    switch (kind) {
      case "busy":
        return `The service is busy answering other questions. Your question is queued: ${when}`;
      case "starting":
        return `The service is starting: its documents are not loaded yet. Your question is queued: ${when}`;
      case "limited":
        return `Too many questions in a short time: the service is rate limited. Your question is queued: ${when}`;
      default:
        return `The service is unavailable for a moment. Your question is queued: ${when}`;
    }
  }

  // ---- the element ---------------------------------------------------------------------

  class RagChat extends HTMLElement {
    #root;
    #ui = null;
    #api = null;
    #busy = false;
    #history = [];
    #storeKey = "";

    constructor() {
      super();
      this.#root = this.attachShadow({ mode: "open" });
    }

    connectedCallback() {
      if (this.#ui) return;
      const ds = this.dataset;
      try {
        this.#api = new URL(ds.api || ".", SCRIPT_SRC);
      } catch {
        this.#api = new URL(".", SCRIPT_SRC);
      }
      if (!this.#api.pathname.endsWith("/")) this.#api.pathname += "/";
      this.#storeKey = "rag-chat:v1:" + this.#api.href;
      this.#build(ds);
      this.#restore();
      if (ds.open === "true") this.open({ focus: false });
    }

    #build(ds) {
      const title = (ds.title || "").trim() || "Ask the documents";
      const colours = palette((ds.accent || "").trim());
      const wrap = h("div", { class: "wrap" + (ds.position === "bottom-left" ? " left" : "") });
      wrap.style.setProperty("--accent", colours.accent);
      wrap.style.setProperty("--on-accent", colours.onAccent);
      wrap.style.setProperty("--focus", colours.focus);

      const launcher = h("button", {
        type: "button",
        class: "launcher",
        "aria-label": title,
        "aria-expanded": "false",
        "aria-controls": "panel",
      });
      launcher.append(svg(ICON_CHAT));

      const heading = h("h2", { id: "title" }, title);
      const close = h("button", { type: "button", class: "close", "aria-label": "Close chat" }, "×");
      const intro = h(
        "p",
        { class: "intro" },
        "Ask a question about the documents. Answers are quoted word for word from them, " +
          "with the source; when the documents don't say, you'll be told so."
      );
      const log = h("div", { class: "log", role: "region", "aria-label": "Conversation", tabindex: "0" }, intro);
      const live = h("div", { class: "sr", role: "status", "aria-live": "polite", "aria-atomic": "true" });
      const input = h("input", {
        type: "text",
        id: "q",
        name: "question",
        autocomplete: "off",
        enterkeyhint: "send",
        maxlength: "1000",
        placeholder: (ds.placeholder || "").trim() || "Ask a question…",
      });
      const ask = h("button", { type: "submit", class: "ask" }, "Ask");
      const form = h("form", { novalidate: true }, h("label", { for: "q", class: "sr" }, "Your question"), input, ask);
      const panel = h(
        "section",
        { class: "panel", id: "panel", role: "dialog", "aria-labelledby": "title", hidden: true },
        h("div", { class: "head" }, heading, close),
        log,
        form
      );
      wrap.append(launcher, panel, live);
      this.#root.append(h("style", {}, STYLES), wrap);
      this.#ui = { launcher, panel, log, live, input, ask, form, close };

      launcher.addEventListener("click", () => (this.isOpen ? this.close() : this.open()));
      close.addEventListener("click", () => this.close());
      form.addEventListener("submit", (e) => {
        e.preventDefault();
        this.#submit();
      });
      wrap.addEventListener("keydown", (e) => {
        if (e.key === "Escape" && this.isOpen) {
          e.preventDefault();
          e.stopPropagation();
          this.close();
        }
      });
    }

    get isOpen() {
      return !!this.#ui && !this.#ui.panel.hidden;
    }

    open({ focus = true } = {}) {
      const ui = this.#ui;
      if (!ui) return;
      ui.panel.hidden = false;
      ui.launcher.setAttribute("aria-expanded", "true");
      ui.launcher.replaceChildren(svg(ICON_CLOSE));
      this.#scrollDown();
      if (focus) ui.input.focus();
    }

    close() {
      const ui = this.#ui;
      if (!ui) return;
      ui.panel.hidden = true;
      ui.launcher.setAttribute("aria-expanded", "false");
      ui.launcher.replaceChildren(svg(ICON_CHAT));
      ui.launcher.focus();
    }

    #announce(text) {
      // Cleared first so the same words are announced again when repeated.
      this.#ui.live.textContent = "";
      setTimeout(() => (this.#ui.live.textContent = text), 50);
    }

    #scrollDown() {
      const log = this.#ui.log;
      log.scrollTop = log.scrollHeight;
    }

    #viewUrl(documentId, start, end) {
      const path = String(documentId).split("/").map(encodeURIComponent).join("/");
      const url = new URL("v1/documents/" + path + "/view", this.#api);
      url.searchParams.set("start", String(start));
      url.searchParams.set("end", String(end));
      return url.href;
    }

    #viewLink(documentId, start, end, children, cls) {
      const a = h("a", {
        href: this.#viewUrl(documentId, start, end),
        target: "_blank",
        rel: "noopener noreferrer",
        class: cls || null,
      });
      a.append(...children, h("span", { class: "sr" }, " (opens in a new tab)"));
      return a;
    }

    async #submit() {
      const ui = this.#ui;
      const question = ui.input.value.trim();
      if (!question) {
        ui.input.focus();
        return;
      }
      if (this.#busy) return;
      this.#busy = true;
      ui.ask.setAttribute("aria-disabled", "true");
      ui.input.value = "";
      const bubble = h("p", { class: "q" }, h("span", { class: "sr" }, "You asked: "), question);
      ui.log.append(bubble);
      const wait = this.#waitCard();
      ui.log.append(wait.card);
      ui.log.setAttribute("aria-busy", "true");
      this.#scrollDown();
      this.#announce("Searching the documents…");

      const outcome = await this.#ask(question, wait);

      const focusWasInCard = wait.card.contains(this.#root.activeElement);
      wait.card.remove();
      ui.log.removeAttribute("aria-busy");
      const entry = { q: question, ...outcome };
      const [card, spoken] = this.#render(entry);
      ui.log.append(card);
      // Show the question and the top of the reply, even when the reply is long.
      ui.log.scrollTop = Math.max(0, bubble.offsetTop - 12);
      this.#announce(spoken);
      this.#remember(entry);
      // After a failure the question goes back in the box: Enter asks it again.
      if (outcome.error && !ui.input.value) ui.input.value = question;
      if (focusWasInCard) ui.input.focus(); // the "Stop waiting" button is gone
      this.#busy = false;
      ui.ask.removeAttribute("aria-disabled");
    }

    /** The card shown while a question is on its way: what is happening, and a button to
     * stop waiting once the service has refused it for now. */
    #waitCard() {
      const msg = h("span", { class: "msg" }, "Searching the documents…");
      const stop = h("button", { type: "button", class: "stop", hidden: true }, "Stop waiting");
      const card = h(
        "div",
        { class: "card wait" },
        h("span", { class: "dots", "aria-hidden": "true" }, h("i"), h("i"), h("i")),
        msg,
        stop
      );
      return { card, msg, stop };
    }

    /** Longest wait for a refusing service, in ms: data-max-wait (seconds) or MAX_WAIT_MS. */
    #maxWaitMs() {
      const raw = (this.dataset.maxWait || "").trim();
      const s = raw === "" ? NaN : Number(raw);
      return Number.isFinite(s) && s >= 0 ? Math.min(s * 1000, MAX_WAIT_LIMIT_MS) : MAX_WAIT_MS;
    }

    /**
     * Ask, and ask again while the service refuses for now (busy, starting, rate limited):
     * each time no sooner than its Retry-After asks, plus jitter, and never past the
     * longest wait counted from the first refusal. Resolves to the outcome to show.
     */
    async #ask(question, wait) {
      const cancel = new AbortController();
      const onStop = () => cancel.abort();
      wait.stop.addEventListener("click", onStop);
      const maxWait = this.#maxWaitMs();
      let first = null; // when the first refusal came
      let kind = null; // the kind of refusal being waited out
      const stopped = () => ({ error: "cancelled", kind, waited: Date.now() - (first || Date.now()) });
      try {
        for (;;) {
          const got = await this.#fetchAnswer(question, cancel.signal);
          if (got.error === "cancelled") return stopped();
          if (!got.refusal) return got;
          const now = Date.now();
          if (first === null) first = now;
          const asked = got.retryAfter ?? FALLBACK_RETRY_MS[got.refusal];
          const left = first + maxWait - now;
          if (asked > left) {
            // Waiting as asked would pass the bound: say what happened now.
            const { refusal, message, status } = got;
            return { error: refusal, waited: now - first, retryAfter: asked, message, status };
          }
          const jitter = Math.random() * Math.max(JITTER_MIN_MS, asked * JITTER_SHARE);
          const delay = Math.min(asked + jitter, left); // never less than asked
          if (got.refusal !== kind) {
            kind = got.refusal;
            this.#announce(waitingText(kind, delay) + " To cancel, use the Stop waiting button.");
          }
          wait.card.classList.add("held");
          wait.stop.hidden = false;
          if (!(await this.#countdown(wait.msg, kind, delay, cancel.signal))) return stopped();
          wait.msg.textContent = waitingText(kind, 0);
        }
      } finally {
        wait.stop.removeEventListener("click", onStop);
      }
    }

    /** Show the time left until the next attempt; true once ``ms`` passed, false if stopped. */
    #countdown(msg, kind, ms, signal) {
      return new Promise((resolve) => {
        if (signal.aborted) {
          resolve(false);
          return;
        }
        const end = Date.now() + ms;
        const show = () => (msg.textContent = waitingText(kind, end - Date.now()));
        show();
        const every = setInterval(show, 1000);
        const finish = (elapsed) => {
          clearInterval(every);
          clearTimeout(timer);
          signal.removeEventListener("abort", stop);
          resolve(elapsed);
        };
        const stop = () => finish(false);
        const timer = setTimeout(() => finish(true), ms);
        signal.addEventListener("abort", stop, { once: true });
      });
    }

    /** One attempt: an answer, a refusal worth waiting out, or an error. */
    async #fetchAnswer(question, cancelled) {
      const ctrl = new AbortController();
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        ctrl.abort();
      }, TIMEOUT_MS);
      const stop = () => ctrl.abort();
      cancelled.addEventListener("abort", stop, { once: true });
      let res;
      try {
        res = await fetch(new URL("v1/ask", this.#api), {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          headers: { "Content-Type": "application/json", Accept: "application/json" },
          body: JSON.stringify({ question }),
          signal: ctrl.signal,
        });
      } catch {
        if (cancelled.aborted) return { error: "cancelled" };
        return { error: timedOut ? "timeout" : "network" };
      } finally {
        clearTimeout(timer);
        cancelled.removeEventListener("abort", stop);
      }
      let body = null;
      try {
        body = await res.json();
      } catch {
        body = null;
      }
      if (res.ok && isObj(body) && typeof body.abstained === "boolean") {
        return { data: this.#slim(body) };
      }
      const err = isObj(body) && isObj(body.error) ? body.error : {};
      const message = typeof err.message === "string" ? err.message : "";
      const code = typeof err.code === "string" ? err.code : "";
      // Readable from another origin because the service lists it in
      // Access-Control-Expose-Headers; else FALLBACK_RETRY_MS.
      const retryAfter = retryAfterMs(res.headers.get("Retry-After"));
      const refusal = refusalKind(res.status, code, retryAfter);
      if (refusal) return { refusal, retryAfter, message, status: res.status };
      return { error: "http", status: res.status, message };
    }

    /** Only what the widget shows, so the history stays small in sessionStorage. */
    #slim(body) {
      const a = isObj(body.answer) ? body.answer : null;
      const passages = Array.isArray(body.passages) ? body.passages : [];
      return {
        answer: a && {
          text: String(a.text),
          document_id: String(a.document_id),
          document_title: String(a.document_title || a.document_id),
          document_date: a.document_date ? String(a.document_date) : null,
          start: a.start | 0,
          end: a.end | 0,
          sentence: isObj(a.sentence)
            ? { text: String(a.sentence.text), start: a.sentence.start | 0, end: a.sentence.end | 0 }
            : null,
        },
        passages: passages.slice(0, 3).map((p) => ({
          document_id: String(p.document_id),
          document_title: String(p.document_title || p.document_id),
          text: snippet(p.text, 220),
          start: p.start | 0,
          end: p.end | 0,
        })),
      };
    }

    /** A card for one outcome, and the sentence a screen reader announces for it. */
    #render(entry) {
      if (entry.error) return this.#renderError(entry);
      const { answer, passages } = entry.data;
      if (answer) return this.#renderAnswer(answer);
      return this.#renderAbstention(passages);
    }

    #renderAnswer(a) {
      const card = h("article", { class: "card", "aria-label": "Answer" });
      card.append(h("p", { class: "label" }, "Answer"), h("p", { class: "answer" }, a.text));
      if (a.sentence && a.sentence.text) {
        const s = a.sentence.text;
        let from = a.start - a.sentence.start;
        let to = a.end - a.sentence.start;
        if (!(from >= 0 && to <= s.length && s.slice(from, to) === a.text)) {
          from = s.indexOf(a.text);
          to = from + a.text.length;
        }
        const quote = h("blockquote", {});
        if (from >= 0 && a.text) {
          quote.append(s.slice(0, from), h("mark", {}, s.slice(from, to)), s.slice(to));
        } else {
          quote.append(s);
        }
        card.append(quote);
      }
      const date = formatDate(a.document_date);
      const src = h("p", { class: "src" }, "From ", h("span", { class: "t" }, a.document_title));
      if (date) src.append(", ", h("time", { datetime: a.document_date }, date));
      card.append(src);
      card.append(
        h("p", { class: "src" }, this.#viewLink(a.document_id, a.start, a.end, ["Open the source, highlighted"], "link"))
      );
      const spoken = `Answer: ${a.text}. From ${a.document_title}${date ? ", " + date : ""}.`;
      return [card, spoken];
    }

    #renderAbstention(passages) {
      const card = h("article", { class: "card", "aria-label": "No answer" });
      card.append(h("p", { class: "none" }, "The documents don't answer this."));
      if (passages.length) {
        card.append(h("p", { class: "sub" }, "You may want to read:"));
        const list = h("ul", {});
        for (const p of passages) {
          list.append(
            h(
              "li",
              {},
              this.#viewLink(p.document_id, p.start, p.end, [p.document_title]),
              h("p", { class: "snip" }, p.text)
            )
          );
        }
        card.append(list);
      }
      const spoken =
        "The documents don't answer this." +
        (passages.length ? ` You may want to read ${passages.length} related passages.` : "");
      return [card, spoken];
    }

    #renderError(entry) {
      if (entry.error === "cancelled") {
        const text = "You stopped waiting, so the question was not answered. It is back in the box: press Enter to ask it again.";
        const card = h("div", { class: "card note", role: "group", "aria-label": "Stopped" }, h("p", {}, text));
        return [card, text];
      }
      let text;
      let detail = "";
      const waited = Math.round((entry.waited || 0) / 1000);
      const asked = seconds(entry.retryAfter || 0);
      if (entry.error === "network") {
        text = "The service is unreachable (network error). Check your connection, then try again.";
      } else if (entry.error === "timeout") {
        text = "The service took too long to answer. Please try again.";
      } else if (entry.error === "busy") {
        text =
          waited >= 1
            ? `The service stayed busy for ${waited} s, so your question was not answered. Please try again in a moment.`
            : `The service is busy answering other questions and asks to wait ${asked} s. Please try again in a moment.`;
      } else if (entry.error === "starting") {
        text =
          waited >= 1
            ? `The service is still starting after ${waited} s: its documents are not loaded yet. Please try again in a minute.`
            : "The service is starting: its documents are not loaded yet. Please try again in a minute.";
        detail = entry.message;
      } else if (entry.error === "limited") {
        text =
          "Too many questions in a short time: the service is rate limited" +
          (waited >= 1 ? ` (your question waited ${waited} s)` : "") +
          ` and asks to wait ${asked} s. Please try again then.`;
      } else if (entry.error === "unavailable") {
        text =
          waited >= 1
            ? `The service stayed unavailable for ${waited} s (error ${entry.status}). Please try again later.`
            : `The service is unavailable (error ${entry.status}) and asks to wait ${asked} s. Please try again later.`;
        detail = entry.message;
      } else if (entry.status === 429) {
        text = "Too many questions in a short time: the service is rate limited. Wait a moment, then try again.";
      } else if (entry.status === 503) {
        text = "The service was unavailable (error 503). Please try again in a moment.";
        detail = entry.message;
      } else if (entry.status >= 400 && entry.status < 500) {
        text = "The service could not accept this question: " + (entry.message || `error ${entry.status}`);
      } else {
        text = `The service failed to answer (error ${entry.status}). Please try again later.`;
      }
      const card = h("div", { class: "card err", role: "group", "aria-label": "Error" }, h("p", {}, text));
      if (detail) card.append(h("p", { class: "detail" }, detail));
      return [card, text];
    }

    // ---- the conversation, kept for the tab's session -----------------------------------

    #remember(entry) {
      this.#history.push(entry);
      this.#history = this.#history.slice(-MAX_HISTORY);
      try {
        sessionStorage.setItem(this.#storeKey, JSON.stringify(this.#history));
      } catch {
        /* storage full or disabled: the conversation stays in memory */
      }
    }

    #restore() {
      let saved = null;
      try {
        saved = JSON.parse(sessionStorage.getItem(this.#storeKey) || "null");
      } catch {
        saved = null;
      }
      if (!Array.isArray(saved)) return;
      for (const entry of saved) {
        if (!isObj(entry) || typeof entry.q !== "string") continue;
        if (!entry.error && !(isObj(entry.data) && Array.isArray(entry.data.passages))) continue;
        try {
          const [card] = this.#render(entry);
          this.#ui.log.append(h("p", { class: "q" }, h("span", { class: "sr" }, "You asked: "), entry.q), card);
          this.#history.push(entry);
        } catch {
          /* an entry from an older widget: skipped */
        }
      }
    }
  }

  if (!customElements.get(TAG)) customElements.define(TAG, RagChat);

  // One <rag-chat> per <script> tag, configured by the tag's data-* attributes.
  const el = document.createElement(TAG);
  if (script) {
    for (const [k, v] of Object.entries(script.dataset)) el.dataset[k] = v;
  }
  if (!el.dataset.api) el.dataset.api = new URL(".", SCRIPT_SRC).href;
  const mount = () => document.body.append(el);
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
