// Browser tests of the site in Debian's Chromium, driven by playwright-core (no browser
// download). Run by cli/tests/web_site.rs, which seeds 60 sample clips over 3 streamers
// (sample_0..sample_2; "Sample clip 60" is the newest) and starts `highlights serve` at SITE_URL.
// Nothing leaves the machine: every request to a host other than the site's is answered here.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const SITE_URL = process.env.SITE_URL;
const SHOTS = process.env.SCREENSHOT_DIR || new URL("../test-results/", import.meta.url).pathname;
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const WAIT = { timeout: 15000 };

let browser;

before(async () => {
  assert.ok(SITE_URL, "SITE_URL is not set (run through cargo test -p highlights-cli --test web_site)");
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
});

async function openPage(options = {}) {
  const context = await browser.newContext(options);
  const site = new URL(SITE_URL).host;
  const offsite = [];
  await context.route((url) => url.host !== site, (route) => {
    offsite.push(route.request().url());
    return route.fulfill({ status: 200, contentType: "text/html", body: "<p>offline stand-in</p>" });
  });
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  return { page, context, offsite, errors };
}

const cards = (page) => page.locator("#grid .card:not(.skeleton)");

test("the page lists the seeded clips newest first, with the streamer filter filled", async () => {
  const { page, context, errors } = await openPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  assert.equal(await cards(page).count(), 24);
  assert.equal(await cards(page).first().locator(".title").textContent(), "Sample clip 60");
  assert.equal(await page.locator("#summary").textContent(), "60 clips");
  assert.match(await cards(page).first().locator(".intensity").textContent(), /^Intensity \d+\.\d · \d+ messages$/);
  // Each sample clip's chat curve: 12 seconds, the peak (its message count) at the top.
  const curve = cards(page).first().locator("svg.curve");
  assert.equal(await curve.locator("polyline").getAttribute("points").then((p) => p.split(" ").length), 12);
  assert.match(await curve.getAttribute("aria-label"), /^Chat over 12 seconds, up to 80 messages a second$/);
  // ... and its second in the VOD (60 * 60 + 3 s into it).
  const vod = cards(page).first().locator("a.vod");
  assert.equal(await vod.textContent(), "Watch the VOD at 1:00:03");
  assert.equal(await vod.getAttribute("href"), "https://www.twitch.tv/videos/1900000000?t=1h0m3s");
  const streamers = await page.locator("#streamer option").allTextContents();
  assert.deepEqual(streamers, ["All streamers", "Sample 0", "Sample 1", "Sample 2"]);
  await page.screenshot({ path: `${SHOTS}/desktop.png`, fullPage: false });
  assert.deepEqual(errors, []);
  await context.close();
});

test("each clip has a share link that opens the page with that clip on top of the list", async () => {
  const { page, context, errors } = await openPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  const href = await cards(page).nth(3).locator("a.share").getAttribute("href");
  assert.equal(new URL(href).searchParams.get("clip"), "Sample57");
  await page.goto(href);
  const shared = page.locator("#shared .card");
  await shared.waitFor(WAIT);
  assert.equal(await shared.getAttribute("data-clip-id"), "Sample57");
  assert.equal(await shared.locator(".title").textContent(), "Sample clip 57");
  await cards(page).first().waitFor(WAIT);
  assert.equal(await cards(page).first().getAttribute("data-clip-id"), "Sample60", "the list loads below it");
  await page.goto(`${SITE_URL}?clip=NoSuchClip`);
  await page.locator("#shared").getByText("The shared clip is not listed any more.").waitFor(WAIT);
  assert.deepEqual(errors, []);
  await context.close();
});

// "Sample60" … "Sample1": every seeded clip, newest first.
const ALL_CLIPS_NEWEST_FIRST = Array.from({ length: 60 }, (_, i) => `Sample${60 - i}`);
const clipIds = (page) => cards(page).evaluateAll((nodes) => nodes.map((n) => n.dataset.clipId));
const idle = (page) =>
  page.waitForFunction(() => document.querySelector("#grid").getAttribute("aria-busy") === "false", null, WAIT);

