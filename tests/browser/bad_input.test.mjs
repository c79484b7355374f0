// Bad input from the page's side: wrong tokens, a duplicate stream id, a duplicate login, a
// server without the dev-token endpoint, a page without HTTPS, a browser without H.264. Each
// gets a clear message on the page and disturbs nothing else.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  startServer, launchBrowser, openPage, loginWithDevToken, publish, devToken, waitRoomState,
  CHROMIUM, CHROMIUM_ARGS, ARTIFACTS,
} from './helpers.mjs';

let server;
let serverNoDev;
let browser;
const extraBrowsers = [];

before(async () => {
  [server, serverNoDev] = await Promise.all([
    startServer({ name: 'bad_input-server' }),
    startServer({ name: 'bad_input-server-nodev', devTokenEndpoint: false }),
  ]);
  browser = await launchBrowser('bad_input');
});

after(async () => {
  for (const b of [browser, ...extraBrowsers]) await b?.close().catch(() => {});
  await server?.stop();
  await serverNoDev?.stop();
});

async function errorShown(page) {
  await page.waitForSelector('#error:not([hidden])');
  return { code: await page.getAttribute('#error', 'data-code'), text: await page.textContent('#error') };
}

test('a wrong token shows the error code and message, and a good one then logs in', async () => {
  const page = await openPage(browser, server, 'bad_input-wrong-token');
  await page.fill('#room-id', 'bad-room');
  await page.fill('#user-id', 'eve');
  await page.fill('#token', '04AAAAAGNvdCBhIHRva2Vu');
  await page.click('#btn-login');
  const e = await errorShown(page);
  assert.equal(e.code, '1001001');
  assert.match(e.text, /^1001001 token invalid/);
  await waitRoomState(page, 'DISCONNECTED');
  await page.screenshot({ path: join(ARTIFACTS, 'browser-wrong-token.png') });

  // A real token for another user: 1001007.
  await page.fill('#token', await devToken(server, 'mallory', 'bad-room'));
  await page.click('#btn-login');
  await page.waitForFunction(() => document.getElementById('error').dataset.code === '1001007');
  assert.match(await page.textContent('#error'), /^1001007 token was issued for another user/);

  // The page recovers: a good token logs in and clears the error.
  await page.click('#btn-dev-token');
  await page.waitForFunction(() => document.getElementById('token').value.startsWith('04'));
  await page.click('#btn-login');
  await waitRoomState(page, 'CONNECTED');
  assert.equal(await page.isHidden('#error'), true);
  await page.close();
});

test('a duplicate stream id is refused with its code; the first publisher is undisturbed', async () => {
  const first = await openPage(browser, server, 'bad_input-dup-first');
  const second = await openPage(browser, server, 'bad_input-dup-second');
  await loginWithDevToken(first, { roomId: 'dup-room', userId: 'dup-1' });
  await loginWithDevToken(second, { roomId: 'dup-room', userId: 'dup-2' });
  await publish(first, 'same-id');
  await second.fill('#stream-id', 'same-id');
  await second.click('#btn-publish');
  const e = await errorShown(second);
  assert.equal(e.code, '1003002');
  assert.match(e.text, /^1003002 stream id is already being published/);
  await second.waitForFunction(() => document.getElementById('publish-state').dataset.state === 'NO_PUBLISH');
  assert.equal(await second.isHidden('#local-tile'), true);
  // The refused offer was rolled back: the second page can still publish under another id.
  await publish(second, 'other-id');
  assert.equal(await first.getAttribute('#publish-state', 'data-state'), 'PUBLISHING');
  await first.waitForSelector('#streams li[data-stream-id="other-id"]');
  await first.close();
  await second.close();
});

test('a second login of the same user kicks the first page, which says why', async () => {
  const a = await openPage(browser, server, 'bad_input-kick-a');
  const b = await openPage(browser, server, 'bad_input-kick-b');
  await loginWithDevToken(a, { roomId: 'kick-room', userId: 'twin' });
  await loginWithDevToken(b, { roomId: 'kick-room', userId: 'twin' });
  const e = await errorShown(a);
  assert.equal(e.code, '1002006');
  await waitRoomState(a, 'DISCONNECTED');
  assert.equal(await b.getAttribute('#room-state', 'data-state'), 'CONNECTED');
  await a.close();
  await b.close();
});

