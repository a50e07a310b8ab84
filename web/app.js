// Twitch Highlights: the clip list. Plain ES module, no build step.
//
// Talks only to the clips API (`apiBaseUrl` from config.json; empty means same origin) and
// embeds Twitch's player on demand: a thumbnail first, the iframe after a click, with the
// `parent` parameter Twitch requires set to this page's host.

const PAGE_SIZE = 24;
const REQUEST_TIMEOUT_MS = 10000;
// Where the server cannot stream (API Gateway), the page asks for new clips this often.
const POLL_MS = 15000;

const $ = (id) => document.getElementById(id);
const grid = $("grid");
const summary = $("summary");
const empty = $("empty");
const errorBox = $("error");
const loadMore = $("load-more");
const streamerSelect = $("streamer");
const minIntensityInput = $("min-intensity");

const state = {
  apiBaseUrl: "",
  filters: { streamer: "", min_intensity: "" },
  nextCursor: null,
  loading: false,
  failedAction: null,
  // Responses to an older request (filters changed meanwhile) are ignored.
  generation: 0,
  // New clips: the newest id listed, the clip ids shown (a clip arrives once), and the stream
  // or timer that brings them.
  newestId: 0,
  shown: new Set(),
  live: null,
  streams: true,
};

class ApiError extends Error {}

async function getJson(path, params) {
  const url = new URL(state.apiBaseUrl + path, window.location.href);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(key, value);
  }
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  let response;
  try {
    response = await fetch(url, { signal: controller.signal, headers: { Accept: "application/json" } });
  } catch {
    throw new ApiError("The clip service did not answer. Check your connection and try again.");
  } finally {
    clearTimeout(timer);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // A non-JSON answer (a proxy's error page) is reported below by its status.
  }
  if (!response.ok) {
    if (response.status === 400 && body && body.parameter) {
      throw new ApiError(`The filter "${body.parameter}" ${body.error}.`);
    }
    throw new ApiError(`The clip service answered with an error (HTTP ${response.status}). Try again in a moment.`);
  }
  return body;
}

async function loadConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) {
      const config = await response.json();
      if (typeof config.apiBaseUrl === "string") state.apiBaseUrl = config.apiBaseUrl.replace(/\/+$/, "");
    }
  } catch {
    // No config: the API is on this origin.
  }
}

function readFiltersFromUrl() {
  const params = new URLSearchParams(window.location.search);
  state.filters.streamer = (params.get("streamer") || "").toLowerCase();
  state.filters.min_intensity = params.get("min_intensity") || "";
  showTier(state.filters.min_intensity);
}

// Selects the tier of `minimum`; a value that is no tier (a link made by hand) gets an option of
// its own, so the filter still says what the list shows.
function showTier(minimum) {
  const tiers = [...minIntensityInput.options].map((option) => option.value);
  if (!tiers.includes(minimum)) {
    const custom = document.createElement("option");
    custom.value = minimum;
    custom.textContent = `${minimum}σ and up`;
    minIntensityInput.append(custom);
  }
  minIntensityInput.value = minimum;
}

function writeFiltersToUrl() {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(state.filters)) if (value) params.set(key, value);
  const query = params.toString();
  history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
}

async function loadStreamers() {
  try {
    const { streamers } = await getJson("/v1.0/streamers");
    for (const streamer of streamers) {
      const option = document.createElement("option");
      option.value = streamer.login.toLowerCase();
      option.textContent = streamer.display_name || streamer.login;
      streamerSelect.append(option);
    }
  } catch {
    // The list is a convenience: without it the filter still works for a streamer in the URL.
  }
  if (state.filters.streamer && ![...streamerSelect.options].some((o) => o.value === state.filters.streamer)) {
    const option = document.createElement("option");
    option.value = option.textContent = state.filters.streamer;
    streamerSelect.append(option);
  }
  streamerSelect.value = state.filters.streamer;
}

function skeletons(count) {
  const items = [];
  for (let i = 0; i < count; i++) {
    const li = document.createElement("li");
    li.className = "card skeleton";
    li.dataset.testid = "skeleton";
    li.setAttribute("aria-hidden", "true");
    li.innerHTML = '<div class="player"></div><div class="meta"><div class="line"></div><div class="line short"></div></div>';
    items.push(li);
  }
  grid.append(...items);
  grid.setAttribute("aria-busy", "true");
  return items;
}

