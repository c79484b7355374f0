// Helpers for the browser tests: spawn roomcam processes (the room service now, devices later),
// launch headless Debian Chromium through playwright-core, and drive the page.
//
// Every timeout here is a generous hang guard, never a speed claim.

import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync, createWriteStream, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ARTIFACTS = join(REPO, 'artifacts');
export const LOGS = join(ARTIFACTS, 'logs');
export const CHROMIUM = process.env.ROOMCAM_CHROMIUM || '/usr/bin/chromium';
export const TARGET = process.env.CARGO_TARGET_DIR ? resolve(process.env.CARGO_TARGET_DIR) : join(REPO, 'target');
export const bin = (name) => join(TARGET, 'debug', name);

mkdirSync(LOGS, { recursive: true });

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (the OS picks it; tiny race, acceptable for tests). */
export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeoutMs`. */
export async function until(what, fn, timeoutMs = 30000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(everyMs);
  }
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});

/**
 * Spawns a process with its stdout+stderr going to artifacts/logs/<name>.log. Returns a handle
 * with `stop()` (SIGTERM, then SIGKILL after a grace period), `exited` (a promise of the exit
 * code) and `logPath`. Use it for `roomcam-server` and, later, headless `roomcam` devices.
 */
export function spawnLogged(name, command, args, { env = {}, cwd = REPO } = {}) {
  const logPath = join(LOGS, `${name}.log`);
  const log = createWriteStream(logPath);
  log.write(`$ ${command} ${args.join(' ')}\n`);
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  const exited = new Promise((res) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      log.end(`\n[exited: code ${code} signal ${signal}]\n`);
      res(code ?? signal);
    });
    child.on('error', (e) => {
      children.delete(child);
      log.end(`\n[spawn error: ${e.message}]\n`);
      res(`spawn error: ${e.message}`);
    });
  });
  let running = true;
  exited.then(() => (running = false));
  return {
    name,
    child,
    logPath,
    exited,
    get running() {
      return running;
    },
    async stop(graceMs = 5000) {
      if (!running) return exited;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
      return exited;
    },
  };
}

/** A 32-character server secret, as `[[apps]] server_secret` wants. */
export function randomSecret() {
  const abc = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let s = '';
  for (let i = 0; i < 32; i++) s += abc[Math.floor(Math.random() * abc.length)];
  return s;
}

/**
 * Starts `target/debug/roomcam-server` (built by scripts/test-browser.sh) on a free loopback
 * port with a temporary config. Resolves when /healthz answers.
 */
export async function startServer({ name = 'server', devTokenEndpoint = true, appId = 1234567890, extraToml = '' } = {}) {
  const port = await freePort();
  // ICE-TCP on: the SFU's answers carry a passive TCP candidate too, which Chromium must take.
  const tcpPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'roomcam-browser-'));
  const secret = randomSecret();
  const configPath = join(dir, 'roomcam-server.toml');
  writeFileSync(
    configPath,
    `listen = "127.0.0.1:${port}"
dev_token_endpoint = ${devTokenEndpoint}

[media]
udp_port = 0
tcp_port = ${tcpPort}

[[apps]]
app_id = ${appId}
server_secret = "${secret}"
${extraToml}
`,
  );
  const proc = spawnLogged(name, bin('roomcam-server'), ['--config', configPath], {
    env: { ROOMCAM_LOG: process.env.ROOMCAM_LOG || 'info' },
  });
  const url = `http://127.0.0.1:${port}`;
  await until(`${name} to answer /healthz (log: ${proc.logPath})`, async () => {
    if (!proc.running) throw new Error(`${name} exited early; see ${proc.logPath}`);
    const r = await fetch(`${url}/healthz`);
    return r.ok;
  }, 30000);
  return {
    url,
    port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    appId,
    secret,
    configPath,
    logPath: proc.logPath,
    proc,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A token for `userId` from the server's dev-token endpoint. */
export async function devToken(server, userId, roomId = '') {
  const q = new URLSearchParams({ app_id: String(server.appId), user_id: userId, room_id: roomId });
  const r = await fetch(`${server.url}/api/dev-token?${q}`);
  if (!r.ok) throw new Error(`dev token: HTTP ${r.status} ${await r.text()}`);
  return (await r.json()).token;
}

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  // The room service listens on 127.0.0.1: let WebRTC gather loopback candidates too, so that
  // media flows even on a machine whose only interface is lo.
  '--allow-loopback-in-peer-connection',
  // Remote videos start with sound, as they would after a click.
  '--autoplay-policy=no-user-gesture-required',
  // Headless tabs in one process are never "in the background": keep timers and video running.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

/** Launches one headless Chromium (a fresh profile per launch). */
export async function launchBrowser(name = 'browser') {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    timeout: 60000,
  });
  browser._roomcamName = name;
  return browser;
}

/**
 * Opens the page of `server` in a new page of `browser`, with console output and page errors
 * collected into artifacts/logs/<name>.console.log. `query` fills fields (app_id, room_id, ...).
 */
