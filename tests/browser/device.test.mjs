// A headless `roomcam` device (target/debug/roomcam: GStreamer test pattern + tone, x264enc, no
// display, a status endpoint) and browsers in one room, through the room service's SFU: the
// browser's WebRTC stack and the device's interoperate in both directions.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ARTIFACTS, startServer, startDevice, launchBrowser, openPage, loginWithDevToken, publish, play,
  waitFramesDecoded, pageDiagnostics, until, freePort, spawnLogged, bin, LOGS,
} from './helpers.mjs';

let server;
const browsers = [];
const devices = [];

before(async () => {
  server = await startServer({ name: 'device-server' });
});

after(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  // SIGTERM: a device logs out cleanly.
  for (const d of devices) await d.stop().catch(() => {});
  if (server) await server.stop();
});

/** The device's player of `streamId`, from a status document. */
const playerOf = (status, streamId) => status.players.find((p) => p.stream_id === streamId);

/** Adds what the pages and the device say to a failure's message. */
async function explain(e, label, pages, device) {
  for (const [name, page] of Object.entries(pages)) {
    await page.screenshot({ path: join(ARTIFACTS, `${label}-failure-${name}.png`), fullPage: true }).catch(() => {});
    e.message += `\n${name}: ${JSON.stringify(await pageDiagnostics(page), null, 1)}`;
  }
  if (device) {
    const s = await device.status().catch((err) => `unavailable: ${err.message}`);
    e.message += `\n${device.name} status: ${JSON.stringify(s, null, 1)}\n${device.name} log: ${device.logPath}`;
  }
  e.message += `\nserver log: ${server.logPath}`;
  return e;
}

test('a browser publishes; a roomcam device plays it and decodes it at the published size', async (t) => {
  const room = 'dev-play-room';
  const browser = await launchBrowser('device-pub');
  browsers.push(browser);
  const page = await openPage(browser, server, 'device-publisher');
  let device;
  try {
    await loginWithDevToken(page, { roomId: room, userId: 'web-pub', userName: 'Web publisher' });
    await publish(page, 'web-pub-cam');
    const local = await page.evaluate(() => window.roomcamDebug.localStats());
    assert.ok(local.captureWidth > 0 && local.captureHeight > 0, `capture size ${JSON.stringify(local)}`);

    // The device joins afterwards (auto_join) and plays every stream in the room.
    device = await startDevice(server, { name: 'device-player', userId: 'dev-player', roomId: room, streamId: 'dev-player-main' });
    devices.push(device);
    const s = await device.waitStatus('to decode 100 frames of web-pub-cam', (st) => {
      const p = playerOf(st, 'web-pub-cam');
      return p && p.video_frames_decoded >= 100 && p.width > 0;
    }, 90000);
    const p = playerOf(s, 'web-pub-cam');
    t.diagnostic(`device player: ${JSON.stringify(p)}`);
    assert.equal(p.state, 'PLAYING');
    assert.equal(p.user_id, 'web-pub');
    assert.equal(`${p.width}x${p.height}`, `${local.captureWidth}x${local.captureHeight}`);
    assert.ok(p.audio_frames_decoded > 0, `no audio decoded: ${JSON.stringify(p)}`);
    assert.equal(s.room.state, 'CONNECTED');
    // The page sees the device as a user of the room with its stream.
    await page.waitForSelector('#users li[data-user-id="dev-player"]');
    await page.waitForSelector('#streams li[data-stream-id="dev-player-main"]');
  } catch (e) {
    throw await explain(e, 'device-play', { publisher: page }, device);
  } finally {
    await device?.stop();
    await browser.close();
  }
});