function relativeTime(date) {
  const seconds = Math.round((date.getTime() - Date.now()) / 1000);
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["year", 31536000], ["month", 2592000], ["day", 86400], ["hour", 3600], ["minute", 60]];
  for (const [unit, size] of units) {
    if (Math.abs(seconds) >= size) return format.format(Math.trunc(seconds / size), unit);
  }
  return format.format(seconds, "second");
}

function embedSource(clip) {
  const url = new URL(clip.embed_url || `https://clips.twitch.tv/embed?clip=${encodeURIComponent(clip.clip_id)}`);
  // Twitch refuses to play an embed whose parent is not the embedding page's host.
  url.searchParams.set("parent", window.location.hostname);
  url.searchParams.set("autoplay", "true");
  return url.toString();
}

const SVG_NS = "http://www.w3.org/2000/svg";

// The burst's shape: chat messages per second up to the second the moment was reported
// (`curve`, oldest first), drawn to the card's width with the peak at the top.
function curveGraph(curve) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.classList.add("curve");
  const peak = Math.max(...curve, 1);
  svg.setAttribute("viewBox", `0 0 ${curve.length - 1} 20`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Chat over ${curve.length} seconds, up to ${peak} messages a second`);
  const line = document.createElementNS(SVG_NS, "polyline");
  line.setAttribute("points", curve.map((count, i) => `${i},${(20 - (count / peak) * 19).toFixed(2)}`).join(" "));
  line.setAttribute("vector-effect", "non-scaling-stroke");
  svg.append(line);
  return svg;
}

// This page with the clip on top (`?clip=ID`): a click copies it when the browser lets us, and
// otherwise follows it.
function shareLink(clip, title) {
  const link = document.createElement("a");
  link.className = "share";
  const target = new URL(window.location.pathname, window.location.origin);
  target.searchParams.set("clip", clip.clip_id);
  link.href = target.toString();
  link.textContent = "Share";
  link.setAttribute("aria-label", `Share: ${title}`);
  link.addEventListener("click", async (event) => {
    if (!navigator.clipboard) return;
    event.preventDefault();
    try {
      await navigator.clipboard.writeText(link.href);
      link.textContent = "Link copied";
    } catch {
      window.location.href = link.href;
    }
  });
  return link;
}

// 3723 -> "1:02:03", 83 -> "1:23".
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const [h, m, r] = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  const two = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${two(m)}:${two(r)}` : `${m}:${two(r)}`;
}

function card(clip) {
  const node = $("clip-template").content.firstElementChild.cloneNode(true);
  const moment = clip.kind === "moment";
  const title = clip.title || (moment ? "Chat exploded" : `Clip ${clip.clip_id}`);
  const streamer = clip.streamer_name || clip.streamer_login || `channel ${clip.broadcaster_id}`;
  node.dataset.clipId = clip.clip_id;
  state.shown.add(clip.clip_id);
  state.newestId = Math.max(state.newestId, clip.id);
  node.querySelector(".title").textContent = title;
  node.querySelector(".streamer").textContent = streamer;
  const when = node.querySelector(".when");
  const detected = new Date(clip.detected_at);
  when.dateTime = clip.detected_at;
  when.textContent = relativeTime(detected);
  when.title = detected.toLocaleString();
  node.querySelector(".intensity").textContent =
    `Intensity ${clip.intensity.toFixed(1)} · ${clip.message_count} messages`;
  if (Array.isArray(clip.curve) && clip.curve.length > 1) {
    node.querySelector(".intensity").after(curveGraph(clip.curve));
  }
  if (Array.isArray(clip.phrases) && clip.phrases.length > 0) {
    // What chat repeated most around the moment, and how many said it.
    const said = document.createElement("p");
    said.className = "phrases";
    said.textContent = `Chat: ${clip.phrases.map((p) => `${p.phrase} ×${p.count}`).join(" · ")}`;
    node.querySelector(".intensity").after(said);
  }
  node.querySelector(".meta").append(shareLink(clip, title));
  if (clip.vod_url && clip.vod_offset != null) {
    // The moment in the recording on Twitch.
    const link = document.createElement("a");
    link.className = "vod";
    link.href = clip.vod_url;
    link.rel = "noopener";
    link.textContent = `Watch the VOD at ${clock(clip.vod_offset)}`;
    node.querySelector(".intensity").parentElement.append(link);
  }

  const play = node.querySelector(".play");
  if (moment) {
    // A moment detected without a Twitch clip (`highlights dev` without credentials).
    node.classList.add("moment");
    const panel = document.createElement("div");
    panel.className = "moment-panel";
    const label = document.createElement("strong");
    label.textContent = "Moment";
    const detail = document.createElement("span");
    detail.textContent = `${clip.message_count} messages · ${clip.intensity.toFixed(1)}σ above usual · no Twitch clip`;
    panel.append(label, detail);
    play.replaceWith(panel);
    return node;
  }
  play.setAttribute("aria-label", `Play clip: ${title} (${streamer})`);
  const thumb = node.querySelector(".thumb");
  if (clip.thumbnail_url) {
    thumb.src = clip.thumbnail_url;
    thumb.addEventListener("error", () => play.classList.add("no-thumb"), { once: true });
  } else {
    play.classList.add("no-thumb");
  }
  play.addEventListener("click", () => {
    const iframe = document.createElement("iframe");
    iframe.src = embedSource(clip);
    iframe.title = `Clip: ${title} (${streamer})`;
    iframe.allowFullscreen = true;
    iframe.setAttribute("allow", "autoplay; fullscreen");
    play.replaceWith(iframe);
    iframe.focus();
  });
  return node;
}

