// The customer display at the till. Listens to /display/events (Server-Sent
// Events from loyalty-agent): "config" (loyalty.v1.DisplayConfig) first, then
// "state" (loyalty.v1.DisplayState) on every change, and renders one of four
// screens: idle, member, basket, thanks.
//
// Translations are i18n/<lang>.json. Every key is written out literally, as
// the quoted first argument of t or tp here or as a data-i18n attribute in
// index.html, so that the translation test can find each one. Numbers and money are formatted with
// Intl.NumberFormat for the language shown, in the programme's currency.
"use strict";

(() => {
  const PROMO_SECONDS = 8;
  const RECONNECT_MS = 3000;

  let config = null;         // the last DisplayConfig
  let state = { screen: "idle" };
  let messages = {};         // language -> translations
  let lang = "en";
  let screenTimer = null;    // back to idle
  let promoTimer = null;
  let promoIndex = 0;
  let source = null;

  const $ = (id) => document.getElementById(id);
  const body = document.body;

  // ---- translation and formatting

  function fill(text, vars) {
    return text.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  }
  function lookup(key) {
    const own = messages[lang] && messages[lang][key];
    if (own !== undefined) return own;
    const en = messages.en && messages.en[key];
    return en !== undefined ? en : key;
  }
  function t(key, vars = {}) {
    const m = lookup(key);
    return fill(typeof m === "string" ? m : m.other, vars);
  }
  // A plural message: {"one": ..., "few": ..., "other": ...} per CLDR.
  function tp(key, n, vars = {}) {
    const m = lookup(key);
    const all = { n: number(n), ...vars };
    if (typeof m === "string") return fill(m, all);
    const category = new Intl.PluralRules(lang).select(n);
    return fill(m[category] || m.other, all);
  }
  function number(n) {
    return new Intl.NumberFormat(lang).format(n);
  }
  function money(minor) {
    const units = (config && config.minor_units) || 100;
    const digits = Math.round(Math.log10(units));
    const amount = (minor || 0) / units;
    if (!config || !config.currency) return amount.toFixed(digits);
    return new Intl.NumberFormat(lang, {
      style: "currency", currency: config.currency,
      minimumFractionDigits: digits, maximumFractionDigits: digits,
    }).format(amount);
  }
  function pick(language) {
    const short = (language || "").toLowerCase().split(/[-_]/)[0];
    if (short && messages[short]) return short;
    return config && messages[config.language] ? config.language : "en";
  }

  function text(id, value) { $(id).textContent = value; }
  function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }
  function div(cls, value) {
    const el = document.createElement("div");
    el.className = cls;
    el.textContent = value;
    return el;
  }
  // A list row of [class, text] cells.
  function li(cls, ...cells) {
    const item = document.createElement("li");
    if (cls) item.className = cls;
    for (const [c, v] of cells) {
      const span = document.createElement("span");
      if (c) span.className = c;
      span.textContent = v;
      item.appendChild(span);
    }
    return item;
  }

  function applyStatic() {
    document.documentElement.lang = lang;
    body.dataset.lang = lang;
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    text("programme", (config && config.programme_name) || "");
  }

  function tierBadge(id, tier) {
    const el = $(id);
    el.textContent = tier || "";
    const tiers = (config && config.tiers) || [];
    const index = tiers.indexOf(tier);
    el.className = "badge" + (index >= 0 ? " tier-" + Math.min(index, 3) : "");
  }

  // ---- screens

  function renderIdle() {
    const promos = (config && config.promotions) || [];
    $("idle").classList.toggle("no-promo", promos.length === 0);
    if (promos.length > 0) {
      const p = promos[promoIndex % promos.length];
      text("promo-name", p.name || "");
      text("promo-reward", p.reward || "");
      text("promo-desc", p.description || "");
      text("promo-cond", p.conditions || "");
    }
    const dots = $("promo-dots");
    clear(dots);
    if (promos.length > 1) {
      promos.forEach((_, i) => {
        const d = document.createElement("span");
        if (i === promoIndex % promos.length) d.className = "on";
        dots.appendChild(d);
      });
    }
  }

  function nextTierWords(m) {
    const nt = m.next_tier;
    if (!nt || !nt.name) return { pct: 100, words: t("top_tier") };
    const visits = Number(m.qualifying_visits || 0);
    const spend = Number(m.qualifying_spend || 0);
    const vNeed = Number(nt.visits_needed || 0);
    const sNeed = Number(nt.spend_needed || 0);
    const vPct = vNeed > 0 ? visits / (visits + vNeed) : -1;
    const sPct = sNeed > 0 ? spend / (spend + sNeed) : -1;
    const pct = Number(nt.progress_pct || 0);
    if (vNeed > 0 && vPct >= sPct) {
      return { pct, words: tp("visits_to_tier", vNeed, { tier: nt.name }) };
    }
    if (sNeed > 0) return { pct, words: t("spend_to_tier", { amount: money(sNeed), tier: nt.name }) };
    return { pct, words: "" };
  }

  function greeting(m) {
    return m.display_name ? t("hello", { name: m.display_name }) : t("hello_anonymous");
  }

  function renderMember() {
    const m = state.member || {};
    text("m-greeting", greeting(m));
    tierBadge("m-tier", m.tier);
    text("m-balance", tp("points", Number(m.points_balance || 0)));
    const next = nextTierWords(m);
    $("m-bar").style.width = Math.max(0, Math.min(100, next.pct)) + "%";
    text("m-next", next.words);
    const list = $("m-offers");
    clear(list);
    const offers = state.offers || [];
    const shown = offers.slice(0, 3);
    for (const o of shown) {
      const item = document.createElement("li");
      item.appendChild(div("name", o.name || ""));
      if (o.reward) item.appendChild(div("reward", o.reward));
      // The conditions (and uses left) in head office's words.
      if (o.conditions) item.appendChild(div("cond", o.conditions));
      list.appendChild(item);
    }
    if (offers.length > shown.length) {
      list.appendChild(li("more", ["", tp("more_offers", offers.length - shown.length)]));
    }
    if (offers.length === 0) list.appendChild(li("none", ["", t("no_offers")]));
  }

  // Points of the basket by rule, in the order the customer reads them.
  function explanationRows(basket, offers) {
    const names = {};
    for (const o of offers) names[o.offer_id] = o.name;
    const sums = new Map();
    for (const e of basket.explanation || []) {
      const points = Number(e.points || 0);
      if (points === 0) continue;
      let label;
      if (e.rule === "base") label = t("rule_base");
      else if (e.rule === "tier") label = t("rule_tier", { tier: (state.member || {}).tier || "" });
      else if (e.rule === "category") label = t("rule_category");
      else if (e.rule === "offer") label = t("rule_offer", { name: names[e.offer_id] || e.offer_id || "" });
      else label = t("rule_other");
      sums.set(label, (sums.get(label) || 0) + points);
    }
    return [...sums.entries()];
  }

  function renderBasket() {
    const m = state.member || {};
    const b = state.basket || {};
    const earned = Number(b.points_earned || 0);
    const redeemed = Number(b.points_redeemed || 0);
    text("b-greeting", greeting(m));
    tierBadge("b-tier", m.tier);
    text("b-earned", tp("earned_now", earned));
    const rows = $("b-explain");
    clear(rows);
    for (const [label, points] of explanationRows(b, state.offers || [])) {
      rows.appendChild(li("", ["", label], ["v", "+" + number(points)]));
    }
    const after = Number(m.points_balance || 0) - redeemed + earned;
    text("b-after", t("balance_after", { points: tp("points", after) }));
    const discounts = $("b-discounts");
    clear(discounts);
    for (const d of b.discounts || []) {
      discounts.appendChild(li("", ["", d.name || d.offer_id || ""], ["v", "−" + money(Number(d.amount || 0))]));
    }
    if (redeemed > 0) {
      discounts.appendChild(li("", ["", tp("points_redeemed", redeemed)],
                               ["v", "−" + money(Number(b.redemption_value || 0))]));
    }
    if (discounts.childElementCount === 0) discounts.appendChild(li("none", ["", t("no_discounts")]));
    text("b-total", money(Number(b.total || 0)));
  }

  function renderThanks() {
    const m = state.member || {};
    const b = state.basket || {};
    text("t-thanks", m.display_name ? t("thanks", { name: m.display_name }) : t("thanks_anonymous"));
    text("t-earned", tp("you_earned", Number(b.points_earned || 0)));
    text("t-balance", tp("points", Number(m.points_balance || 0)));
    tierBadge("t-tier", m.tier);
  }

  function render() {
    if (!config) return;
    const screen = state.screen || "idle";
    lang = screen === "idle" ? pick("") : pick((state.member || {}).language);
    applyStatic();
    if (screen === "member") renderMember();
    else if (screen === "basket") renderBasket();
    else if (screen === "thanks") renderThanks();
    else renderIdle();
    body.dataset.screen = screen;
  }

  function show(next) {
    state = next && next.screen ? next : { screen: "idle" };
    clearTimeout(screenTimer);
    screenTimer = null;
    if (config && state.screen !== "idle") {
      const seconds = state.screen === "thanks" ? config.idle_seconds : config.member_seconds;
      const ms = Number(seconds || 0) * 1000 - Number(state.age_ms || 0);
      screenTimer = setTimeout(() => show({ screen: "idle" }), Math.max(0, ms));
    }
    render();
  }

  function rotatePromotions() {
    clearInterval(promoTimer);
    promoTimer = setInterval(() => {
      promoIndex += 1;
      if (state.screen === "idle") renderIdle();
    }, PROMO_SECONDS * 1000);
  }

  // ---- the event stream

  async function loadMessages(languages) {
    const wanted = languages.filter((l) => !messages[l]);
    const loaded = await Promise.all(wanted.map(async (l) => {
      const reply = await fetch("/display/i18n/" + encodeURIComponent(l) + ".json");
      if (!reply.ok) throw new Error("i18n " + l + ": HTTP " + reply.status);
      return [l, await reply.json()];
    }));
    for (const [l, m] of loaded) messages[l] = m;
  }

  let pending = Promise.resolve();
  // Events are handled one after another: a config may need translations
  // fetched before the state that follows it can be shown.
  function queue(fn) { pending = pending.then(fn).catch((e) => console.error(e)); }

  function onConfig(next) {
    if (config && next.page_version && config.page_version !== next.page_version) {
      location.reload();  // the agent now serves another version of this page
      return;
    }
    queue(async () => {
      await loadMessages(next.languages && next.languages.length ? next.languages : ["en"]);
      config = next;
      body.dataset.connects = String(Number(body.dataset.connects) + 1);
      render();
    });
  }

  function connect() {
    source = new EventSource("/display/events");
    source.addEventListener("config", (e) => onConfig(JSON.parse(e.data)));
    source.addEventListener("state", (e) => {
      const next = JSON.parse(e.data);
      queue(() => show(next));
    });
    source.onopen = () => { body.dataset.link = "up"; };
    source.onerror = () => {
      // The agent went away (e.g. a restart): nobody's data stays up while
      // it is gone. EventSource retries by itself unless it gave up.
      body.dataset.link = "down";
      queue(() => show({ screen: "idle" }));
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, RECONNECT_MS);
      }
    };
  }

  rotatePromotions();
  connect();
})();