test('a roomcam device publishes; the browser plays it at 640x480', async (t) => {
  const room = 'dev-pub-room';
  const device = await startDevice(server, { name: 'device-publisher', userId: 'dev-pub', roomId: room, streamId: 'dev-pub-main' });
  devices.push(device);
  const browser = await launchBrowser('device-viewer');
  browsers.push(browser);
  const page = await openPage(browser, server, 'device-viewer');
  try {
    await device.waitStatus('to publish', (st) => st.publisher.state === 'PUBLISHING' && st.publisher.video_frames_sent > 0, 60000);
    await loginWithDevToken(page, { roomId: room, userId: 'web-view', userName: 'Web viewer' });
    await page.waitForSelector('#streams li[data-stream-id="dev-pub-main"]');
    await play(page, 'dev-pub-main');
    const stats = await waitFramesDecoded(page, 'dev-pub-main', 100, 90000);
    t.diagnostic(`browser player: ${JSON.stringify(stats)}`);
    assert.ok(stats.framesDecoded > 100, `frames decoded: ${stats.framesDecoded}`);
    assert.match(stats.codec ?? '', /H264/i);
    const size = await until('the video element to have the published size, playing', async () => {
      const v = await page.evaluate(() => {
        const el = document.querySelector('#remote-videos [data-stream-id="dev-pub-main"] video');
        return { w: el.videoWidth, h: el.videoHeight, playing: !el.paused };
      });
      return v.w === 640 && v.h === 480 && v.playing ? v : null;
    }, 30000, 500);
    assert.deepEqual(size, { w: 640, h: 480, playing: true });
    // Sound too (the device's 440 Hz tone).
    const audio = await until('audio from the device', async () => {
      const st = await page.evaluate(() => window.roomcamDebug.getStats('dev-pub-main'));
      return st.audioPackets > 0 ? st : null;
    }, 30000, 500);
    assert.ok(audio.audioPackets > 0);
    await until('the stats line', async () => {
      const t = await page.textContent('#remote-videos [data-stream-id="dev-pub-main"] [data-testid="remote-stats"]');
      return /640x480 · \d+ fps/.test(t) ? t : null;
    }, 15000, 500);
    await page.screenshot({ path: join(ARTIFACTS, 'browser-plays-device.png'), fullPage: true });
    // The device counts what it sent.
    const ds = await device.status();
    assert.ok(ds.publisher.video_frames_sent >= 100, `device sent ${ds.publisher.video_frames_sent} frames`);
  } catch (e) {
    throw await explain(e, 'device-publish', { viewer: page }, device);
  } finally {
    await browser.close();
    await device.stop();
  }
});

test('two browsers and a device: everyone sees everyone; a browser logs out, the others get DELETE', async () => {
  const room = 'dev-three-room';
  const device = await startDevice(server, { name: 'device-three', userId: 'dev3', roomId: room, streamId: 'dev3-main' });
  devices.push(device);
  const [ba, bb] = await Promise.all([launchBrowser('dev3-alice'), launchBrowser('dev3-bob')]);
  browsers.push(ba, bb);
  // autoplay=1: each page plays every stream of the room as it appears.
  const alice = await openPage(ba, server, 'device-three-alice', { autoplay: '1' });
  const bob = await openPage(bb, server, 'device-three-bob', { autoplay: '1' });
  try {
    await loginWithDevToken(alice, { roomId: room, userId: 'alice', userName: 'Alice' });
    await loginWithDevToken(bob, { roomId: room, userId: 'bob', userName: 'Bob' });
    await publish(alice, 'alice-cam');
    await publish(bob, 'bob-cam');

    // Each browser plays the device's stream and the other browser's.
    await Promise.all([
      waitFramesDecoded(alice, 'dev3-main', 30, 90000),
      waitFramesDecoded(alice, 'bob-cam', 30, 90000),
      waitFramesDecoded(bob, 'dev3-main', 30, 90000),
      waitFramesDecoded(bob, 'alice-cam', 30, 90000),
    ]);
    for (const p of [alice, bob]) {
      for (const u of ['alice', 'bob', 'dev3']) await p.waitForSelector(`#users li[data-user-id="${u}"]`);
    }
    // The device plays both browsers' streams.
    const s = await device.waitStatus('to decode frames of alice-cam and bob-cam', (st) =>
      ['alice-cam', 'bob-cam'].every((id) => (playerOf(st, id)?.video_frames_decoded ?? 0) >= 30), 90000);
    assert.deepEqual(s.players.map((p) => p.stream_id).sort(), ['alice-cam', 'bob-cam']);
    for (const p of s.players) assert.equal(p.state, 'PLAYING', JSON.stringify(p));
    assert.equal(s.publisher.state, 'PUBLISHING');
    await alice.screenshot({ path: join(ARTIFACTS, 'device-and-two-browsers-alice.png'), fullPage: true });

    // Bob logs out: Alice's tile and entries for bob go, and the device drops its player.
    await bob.click('#btn-logout');
    await bob.waitForFunction(() => document.getElementById('room-state').dataset.state === 'DISCONNECTED');
    await alice.waitForSelector('#remote-videos [data-stream-id="bob-cam"]', { state: 'detached', timeout: 15000 });
    await alice.waitForSelector('#streams li[data-stream-id="bob-cam"]', { state: 'detached', timeout: 15000 });
    await alice.waitForSelector('#users li[data-user-id="bob"]', { state: 'detached', timeout: 15000 });
    const log = (await alice.evaluate(() => window.roomcamDebug.log())).join('\n');
    assert.match(log, new RegExp(`"type":"streamUpdate","roomId":"${room}","updateType":"DELETE"`));
    assert.match(log, new RegExp(`"type":"userUpdate","roomId":"${room}","updateType":"DELETE"`));
    const after = await device.waitStatus('to drop the player of bob-cam', (st) => !playerOf(st, 'bob-cam'), 30000);
    assert.deepEqual(after.players.map((p) => p.stream_id), ['alice-cam']);
    // Alice and the device keep playing each other.
    const before = playerOf(after, 'alice-cam').video_frames_decoded;
    await device.waitStatus('to keep decoding alice-cam', (st) => playerOf(st, 'alice-cam')?.video_frames_decoded > before + 10, 30000);
    const aliceBefore = (await alice.evaluate(() => window.roomcamDebug.getStats('dev3-main'))).framesDecoded;
    await waitFramesDecoded(alice, 'dev3-main', aliceBefore + 10, 30000);

    // The device stops (SIGTERM): it logs out, and Alice gets DELETE for its stream and user.
    await device.stop();
    await alice.waitForSelector('#remote-videos [data-stream-id="dev3-main"]', { state: 'detached', timeout: 15000 });
    await alice.waitForSelector('#users li[data-user-id="dev3"]', { state: 'detached', timeout: 15000 });
    assert.equal(await alice.textContent('#stream-count'), '0'); // her own is not listed
  } catch (e) {
    throw await explain(e, 'device-three', { alice, bob }, device.proc.running ? device : null);
  } finally {
    await Promise.all([ba.close(), bb.close()]);
    await device.stop();
  }
});