// New clips appear without reloading: Server-Sent Events where the server streams (`highlights
// serve`, `highlights dev`), else polling in insertion order (`after_id`), since a clip can be
// stored after a later moment's.
function stopLive() {
  if (state.live?.close) state.live.close();
  if (state.live?.timer) clearTimeout(state.live.timer);
  state.live = null;
}

function startLive() {
  stopLive();
  const generation = state.generation;
  const params = { ...state.filters, after_id: state.newestId };
  if (state.streams && window.EventSource) {
    const url = new URL(`${state.apiBaseUrl}/v1.0/live`, window.location.href);
    for (const [key, value] of Object.entries(params)) if (value !== "") url.searchParams.set(key, value);
    const source = new EventSource(url);
    let opened = false;
    source.addEventListener("open", () => { opened = true; });
    source.addEventListener("clip", (event) => showNew([JSON.parse(event.data)]));
    source.addEventListener("error", () => {
      // Never opened (no streaming here): poll instead. Dropped later: the browser reconnects.
      if (!opened) {
        source.close();
        state.streams = false;
        if (generation === state.generation) startLive();
      }
    });
    state.live = source;
    return;
  }
  const poll = async () => {
    try {
      const page = await getJson("/v1.0/clip", { ...state.filters, after_id: state.newestId, limit: 100 });
      if (generation !== state.generation) return;
      showNew(page.clips);
    } catch {
      // The next round tries again.
    }
    if (generation === state.generation) state.live = { timer: setTimeout(poll, POLL_MS) };
  };
  state.live = { timer: setTimeout(poll, POLL_MS) };
}

function showNew(clips) {
  const fresh = clips.filter((clip) => !state.shown.has(clip.clip_id));
  if (fresh.length === 0) return;
  // Newest moment first, above what is listed.
  fresh.sort((a, b) => b.detected_at.localeCompare(a.detected_at));
  const nodes = fresh.map(card);
  nodes.forEach((node) => node.classList.add("fresh"));
  grid.prepend(...nodes);
  empty.hidden = true;
  const count = grid.querySelectorAll(".card:not(.skeleton)").length;
  const listed = Number.parseInt(summary.textContent, 10);
  const total = Number.isNaN(listed) ? count : listed + fresh.length;
  summary.textContent = `${total} clip${total === 1 ? "" : "s"}`;
}

function showError(message, action) {
  state.failedAction = action;
  $("error-detail").textContent = message;
  errorBox.hidden = false;
  loadMore.hidden = true;
}

async function fetchPage(cursor) {
  const params = { ...state.filters, limit: PAGE_SIZE };
  if (cursor) params.cursor = cursor;
  return getJson("/v1.0/clip", params);
}

