// The page keeps its session alive: heartbeats, and `tokenWillExpire` answered with
// `renewToken {}` (the server mints the new token, which the page shows).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launchBrowser, openPage, waitRoomState } from './helpers.mjs';

let server;
let browser;

before(async () => {
  // A 60 s token is warned about 59 s before expiry: at once, without waiting a minute.
  server = await startServer({ name: 'token_renewal-server', extraToml: '[session]\ntoken_warning_secs = 59\nheartbeat_interval_secs = 1\ntimeout_secs = 5\n' });
  browser = await launchBrowser('token_renewal');
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

test('a token about to expire is renewed by the page, and heartbeats keep the session', async () => {
  const q = new URLSearchParams({ app_id: String(server.appId), user_id: 'renewer', room_id: 'renew-room', ttl: '60' });
  const { token } = await (await fetch(`${server.url}/api/dev-token?${q}`)).json();
  const page = await openPage(browser, server, 'token_renewal-page');
  await page.fill('#room-id', 'renew-room');
  await page.fill('#user-id', 'renewer');
  await page.fill('#token', token);
  await page.click('#btn-login');
  await waitRoomState(page, 'CONNECTED');
  await page.waitForFunction((old) => {
    const v = document.getElementById('token').value;
    return v.startsWith('04') && v !== old;
  }, token, { timeout: 20000 });
  const log = (await page.evaluate(() => window.roomcamDebug.log())).join('\n');
  assert.match(log, /"type":"tokenWillExpire"/);
  assert.match(log, />> \{"type":"renewToken"\}/);
  assert.match(log, /"type":"tokenRenewed"/);
  // Still logged in well past the 5 s session timeout: the heartbeats (every 1 s here) count.
  await new Promise((r) => setTimeout(r, 7000));
  assert.equal(await page.getAttribute('#room-state', 'data-state'), 'CONNECTED');
  assert.equal(await page.isHidden('#error'), true);
});