test('a server without the dev-token endpoint: the page says so', async () => {
  const page = await openPage(browser, serverNoDev, 'bad_input-nodev');
  await page.fill('#user-id', 'someone');
  await page.click('#btn-dev-token');
  await page.waitForSelector('#notice-devtoken:not([hidden])');
  assert.match(await page.textContent('#notice-devtoken'), /dev token endpoint is off on this server \(dev_token_endpoint = false\)/);
  assert.equal(await page.inputValue('#token'), '');
  await page.close();
});

test('a page over plain HTTP from a non-loopback name says camera access needs HTTPS', async () => {
  // roomcam.test resolves to 127.0.0.1 inside this browser only: not a secure context.
  const b = await chromium.launch({
    executablePath: CHROMIUM,
    args: [...CHROMIUM_ARGS, '--host-resolver-rules=MAP roomcam.test 127.0.0.1'],
    timeout: 60000,
  });
  extraBrowsers.push(b);
  const page = await b.newPage();
  await page.goto(`http://roomcam.test:${server.port}/?app_id=${server.appId}`);
  assert.equal(await page.evaluate(() => window.isSecureContext), false);
  await page.waitForSelector('#notice-insecure:not([hidden])');
  assert.match(await page.textContent('#notice-insecure'), /Camera and microphone need HTTPS/);
  // Logging in and the room still work; only publishing is off.
  await page.fill('#room-id', 'insecure-room');
  await page.fill('#user-id', 'plain-http');
  await page.fill('#token', await devToken(server, 'plain-http', 'insecure-room'));
  await page.click('#btn-login');
  await waitRoomState(page, 'CONNECTED');
  assert.equal(await page.isDisabled('#btn-publish'), true);
  await page.close();
});

test('a browser without H.264 is told so, and the server refuses its offer with 1006002', async () => {
  const source = await openPage(browser, server, 'bad_input-h264-source');
  await loginWithDevToken(source, { roomId: 'noh264-room', userId: 'h264-source' });
  await publish(source, 'h264-src');

  // A page whose browser (so it believes) has no H.264 at all.
  const page = await browser.newPage();
  await page.addInitScript(() => {
    for (const cls of [RTCRtpSender, RTCRtpReceiver]) {
      const orig = cls.getCapabilities.bind(cls);
      cls.getCapabilities = (kind) => {
        const c = orig(kind);
        if (c && kind === 'video') c.codecs = c.codecs.filter((x) => x.mimeType !== 'video/H264');
        return c;
      };
    }
  });
  await page.goto(`${server.url}/?app_id=${server.appId}`);
  page._roomcamName = 'no-h264';
  await page.waitForSelector('#notice-h264:not([hidden])');
  assert.match(await page.textContent('#notice-h264'), /cannot send or receive H\.264/);
  await loginWithDevToken(page, { roomId: 'noh264-room', userId: 'no-h264' });
  assert.equal(await page.isDisabled('#btn-publish'), true);

  // Playing anyway: the offer carries no H.264, the server says why, the page cleans up.
  await page.click('#streams li[data-stream-id="h264-src"] button[data-testid="play"]');
  await page.waitForFunction(() => document.getElementById('error').dataset.code === '1006002');
  assert.match(await page.textContent('#error'), /^1006002 no common codec/);
  await page.waitForSelector('#streams li[data-stream-id="h264-src"][data-play-state="NO_PLAY"]');
  assert.equal(await page.locator('#remote-videos [data-testid="remote-tile"]').count(), 0);
  assert.equal(await page.evaluate(() => window.roomcamDebug.state.signalingState), 'stable');
  assert.equal(await source.getAttribute('#publish-state', 'data-state'), 'PUBLISHING');
  await page.close();
  await source.close();
});
