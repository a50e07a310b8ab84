// The page of `highlights dev` in Debian's Chromium: a moment detected while the page is open
// appears without reloading. Run by cli/tests/dev.rs (not part of `node --test tests/`): it
// starts `highlights dev --channel alpha` against a fake Twitch IRC server at SITE_URL, waits
// for this script to print READY, then sends a burst of chat.
//
// LIVE_TRANSPORT=poll makes the page meet a server that cannot stream (as behind API Gateway):
// `/v1.0/live` never answers, so the page must fall back to polling `/v1.0/clip?after_id=`.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const SITE_URL = process.env.SITE_URL;
const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const TRANSPORT = process.env.LIVE_TRANSPORT || "stream";

let browser;
after(async () => {
  await browser?.close();
});

test(`a new moment appears on the open page, as a moment card (${TRANSPORT})`, async () => {
  assert.ok(SITE_URL, "SITE_URL is not set (run through cargo test -p highlights-cli --test dev)");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu"] });
  const context = await browser.newContext();
  const site = new URL(SITE_URL).host;
  await context.route((url) => url.host !== site, (route) => route.fulfill({ status: 200, body: "" }));
  if (TRANSPORT === "poll") await context.route("**/v1.0/live?*", (route) => route.abort("connectionrefused"));
  const page = await context.newPage();
  const polls = [];
  const streams = [];
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.pathname === "/v1.0/clip" && url.searchParams.has("after_id")) polls.push(url.href);
    if (url.pathname === "/v1.0/live") streams.push(url.href);
  });
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(SITE_URL);
  await page.locator("#empty").waitFor({ state: "visible", timeout: 15000 });
  // Set on this document only: still there at the end means the page was never reloaded.
  await page.evaluate(() => { window.sameDocument = true; });
  console.log("READY");
  const moment = page.locator("#grid .card.moment");
  await moment.first().waitFor({ timeout: 90000 });
  assert.equal(await moment.count(), 1);
  assert.match(await moment.locator(".title").textContent(), /^KEKW ×\d+$/, "titled by what chat said");
  assert.match(await moment.locator(".phrases").textContent(), /^Chat: KEKW ×\d+/);
  assert.match(await moment.locator(".moment-panel").textContent(), /messages · \d+\.\d.* no Twitch clip/);
  assert.equal(await page.locator("#empty").isHidden(), true);
  assert.equal(await page.locator("#summary").textContent(), "1 clip");
  assert.equal(await page.evaluate(() => window.sameDocument), true, "the page was not reloaded");
  if (TRANSPORT === "poll") {
    assert.ok(polls.length >= 1, "the page polled for new clips");
  } else {
    assert.ok(streams.length >= 1, "the page listened to the stream");
    assert.deepEqual(polls, [], "and never needed to poll");
  }
  assert.deepEqual(errors, []);
  await context.close();
});