test('`roomcam demo` prints a link that opens straight onto the device\'s stream', async () => {
  const [port, statusPort] = [await freePort(), await freePort()];
  // No desktop: the demo device then shows nothing (sink none) instead of opening a window.
  const demo = spawnLogged('device-demo', bin('roomcam'), ['demo', '--listen', `127.0.0.1:${port}`, '--status', `127.0.0.1:${statusPort}`], {
    env: { ROOMCAM_LOG: process.env.ROOMCAM_LOG || 'info', DISPLAY: '', WAYLAND_DISPLAY: '' },
  });
  const browser = await launchBrowser('device-demo');
  browsers.push(browser);
  let page;
  try {
    const link = await until('roomcam demo to print its watch link', async () => {
      if (!demo.running) throw new Error(`roomcam demo exited; see ${demo.logPath}`);
      const m = readFileSync(demo.logPath, 'utf8').match(/watch at once: (http:\S+)/);
      return m && m[1];
    }, 30000, 300);
    const u = new URL(link);
    assert.equal(u.host, `127.0.0.1:${port}`);
    assert.equal(u.searchParams.get('autologin'), '1');
    assert.equal(u.searchParams.get('autoplay'), '1');
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page._roomcamName = 'device-demo-page';
    const consoleLog = createWriteStream(join(LOGS, 'device-demo-page.console.log'));
    page.on('console', (m) => consoleLog.write(`[${m.type()}] ${m.text()}\n`));
    page.on('pageerror', (err) => consoleLog.write(`[pageerror] ${err.stack || err}\n`));
    page.on('close', () => consoleLog.end());
    await page.goto(link);
    await page.waitForSelector('#remote-videos [data-stream-id="demo-device-main"] video', { timeout: 60000 });
    await waitFramesDecoded(page, 'demo-device-main', 30, 90000);
    await page.screenshot({ path: join(ARTIFACTS, 'demo-link.png'), fullPage: true });
  } catch (e) {
    if (page) e.message += `\ndemo page: ${JSON.stringify(await pageDiagnostics(page), null, 1)}`;
    e.message += `\ndemo log: ${demo.logPath}`;
    throw e;
  } finally {
    await browser.close();
    // The demo stops on Ctrl-C (SIGINT): its device logs out, then the room service ends.
    if (demo.running) {
      demo.child.kill('SIGINT');
      const t = setTimeout(() => demo.child.kill('SIGKILL'), 15000);
      await demo.exited;
      clearTimeout(t);
    }
  }
});
