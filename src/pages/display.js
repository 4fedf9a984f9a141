// The hall display (rule Q6, docs/branch-api.md "Pages"): follows
// /api/v1/stream, lists the last calls with the newest highlighted, shows
// the waiting counts, and announces every call by voice, twice, by playing
// clips from /voices/ in order. Nothing personal is ever shown (rule Q10):
// the stream carries none.
"use strict";
(function () {
  const MAX_CALLS = 10;
  const params = new URLSearchParams(location.search);
  let languages = null; // from ?lang=zh,en or the branch configuration
  let voices = true;
  let services = [];    // from the state event
  let counters = {};    // id -> {label_zh, label_en}
  let waiting = {};     // service id -> count
  let calls = [];       // [{seq, number, counter}] newest first
  let handled = null;   // the highest seq handled: later ones only
  let source = null;

  // Tests read what was queued (and played) without a sound card.
  window.kioskVoiceLog = [];
  window.kioskVoicePlayed = []; // "zh/please:ended" (or ":error")
  window.kioskDisplay = { calls: () => calls.slice(), handled: () => handled };

  const el = (id) => document.getElementById(id);

  function tick() {
    const d = new Date();
    const p = (n) => String(n).padStart(2, "0");
    el("clock").textContent = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  setInterval(tick, 1000);
  tick();

  function counterLabel(id, lang) {
    const c = counters[id];
    if (!c) return lang === "zh" ? `${id}号窗口` : `Counter ${id}`;
    return lang === "zh" ? c.label_zh : c.label_en;
  }

  function render() {
    const list = el("calls");
    list.textContent = "";
    calls.forEach((c, i) => {
      const li = document.createElement("li");
      li.dataset.seq = c.seq;
      li.dataset.number = c.number;
      li.dataset.counter = c.counter || "";
      if (i === 0) li.className = "newest";
      const n = document.createElement("span");
      n.className = "number";
      n.textContent = c.number;
      const a = document.createElement("span");
      a.className = "arrow";
      a.textContent = "→";
      const k = document.createElement("span");
      k.className = "counter";
      k.innerHTML = "";
      k.append(counterLabel(c.counter, "zh"));
      const en = document.createElement("span");
      en.className = "en";
      en.textContent = counterLabel(c.counter, "en");
      k.append(en);
      li.append(n, a, k);
      list.append(li);
    });
    const w = el("waiting");
    w.textContent = "";
    services.forEach((s) => {
      const li = document.createElement("li");
      li.dataset.service = s.id;
      const name = document.createElement("span");
      name.append(`${s.letter} ${s.name_zh}`);
      const en = document.createElement("span");
      en.className = "en";
      en.textContent = s.name_en;
      name.append(en);
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = String(waiting[s.id] || 0);
      li.append(name, count);
      w.append(li);
    });
  }

  // Rule Q6: the clips of one announcement, in one language:
  // "请" A 0 0 1 "号到" 3 "号窗口办理" / "Number" A 0 0 1 "please go to counter" 3.
  function spell(lang, text) {
    return Array.from(String(text)).flatMap((ch) => {
      if (/[0-9]/.test(ch)) return [`${lang}/digit_${ch}`];
      if (/[A-Za-z]/.test(ch)) return [`${lang}/letter_${ch.toUpperCase()}`];
      return [];
    });
  }
  function clipsFor(lang, number, counter) {
    const clips = [`${lang}/please`, ...spell(lang, number), `${lang}/number_to`, ...spell(lang, counter)];
    if (lang === "zh") clips.push("zh/counter_end");
    return clips;
  }

  // One player: announcements queue up and play one clip after another.
  const queue = [];
  let playing = false;
  function announce(number, counter) {
    const once = languages.flatMap((lang) => clipsFor(lang, number, counter));
    const clips = once.concat(once); // twice (rule Q6)
    window.kioskVoiceLog.push(...clips);
    document.body.dataset.voiceLog = window.kioskVoiceLog.join(" ");
    if (!voices) return;
    queue.push(...clips);
    if (!playing) playNext();
  }
  function playNext() {
    const clip = queue.shift();
    if (!clip) { playing = false; return; }
    playing = true;
    const audio = new Audio(`/voices/${clip}.wav`);
    let done = false;
    const next = (how) => {
      if (done) return;
      done = true;
      window.kioskVoicePlayed.push(`${clip}:${how}`);
      playNext();
    };
    audio.addEventListener("ended", () => next("ended"));
    audio.addEventListener("error", () => next("error"));
    // A missing clip or a refused autoplay must not stop the queue.
    audio.play().catch(() => next("error"));
  }

  function onState(state) {
    el("branch").textContent = state.branch_name;
    services = state.services;
    counters = {};
    state.counters.forEach((c) => { counters[c.id] = c; });
    waiting = {};
    services.forEach((s) => { waiting[s.id] = s.waiting; });
    if (handled === null) {
      // First connection: the day's last calls, not announced again.
      calls = state.recent_calls.slice(0, MAX_CALLS).map((e) => ({ seq: e.seq, number: e.number, counter: e.counter }));
      handled = state.last_seq;
    }
    render();
  }

  function onEvent(e) {
    // A replay after a reconnect may repeat what was handled: drop it.
    if (handled !== null && e.seq <= handled) return;
    handled = e.seq;
    waiting = Object.assign({}, waiting, e.waiting);
    if (e.kind === "called" || e.kind === "recalled") {
      calls.unshift({ seq: e.seq, number: e.number, counter: e.counter });
      calls = calls.slice(0, MAX_CALLS);
      render();
      announce(e.number, e.counter || "");
    } else {
      render();
    }
  }

  function setLink(state, text) {
    const l = el("link");
    l.dataset.state = state;
    l.textContent = text;
    l.hidden = state === "open";
  }

  function connect() {
    // EventSource resumes by itself with Last-Event-ID; after it gives up
    // (a restart answering with an error), a new one resumes with ?since=.
    const url = handled === null ? "/api/v1/stream" : `/api/v1/stream?since=${handled}`;
    source = new EventSource(url);
    source.addEventListener("open", () => setLink("open", ""));
    source.addEventListener("state", (m) => onState(JSON.parse(m.data)));
    ["issued", "called", "recalled", "skipped", "reactivated", "transferred", "served"].forEach((kind) => {
      source.addEventListener(kind, (m) => onEvent(JSON.parse(m.data)));
    });
    source.addEventListener("error", () => {
      setLink("reconnecting", "重新连接中… Reconnecting…");
      if (source.readyState === EventSource.CLOSED) {
        source = null;
        setTimeout(connect, 2000);
      }
    });
  }

  async function start() {
    if (params.get("lang")) {
      languages = params.get("lang").split(",").filter((l) => l === "zh" || l === "en");
    }
    try {
      const r = await fetch("/pages/display-config.json");
      const c = await r.json();
      if (!languages) languages = c.languages;
      voices = c.voices;
    } catch (_) { /* defaults below */ }
    if (!languages || languages.length === 0) languages = ["zh"];
    document.body.dataset.languages = languages.join(",");
    connect();
  }
  start();
})();
