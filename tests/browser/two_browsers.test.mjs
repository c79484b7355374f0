// Two browsers in one room: each publishes, each sees and plays the other's stream; when one logs
// out the other gets the stream DELETE and the user DELETE (its tile goes, its lists update).
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  ARTIFACTS, startServer, launchBrowser, openPage, loginWithDevToken, publish, play,
  waitFramesDecoded, pageDiagnostics,
} from './helpers.mjs';

let server;
const browsers = [];

before(async () => {
  server = await startServer({ name: 'two_browsers-server' });
});

after(async () => {
  for (const b of browsers) await b.close().catch(() => {});
  if (server) await server.stop();
});

test('two browsers play each other; a logout removes the stream and the user at the other side', async () => {
  const [ba, bb] = await Promise.all([launchBrowser('alice'), launchBrowser('bob')]);
  browsers.push(ba, bb);
  const room = 'two-room';
  const alice = await openPage(ba, server, 'two_browsers-alice');
  const bob = await openPage(bb, server, 'two_browsers-bob');
  try {
    await loginWithDevToken(alice, { roomId: room, userId: 'alice', userName: 'Alice' });
    await loginWithDevToken(bob, { roomId: room, userId: 'bob', userName: 'Bob' });
    // Each sees the other in the user list.
    await alice.waitForSelector('#users li[data-user-id="bob"]');
    await bob.waitForSelector('#users li[data-user-id="alice"]');

    await publish(alice, 'alice-cam');
    await publish(bob, 'bob-cam');
    await alice.waitForSelector('#streams li[data-stream-id="bob-cam"]');
    await bob.waitForSelector('#streams li[data-stream-id="alice-cam"]');

    // Each plays the other: one peer connection per page now both sends and receives.
    await play(alice, 'bob-cam');
    await play(bob, 'alice-cam');
    const [sa, sb] = await Promise.all([
      waitFramesDecoded(alice, 'bob-cam', 30, 90000),
      waitFramesDecoded(bob, 'alice-cam', 30, 90000),
    ]);
    assert.ok(sa.width > 0 && sb.width > 0, `sizes ${sa.width}x${sa.height} and ${sb.width}x${sb.height}`);
    for (const p of [alice, bob]) {
      const s = await p.evaluate(() => window.roomcamDebug.state);
      assert.equal(s.connectionState, 'connected');
      assert.equal(s.publisher.state, 'PUBLISHING');
    }
    await alice.screenshot({ path: join(ARTIFACTS, 'two-browsers-alice.png'), fullPage: true });

    // Bob logs out: Alice's tile for bob-cam goes, and so do bob's stream and user entries.
    await bob.click('#btn-logout');
    await bob.waitForFunction(() => document.getElementById('room-state').dataset.state === 'DISCONNECTED');
    await alice.waitForSelector('#remote-videos [data-stream-id="bob-cam"]', { state: 'detached', timeout: 15000 });
    await alice.waitForSelector('#streams li[data-stream-id="bob-cam"]', { state: 'detached', timeout: 15000 });
    await alice.waitForSelector('#users li[data-user-id="bob"]', { state: 'detached', timeout: 15000 });
    assert.equal(await alice.textContent('#stream-count'), '0');
    assert.equal(await alice.textContent('#user-count'), '1'); // herself
    const log = (await alice.evaluate(() => window.roomcamDebug.log())).join('\n');
    assert.match(log, /"type":"streamUpdate","roomId":"two-room","updateType":"DELETE"/);
    assert.match(log, /"type":"userUpdate","roomId":"two-room","updateType":"DELETE"/);
    // Bob's page let go of everything; Alice still publishes, and Bob's side is clean.
    const bs = await bob.evaluate(() => window.roomcamDebug.state);
    assert.equal(bs.connectionState, null);
    assert.equal(await bob.locator('#remote-videos [data-testid="remote-tile"]').count(), 0);
    assert.equal((await alice.evaluate(() => window.roomcamDebug.state)).publisher.state, 'PUBLISHING');

    // Bob comes back and plays Alice again in a fresh session (a new peer connection).
    await bob.click('#btn-login');
    await bob.waitForFunction(() => document.getElementById('room-state').dataset.state === 'CONNECTED');
    await alice.waitForSelector('#users li[data-user-id="bob"]');
    await play(bob, 'alice-cam');
    await waitFramesDecoded(bob, 'alice-cam', 30, 90000);
    // Stop play removes the tile; the stream stays listed and can be played again.
    await bob.click('#streams li[data-stream-id="alice-cam"] button[data-testid="stop-play"]');
    await bob.waitForSelector('#remote-videos [data-stream-id="alice-cam"]', { state: 'detached' });
    await play(bob, 'alice-cam');
    await waitFramesDecoded(bob, 'alice-cam', 30, 90000);

    // A third page that plays everything at once: two plays queued back to back, negotiated one
    // after the other on one peer connection.
    await publish(bob, 'bob-cam2');
    const carol = await openPage(ba, server, 'two_browsers-carol', {
      room_id: room, user_id: 'carol', autologin: '1', autoplay: '1',
    });
    await carol.waitForSelector('#remote-videos [data-stream-id="alice-cam"] video');
    await carol.waitForSelector('#remote-videos [data-stream-id="bob-cam2"] video');
    await Promise.all([
      waitFramesDecoded(carol, 'alice-cam', 30, 90000),
      waitFramesDecoded(carol, 'bob-cam2', 30, 90000),
    ]);
    const transceivers = await carol.evaluate(() => window.roomcamDebug.pc.getTransceivers().length);
    assert.equal(transceivers, 4);
    await carol.close();
  } catch (e) {
    await alice.screenshot({ path: join(ARTIFACTS, 'two_browsers-failure-alice.png'), fullPage: true }).catch(() => {});
    await bob.screenshot({ path: join(ARTIFACTS, 'two_browsers-failure-bob.png'), fullPage: true }).catch(() => {});
    e.message += `\nalice: ${JSON.stringify(await pageDiagnostics(alice), null, 1)}` +
      `\nbob: ${JSON.stringify(await pageDiagnostics(bob), null, 1)}\nserver log: ${server.logPath}`;
    throw e;
  }
});