export async function openPage(browser, server, name, query = {}) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const log = createWriteStream(join(LOGS, `${name}.console.log`));
  page.on('console', (m) => log.write(`[${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => log.write(`[pageerror] ${e.stack || e}\n`));
  page.on('close', () => log.end());
  page.setDefaultTimeout(30000);
  const q = new URLSearchParams({ app_id: String(server.appId), ...query });
  await page.goto(`${server.url}/?${q}`);
  page._roomcamName = name;
  return page;
}

/** Fills the login form, gets a dev token from the page's button, logs in and waits for CONNECTED. */
export async function loginWithDevToken(page, { roomId, userId, userName = userId }) {
  await page.fill('#room-id', roomId);
  await page.fill('#user-id', userId);
  await page.fill('#user-name', userName);
  await page.click('#btn-dev-token');
  await page.waitForFunction(() => document.getElementById('token').value.startsWith('04'), null, { timeout: 15000 });
  await page.click('#btn-login');
  await waitRoomState(page, 'CONNECTED');
}

export async function waitRoomState(page, s, timeout = 20000) {
  await page.waitForFunction((want) => document.getElementById('room-state').dataset.state === want, s, { timeout });
}

/** Publishes camera + mic under `streamId` and waits for PUBLISHING. */
export async function publish(page, streamId) {
  await page.fill('#stream-id', streamId);
  await page.click('#btn-publish');
  await page.waitForFunction(() => document.getElementById('publish-state').dataset.state === 'PUBLISHING', null, { timeout: 30000 });
}

/** Clicks Play on `streamId` in the stream list and waits for its tile. */
export async function play(page, streamId) {
  await page.click(`#streams li[data-stream-id="${streamId}"] button[data-testid="play"]`);
  await page.waitForSelector(`#remote-videos [data-stream-id="${streamId}"] video`, { timeout: 30000 });
}

/** Waits until the player of `streamId` on `page` has decoded more than `frames` frames; returns its stats. */
export async function waitFramesDecoded(page, streamId, frames, timeout = 60000) {
  return until(
    `${page._roomcamName || 'page'} to decode more than ${frames} frames of ${streamId}`,
    async () => {
      const s = await page.evaluate((id) => window.roomcamDebug.getStats(id), streamId);
      return s && s.framesDecoded > frames ? s : null;
    },
    timeout,
    500,
  );
}

/** What the page says went wrong, for assertion messages. */
export async function pageDiagnostics(page) {
  try {
    return await page.evaluate(() => ({
      state: window.roomcamDebug.state,
      log: window.roomcamDebug.log().slice(-30),
      error: document.getElementById('error').textContent,
    }));
  } catch (e) {
    return { unavailable: String(e) };
  }
}

// ---------------------------------------------------------------------------------------------
// Devices (`target/debug/roomcam`), for the device<->browser tests of issue 5. The config follows
// docs/SPEC's device config: test sources, no display (decode and count), a status endpoint.

/** Starts a headless `roomcam` device logged into `roomId` of `server`, publishing `streamId`. */
export async function startDevice(server, { name = 'device', userId, roomId, streamId, token, video = {}, extraToml = '' }) {
  const statusPort = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'roomcam-device-'));
  const configPath = join(dir, 'roomcam.toml');
  const tok = token ?? (await devToken(server, userId, roomId));
  const v = { width: 640, height: 480, fps: 30, encoder: 'x264enc', ...video };
  writeFileSync(
    configPath,
    `[server]
url = "${server.wsUrl}"
[identity]
app_id = ${server.appId}
user_id = "${userId}"
user_name = "${userId}"
token = "${tok}"
[room]
id = "${roomId}"
auto_join = true
presence = true
stream_id = "${streamId}"
[video]
source = "test"
width = ${v.width}
height = ${v.height}
fps = ${v.fps}
encoder = "${v.encoder}"
[audio]
capture = "test"
playback = "none"
[display]
sink = "none"
[status]
listen = "127.0.0.1:${statusPort}"
${extraToml}
`,
  );
  const proc = spawnLogged(name, bin('roomcam'), ['--config', configPath], {
    env: { ROOMCAM_LOG: process.env.ROOMCAM_LOG || 'info' },
  });
  const statusUrl = `http://127.0.0.1:${statusPort}/status`;
  const device = {
    name,
    userId,
    streamId,
    statusUrl,
    configPath,
    logPath: proc.logPath,
    proc,
    async status() {
      const r = await fetch(statusUrl);
      if (!r.ok) throw new Error(`${name} /status: HTTP ${r.status}`);
      return r.json();
    },
    /** Polls /status until `pred(status)` is truthy; returns that status. */
    async waitStatus(what, pred, timeoutMs = 60000) {
      return until(`${name}: ${what} (log: ${proc.logPath})`, async () => {
        if (!proc.running) throw new Error(`${name} exited; see ${proc.logPath}`);
        const s = await device.status();
        return pred(s) ? s : null;
      }, timeoutMs, 500);
    },
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await device.waitStatus('the status endpoint to answer', () => true, 30000);
  return device;
}
