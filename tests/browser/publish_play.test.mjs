// A browser publishes its (fake) camera and mic; a second browser plays the stream through the
// room service's SFU and decodes it at the published size.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  ARTIFACTS, startServer, launchBrowser, openPage, loginWithDevToken, publish, play,
  waitFramesDecoded, pageDiagnostics, until,
} from './helpers.mjs';

let server;
let browsers = [];

before(async () => {
  server = await startServer({ name: 'publish_play-server' });
});

after(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  if (server) await server.stop();
});

test('a browser publishes, a second browser plays it at the published size', async () => {
  const [pubBrowser, playBrowser] = await Promise.all([launchBrowser('publisher'), launchBrowser('player')]);
  browsers.push(pubBrowser, playBrowser);
  const room = 'pp-room';
  const publisher = await openPage(pubBrowser, server, 'publish_play-publisher');
  const player = await openPage(playBrowser, server, 'publish_play-player');
  try {
    await loginWithDevToken(publisher, { roomId: room, userId: 'web-pub', userName: 'Publisher' });
    await loginWithDevToken(player, { roomId: room, userId: 'web-play', userName: 'Player' });
    await publish(publisher, 'web-pub-cam');

    // The player hears of the stream and plays it.
    await player.waitForSelector('#streams li[data-stream-id="web-pub-cam"]');
    await play(player, 'web-pub-cam');
    const stats = await waitFramesDecoded(player, 'web-pub-cam', 100, 90000);
    assert.ok(stats.framesDecoded > 100, `frames decoded: ${stats.framesDecoded}`);
    assert.ok(stats.audioPackets > 0, `no audio arrived: ${JSON.stringify(stats)}`);

    // The published size: what the publisher's camera track delivers.
    const local = await publisher.evaluate(() => window.roomcamDebug.localStats());
    assert.ok(local.captureWidth > 0 && local.captureHeight > 0, `capture size ${JSON.stringify(local)}`);
    const size = await until('the played video to have the published size', async () => {
      const s = await player.evaluate(() => {
        const v = document.querySelector('#remote-videos [data-stream-id="web-pub-cam"] video');
        return { w: v.videoWidth, h: v.videoHeight, playing: !v.paused };
      });
      return s.w === local.captureWidth && s.h === local.captureHeight && s.playing ? s : null;
    }, 30000, 500);
    assert.equal(size.w, local.captureWidth);
    assert.equal(size.h, local.captureHeight);

    // The codec is H.264, and the stats line shows resolution, fps, bitrate and RTT.
    const shown = await until('the stats line', async () => {
      const t = await player.textContent('#remote-videos [data-stream-id="web-pub-cam"] [data-testid="remote-stats"]');
      return /\d+x\d+ · \d+ fps · \d+ kbit\/s · RTT \d+ ms · video\/H264/.test(t) ? t : null;
    }, 15000, 500);
    assert.match(shown, new RegExp(`${local.captureWidth}x${local.captureHeight}`));

    await player.screenshot({ path: join(ARTIFACTS, 'browser-plays-browser.png'), fullPage: true });
    await publisher.screenshot({ path: join(ARTIFACTS, 'browser-publishes.png'), fullPage: true });

    // The URL `roomcam demo` can print: the page fetches a dev token, logs in and plays what
    // is published, with no clicks.
    const viewer = await openPage(playBrowser, server, 'publish_play-viewer', {
      room_id: room, user_id: 'web-view', autologin: '1', autoplay: '1',
    });
    await viewer.waitForSelector('#remote-videos [data-stream-id="web-pub-cam"] video');
    await waitFramesDecoded(viewer, 'web-pub-cam', 30, 90000);
    await viewer.close();

    // Stop publish: the player's tile and list entry go; publishing again (the page reuses its
    // send transceivers) brings the stream back, and it plays again.
    await publisher.click('#btn-stop-publish');
    await publisher.waitForFunction(() => document.getElementById('publish-state').dataset.state === 'NO_PUBLISH');
    assert.equal(await publisher.isHidden('#local-tile'), true);
    await player.waitForSelector('#remote-videos [data-stream-id="web-pub-cam"]', { state: 'detached', timeout: 15000 });
    await player.waitForSelector('#streams li[data-stream-id="web-pub-cam"]', { state: 'detached', timeout: 15000 });
    await publish(publisher, 'web-pub-cam');
    await player.waitForSelector('#streams li[data-stream-id="web-pub-cam"]');
    await play(player, 'web-pub-cam');
    await waitFramesDecoded(player, 'web-pub-cam', 30, 90000);
    assert.equal(await publisher.evaluate(() => window.roomcamDebug.pc.getTransceivers().length), 2);
  } catch (e) {
    await player.screenshot({ path: join(ARTIFACTS, 'publish_play-failure-player.png'), fullPage: true }).catch(() => {});
    e.message += `\nplayer: ${JSON.stringify(await pageDiagnostics(player), null, 1)}` +
      `\npublisher: ${JSON.stringify(await pageDiagnostics(publisher), null, 1)}\nserver log: ${server.logPath}`;
    throw e;
  }
});