// The page loads more by itself once the reader scrolls near the end, so these tests never wait
// for an intermediate count (a click or a focus scrolls too, and the next page may already be on
// its way): they check what must hold whatever the order, every clip once, newest first. The
// button is hidden only when there is nothing more to load (it is disabled while a page loads),
// so "hidden" is a final state to wait for.
test("without scrolling, only a click on Load more loads the next page", async () => {
  // Tall enough that the first page and the button fit without scrolling: the page then never
  // loads by itself, so the click alone brings exactly one more page.
  const { page, context, errors } = await openPage({ viewport: { width: 1280, height: 4000 } });
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  assert.deepEqual(await clipIds(page), ALL_CLIPS_NEWEST_FIRST.slice(0, 24));
  const button = await page.locator("#load-more").boundingBox();
  assert.ok(button && button.y + button.height <= 4000, `the button is below the fold: ${JSON.stringify(button)}`);
  await page.locator("#load-more").click();
  await page.waitForFunction(
    () => document.querySelectorAll("#grid .card:not(.skeleton)").length > 24 &&
      document.querySelector("#grid").getAttribute("aria-busy") === "false",
    null, WAIT);
  assert.deepEqual(await clipIds(page), ALL_CLIPS_NEWEST_FIRST.slice(0, 48));
  assert.equal(await page.evaluate(() => window.scrollY), 0);
  assert.deepEqual(errors, []);
  await context.close();
});

test("Load more from the keyboard walks every page through the cursor, each clip once", async () => {
  const { page, context, errors } = await openPage();
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  const loadMore = page.locator("#load-more");
  for (let presses = 0; !(await loadMore.isHidden()); presses++) {
    assert.ok(presses < 10, `still more to load after ${presses} presses`);
    await loadMore.focus();
    // Enter on the button while a page loads (it is disabled then) does nothing.
    await page.keyboard.press("Enter");
    await idle(page);
  }
  assert.deepEqual(await clipIds(page), ALL_CLIPS_NEWEST_FIRST);
  assert.equal(await loadMore.isHidden(), true, "the button is hidden once every clip is shown");
  assert.deepEqual(errors, []);
  await context.close();
});

test("scrolling to the end loads every page by itself, each clip once", async () => {
  const { page, context, errors } = await openPage();
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  const loadMore = page.locator("#load-more");
  for (let scrolls = 0; !(await loadMore.isHidden()); scrolls++) {
    assert.ok(scrolls < 10, `still more to load after ${scrolls} scrolls to the end`);
    const shown = await cards(page).count();
    await page.keyboard.press("End");
    // Scrolling to the end must bring the next page, or reveal that there is none.
    await page.waitForFunction(
      (before) => (document.querySelectorAll("#grid .card:not(.skeleton)").length > before &&
        document.querySelector("#grid").getAttribute("aria-busy") === "false") ||
        document.querySelector("#load-more").hidden,
      shown, WAIT);
  }
  assert.deepEqual(await clipIds(page), ALL_CLIPS_NEWEST_FIRST);
  assert.deepEqual(errors, []);
  await context.close();
});

test("filters narrow the list and live in the URL", async () => {
  const { page, context } = await openPage();
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  await page.locator("#streamer").selectOption("sample_1");
  await page.waitForFunction(() => document.querySelector("#summary").textContent === "20 clips", null, WAIT);
  const names = await cards(page).locator(".streamer").allTextContents();
  assert.ok(names.length > 0 && names.every((n) => n === "Sample 1"), names.join(","));
  assert.match(page.url(), /streamer=sample_1/);

  // The named tiers: each a minimum intensity.
  await page.locator("#min-intensity").selectOption({ label: "Big · 8σ and up" });
  await page.waitForFunction(() => /min_intensity=8/.test(location.search) && document.querySelectorAll("#grid .card:not(.skeleton)").length > 0 && [...document.querySelectorAll("#grid .card:not(.skeleton) .intensity")].every((p) => Number(p.textContent.match(/Intensity ([\d.]+)/)[1]) >= 8), null, WAIT);
  const shown = await cards(page).locator(".intensity").allTextContents();
  assert.ok(shown.length > 0 && shown.length < 20, `fewer than the channel's 20: ${shown.length}`);
  assert.match(page.url(), /streamer=sample_1/, "both filters apply");
  await page.locator("#min-intensity").selectOption("12");
  await page.locator("#empty").waitFor({ state: "visible", ...WAIT });
  assert.equal(await cards(page).count(), 0);
  await page.screenshot({ path: `${SHOTS}/empty.png` });
  await page.locator("#clear-filters").click();
  await page.waitForFunction(() => document.querySelector("#summary").textContent === "60 clips", null, WAIT);
  await context.close();
});