async function loadFirstPage() {
  const generation = ++state.generation;
  state.loading = true;
  state.nextCursor = null;
  stopLive();
  grid.replaceChildren();
  state.shown.clear();
  state.newestId = 0;
  empty.hidden = errorBox.hidden = loadMore.hidden = true;
  setLoadMoreBusy(false); // a next page still loading for the old filters is ignored
  summary.textContent = "Loading clips…";
  const placeholders = skeletons(6);
  try {
    const page = await fetchPage(null);
    if (generation !== state.generation) return;
    placeholders.forEach((p) => p.remove());
    grid.append(...page.clips.map(card));
    state.nextCursor = page.next_cursor;
    const total = `${page.total_count}${page.total_count_capped ? "+" : ""}`;
    summary.textContent = page.count === 0 ? "" : `${total} clip${page.total_count === 1 ? "" : "s"}`;
    empty.hidden = page.count !== 0;
    loadMore.hidden = !page.has_more;
    startLive();
  } catch (error) {
    if (generation !== state.generation) return;
    placeholders.forEach((p) => p.remove());
    summary.textContent = "";
    showError(error.message, loadFirstPage);
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      grid.setAttribute("aria-busy", "false");
      watchForScroll();
    }
  }
}

async function loadNextPage() {
  if (state.loading || !state.nextCursor) return;
  const generation = state.generation;
  state.loading = true;
  // The button stays in place, disabled, while the page loads: hidden means "no more clips",
  // never "busy", so neither a reader nor a test can mistake a moment of loading for the end.
  setLoadMoreBusy(true);
  errorBox.hidden = true;
  const placeholders = skeletons(3);
  try {
    const page = await fetchPage(state.nextCursor);
    if (generation !== state.generation) return;
    placeholders.forEach((p) => p.remove());
    grid.append(...page.clips.map(card));
    state.nextCursor = page.next_cursor;
    loadMore.hidden = !page.has_more;
  } catch (error) {
    if (generation !== state.generation) return;
    placeholders.forEach((p) => p.remove());
    showError(error.message, loadNextPage);
  } finally {
    if (generation === state.generation) {
      state.loading = false;
      setLoadMoreBusy(false);
      grid.setAttribute("aria-busy", "false");
      watchForScroll();
    }
  }
}

function setLoadMoreBusy(busy) {
  loadMore.disabled = busy;
  loadMore.textContent = busy ? "Loading more clips…" : "Load more clips";
}

// Infinite scroll once the reader scrolls; the button stays for keyboards and screen readers.
const scrollObserver = new IntersectionObserver((entries) => {
  if (entries.some((e) => e.isIntersecting) && window.scrollY > 0) loadNextPage();
}, { rootMargin: "400px" });

// Observing again reports the button's current position: on a tall screen it may still be in
// reach after a page was added, and an observer only reports changes.
function watchForScroll() {
  scrollObserver.unobserve(loadMore);
  scrollObserver.observe(loadMore);
}

function applyFilters(event) {
  event?.preventDefault();
  const minimum = minIntensityInput.value;
  state.filters = { streamer: streamerSelect.value, min_intensity: minimum };
  writeFiltersToUrl();
  loadFirstPage();
}

// A shared clip (`?clip=ID`) shows above the list, whatever the filters.
async function loadShared() {
  const id = new URLSearchParams(window.location.search).get("clip");
  if (!id) return;
  const holder = $("shared-clip");
  try {
    const clip = await getJson(`/v1.0/clip/${encodeURIComponent(id)}`);
    // Not part of the list: it must not count as listed for live updates.
    const newest = state.newestId;
    holder.replaceChildren(card(clip));
    state.newestId = newest;
    if (!$("grid").querySelector(`[data-clip-id="${CSS.escape(clip.clip_id)}"]`)) state.shown.delete(clip.clip_id);
  } catch {
    const gone = document.createElement("p");
    gone.textContent = "The shared clip is not listed any more.";
    holder.replaceChildren(gone);
  }
  $("shared").hidden = false;
}

async function main() {
  $("filters").addEventListener("submit", applyFilters);
  streamerSelect.addEventListener("change", applyFilters);
  minIntensityInput.addEventListener("change", applyFilters);
  $("retry").addEventListener("click", () => {
    errorBox.hidden = true;
    (state.failedAction || loadFirstPage)();
  });
  $("clear-filters").addEventListener("click", () => {
    streamerSelect.value = "";
    minIntensityInput.value = "";
    applyFilters();
  });
  loadMore.addEventListener("click", loadNextPage);
  watchForScroll();

  await loadConfig();
  readFiltersFromUrl();
  await Promise.all([loadStreamers(), loadFirstPage(), loadShared()]);
}

main();