test("skeletons show while the API has not answered", async () => {
  const { page, context } = await openPage();
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await page.route("**/v1.0/clip?*", async (route) => {
    await held;
    await route.continue();
  });
  await page.goto(SITE_URL);
  await page.locator("[data-testid=skeleton]").first().waitFor(WAIT);
  assert.equal(await page.locator("#grid").getAttribute("aria-busy"), "true");
  assert.equal(await page.locator("#summary").textContent(), "Loading clips…");
  await page.screenshot({ path: `${SHOTS}/loading.png` });
  release();
  await cards(page).first().waitFor(WAIT);
  assert.equal(await page.locator("[data-testid=skeleton]").count(), 0);
  assert.equal(await page.locator("#grid").getAttribute("aria-busy"), "false");
  await context.close();
});

test("when the API is down the page says so, and Retry recovers", async () => {
  const { page, context } = await openPage();
  await page.route("**/v1.0/clip?*", (route) => route.abort("connectionrefused"));
  await page.goto(SITE_URL);
  const alert = page.getByRole("alert");
  await alert.waitFor({ state: "visible", ...WAIT });
  assert.match(await alert.textContent(), /could not be loaded/);
  assert.equal(await cards(page).count(), 0);
  await page.screenshot({ path: `${SHOTS}/api-down.png` });
  await page.unroute("**/v1.0/clip?*");
  await page.getByRole("button", { name: "Retry" }).click();
  await cards(page).first().waitFor(WAIT);
  assert.equal(await alert.isHidden(), true);
  assert.equal(await cards(page).count(), 24);
  await context.close();
});

test("an API error answer is shown with its reason", async () => {
  const { page, context } = await openPage();
  await page.goto(`${SITE_URL}?min_intensity=abc`);
  const alert = page.getByRole("alert");
  await alert.waitFor({ state: "visible", ...WAIT });
  assert.match(await alert.textContent(), /min_intensity/);
  await context.close();
});

test("a phone-sized viewport lays the clips out in one column", async () => {
  const { page, context } = await openPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  const boxes = await cards(page).evaluateAll((nodes) => nodes.slice(0, 4).map((n) => n.getBoundingClientRect().toJSON()));
  assert.equal(new Set(boxes.map((b) => Math.round(b.x))).size, 1, JSON.stringify(boxes));
  for (let i = 1; i < boxes.length; i++) assert.ok(boxes[i].y >= boxes[i - 1].y + boxes[i - 1].height);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
  await page.screenshot({ path: `${SHOTS}/phone.png` });
  await context.close();
});

test("the player loads on activation from the keyboard, with Twitch's parent parameter", async () => {
  const { page, context, offsite } = await openPage();
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  assert.equal(await page.locator("iframe").count(), 0, "no player before a click");
  const play = cards(page).first().locator("button.play");
  await play.focus();
  await page.keyboard.press("Enter");
  const iframe = cards(page).first().locator("iframe");
  await iframe.waitFor(WAIT);
  const src = new URL(await iframe.getAttribute("src"));
  assert.equal(src.origin, "https://clips.twitch.tv");
  assert.equal(src.searchParams.get("clip"), "Sample60");
  assert.equal(src.searchParams.get("parent"), new URL(SITE_URL).hostname);
  await page.waitForFunction(() => document.activeElement?.tagName === "IFRAME", null, WAIT);
  assert.ok(offsite.some((u) => u.startsWith("https://clips.twitch.tv/embed")), "the embed was requested");
  await context.close();
});

test("the skip link and the filters are reachable with the keyboard", async () => {
  const { page, context } = await openPage();
  await page.goto(SITE_URL);
  await cards(page).first().waitFor(WAIT);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to clips");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "streamer");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "min-intensity");
  await context.close();
});
