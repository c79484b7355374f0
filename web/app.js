// roomcam browser client: speaks docs/protocol.md over one WebSocket, with one RTCPeerConnection
// per WebSocket session carrying everything this page publishes and plays. The client always
// offers; negotiations are serialized (one offer outstanding at a time). Plain standard APIs,
// so it runs in Chromium and Firefox alike. No dependencies, no build step.
'use strict';

(() => {
  const PROTOCOL_VERSION = 1;
  // Hang guards, not speed claims.
  const HELLO_TIMEOUT_MS = 10000;
  const REPLY_TIMEOUT_MS = 15000;
  const ICE_GATHER_TIMEOUT_MS = 5000;
  const LOG_MAX = 200;
  // The H.264 profiles the SFU forwards (packetization-mode 1): constrained baseline, baseline, main.
  const H264_PROFILES = ['42e01f', '42001f', '4d001f'];

  const $ = (id) => document.getElementById(id);
  const el = (tag, props = {}, ...children) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props)) {
      if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k in e) e[k] = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c);
    return e;
  };

  // ---------------------------------------------------------------------------------------
  // State
  const state = {
    roomState: 'DISCONNECTED', // DISCONNECTED | CONNECTING | CONNECTED
    roomId: null,
    userId: null,
    sessionId: null,
    tokenExpire: null,
    users: new Map(), // userId -> {userId, userName}
    streams: new Map(), // streamId -> {streamId, userId, userName, extraInfo}
    publisher: { state: 'NO_PUBLISH', streamId: null, media: null, transceivers: null },
    players: new Map(), // streamId -> {state, transceivers:{video,audio}, media, tile, stats}
    lastError: null, // {code, message, request, streamId}
    log: [],
  };

  let ws = null;
  let wsGeneration = 0;
  let heartbeatTimer = null;
  let statsTimer = null;
  let pc = null;
  // Waiters for server replies: {match(msg) -> bool, resolve, reject}.
  let waiters = [];
  // The negotiation queue: one offer outstanding at a time.
  let negotiationChain = Promise.resolve();
  // Free transceivers to reuse (kept 'inactive' between uses, so the SDP does not grow).
  const freeTransceivers = { sendonly: [], recvonly: [] };

  // ---------------------------------------------------------------------------------------
  // UI helpers
  function logLine(dir, text) {
    const line = `${new Date().toISOString().slice(11, 23)} ${dir} ${text}`;
    state.log.push(line);
    if (dir === '!!') console.warn(line);
    if (state.log.length > LOG_MAX) state.log.shift();
    const ol = $('log');
    ol.prepend(el('li', { textContent: line }));
    while (ol.children.length > LOG_MAX) ol.lastChild.remove();
  }

  function showError(code, message, extra = {}) {
    state.lastError = { code, message, ...extra };
    const e = $('error');
    e.hidden = false;
    e.dataset.code = code == null ? '' : String(code);
    e.textContent = code == null ? message : `${code} ${message}`;
    logLine('!!', e.textContent);
  }

  function clearError() {
    state.lastError = null;
    const e = $('error');
    e.hidden = true;
    e.textContent = '';
    e.dataset.code = '';
  }

  function notice(id, text) {
    const n = $(id);
    n.hidden = !text;
    n.textContent = text || '';
  }

  function setRoomState(s) {
    state.roomState = s;
    const e = $('room-state');
    e.textContent = s;
    e.dataset.state = s;
    updateButtons();
  }

  function setPublishState(s) {
    state.publisher.state = s;
    const e = $('publish-state');
    e.textContent = s;
    e.dataset.state = s;
    updateButtons();
  }

  function canCapture() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  function updateButtons() {
    const connected = state.roomState === 'CONNECTED';
    const idle = state.roomState === 'DISCONNECTED';
    $('btn-login').disabled = !idle;
    $('btn-logout').disabled = idle;
    $('btn-publish').disabled = !connected || state.publisher.state !== 'NO_PUBLISH' || !canCapture() || !h264.send;
    $('btn-stop-publish').disabled = !connected || state.publisher.state !== 'PUBLISHING';
    for (const id of ['app-id', 'room-id', 'user-id', 'user-name']) $(id).disabled = !idle;
    renderStreams();
  }

  // ---------------------------------------------------------------------------------------
  // Capability checks
  const h264 = { send: false, recv: false };

  function h264Codecs(caps) {
    return ((caps && caps.codecs) || []).filter((c) => {
      if (c.mimeType.toLowerCase() !== 'video/h264') return false;
      const f = (c.sdpFmtpLine || '').toLowerCase();
      const m = /profile-level-id=([0-9a-f]{6})/.exec(f);
      return f.includes('packetization-mode=1') && m && H264_PROFILES.some((p) => p.slice(0, 4) === m[1].slice(0, 4));
    });
  }

  function checkCapabilities() {
    const notes = [];
    const hasRtc = typeof RTCPeerConnection === 'function';
    if (!hasRtc) notes.push('This browser has no WebRTC (RTCPeerConnection): it cannot publish or play.');
    if (hasRtc && window.RTCRtpSender && RTCRtpSender.getCapabilities) {
      h264.send = h264Codecs(RTCRtpSender.getCapabilities('video')).length > 0;
      h264.recv = h264Codecs(RTCRtpReceiver.getCapabilities('video')).length > 0;
    } else if (hasRtc) {
      // No capability API: try and let the server say so (error 1006002) if it fails.
      h264.send = h264.recv = true;
    }
    if (hasRtc && (!h264.send || !h264.recv)) {
      const what = !h264.send && !h264.recv ? 'send or receive' : !h264.send ? 'send' : 'receive';
      notes.push(
        `This browser cannot ${what} H.264 (packetization-mode 1, constrained baseline or main profile), ` +
          'the only video codec roomcam forwards. Use a browser with H.264 (Chromium, Chrome, Firefox with OpenH264, Safari).',
      );
    }
    notice('notice-h264', notes.join(' '));
    const loopback = ['localhost', '127.0.0.1', '[::1]', '::1'].includes(location.hostname);
    if (!window.isSecureContext && !loopback) {
      notice(
        'notice-insecure',
        `Camera and microphone need HTTPS: this page was loaded over plain HTTP from ${location.host}, so ` +
          'the browser does not allow publishing here (playing works). Serve the room service with [tls] ' +
          '(or open it as http://localhost on the same machine).',
      );
    } else if (!canCapture()) {
      notice('notice-insecure', 'This browser exposes no camera or microphone (navigator.mediaDevices): publishing is off.');
    }
  }

  // Puts the H.264 codecs the SFU forwards first on a video transceiver (others stay, after them).
  function preferH264(transceiver, direction) {
    if (!transceiver.setCodecPreferences) return;
    const caps = direction === 'sendonly' ? RTCRtpSender.getCapabilities('video') : RTCRtpReceiver.getCapabilities('video');
    if (!caps) return;
    const rank = (c) => {
      if (c.mimeType.toLowerCase() !== 'video/h264') return 100;
      const f = (c.sdpFmtpLine || '').toLowerCase();
      if (!f.includes('packetization-mode=1')) return 50;
      const m = /profile-level-id=([0-9a-f]{6})/.exec(f);
      const i = m ? H264_PROFILES.findIndex((p) => p.slice(0, 4) === m[1].slice(0, 4)) : -1;
      return i < 0 ? 50 : i;
    };
    const codecs = caps.codecs.slice().sort((a, b) => rank(a) - rank(b));
    try {
      transceiver.setCodecPreferences(codecs);
    } catch (e) {
      logLine('!!', `setCodecPreferences: ${e}`);
    }
  }

  // ---------------------------------------------------------------------------------------
  // Signalling
  function send(msg) {
    if (!ws || ws.readyState !== WebSocket.OPEN) throw new Error('not connected');
    if (msg.type !== 'heartbeat') logLine('>>', summarize(msg));
    ws.send(JSON.stringify(msg));
  }

  function summarize(msg) {
    const m = { ...msg };
    if (m.sdp) m.sdp = `<${m.sdp.length} bytes of SDP>`;
    if (m.token) m.token = `${m.token.slice(0, 8)}…`;
    return JSON.stringify(m);
  }

  // Resolves with the first message for which `match` is true; rejects on an `error` for which
  // `matchError` is true (an Error with .code), or after a timeout.
  function waitFor(match, matchError, timeoutMs = REPLY_TIMEOUT_MS, what = 'reply') {
    return new Promise((resolve, reject) => {
      const w = { match, matchError, resolve, reject };
      w.timer = setTimeout(() => {
        waiters = waiters.filter((x) => x !== w);
        reject(Object.assign(new Error(`no ${what} from the server within ${timeoutMs / 1000} s`), { code: null }));
      }, timeoutMs);
      waiters.push(w);
    });
  }

  function failWaiters(err) {
    const ws_ = waiters;
    waiters = [];
    for (const w of ws_) {
      clearTimeout(w.timer);
      w.reject(err);
    }
  }

  function dispatchWaiters(msg) {
    for (const w of waiters.slice()) {
      let hit = null;
      if (msg.type === 'error' && w.matchError && w.matchError(msg)) hit = 'reject';
      else if (w.match(msg)) hit = 'resolve';
      if (!hit) continue;
      waiters = waiters.filter((x) => x !== w);
      clearTimeout(w.timer);
      if (hit === 'resolve') w.resolve(msg);
      else w.reject(Object.assign(new Error(msg.message), { code: msg.code, serverError: msg }));
      return true;
    }
    return false;
  }

  function wsUrl() {
    return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
  }

  async function login() {
    clearError();
    const appId = Number($('app-id').value.trim());
    const roomId = $('room-id').value.trim();
    const userId = $('user-id').value.trim();
    const userName = $('user-name').value.trim();
    const token = $('token').value.trim();
    if (!Number.isInteger(appId) || appId < 0 || appId > 0xffffffff) return showError(null, 'App id must be a number (u32).');
    if (!roomId || !userId) return showError(null, 'Room id and user id are required.');
    if (!token) return showError(null, 'A token is required: paste one, or use "Get dev token" on a development server.');
    setRoomState('CONNECTING');
    const gen = ++wsGeneration;
    try {
      const hello = await openSocket(gen);
      startHeartbeat(hello.heartbeatIntervalMs);
      send({ type: 'login', version: PROTOCOL_VERSION, appId, roomId, userId, userName, token, userUpdates: true });
      const res = await waitFor(
        (m) => m.type === 'loginResult',
        (m) => m.request === 'login' || m.request == null,
        REPLY_TIMEOUT_MS,
        'loginResult',
      );
      if (gen !== wsGeneration) return;
      state.roomId = res.roomId;
      state.userId = userId;
      state.sessionId = res.sessionId;
      state.tokenExpire = res.tokenExpire ?? null;
      state.users.clear();
      state.streams.clear();
      for (const u of res.users) state.users.set(u.userId, u);
      for (const s of res.streams) state.streams.set(s.streamId, s);
      setRoomState('CONNECTED');
      if (!$('stream-id').value.trim()) $('stream-id').value = defaultStreamId(userId);
      renderUsers();
      renderStreams();
      startStats();
      for (const s of res.streams) maybeAutoPlay(s.streamId);
    } catch (e) {
      if (gen !== wsGeneration) return;
      showError(e.code ?? null, e.message);
      teardown('login failed');
    }
  }

  function defaultStreamId(userId) {
    const clean = userId.replace(/[^A-Za-z0-9_-]/g, '_');
    return `${clean}-web`.slice(0, 256);
  }

  function openSocket(gen) {
    return new Promise((resolve, reject) => {
      let settled = false;
      const sock = new WebSocket(wsUrl());
      ws = sock;
      const timer = setTimeout(() => {
        if (!settled) {
          settled = true;
          reject(new Error(`no hello from ${wsUrl()} within ${HELLO_TIMEOUT_MS / 1000} s`));
        }
      }, HELLO_TIMEOUT_MS);
      sock.onmessage = (ev) => {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          logLine('<<', `unparsable frame: ${String(ev.data).slice(0, 100)}`);
          return;
        }
        if (!settled && msg.type === 'hello') {
          settled = true;
          clearTimeout(timer);
          logLine('<<', summarize(msg));
          if (msg.version !== PROTOCOL_VERSION) {
            reject(new Error(`the server speaks protocol version ${msg.version}; this page speaks ${PROTOCOL_VERSION}`));
            return;
          }
          resolve(msg);
          return;
        }
        if (gen === wsGeneration) onMessage(msg);
      };
      sock.onerror = () => {
        if (!settled) {
          settled = true;
          clearTimeout(timer);
          reject(new Error(`cannot connect to ${wsUrl()}`));
        }
      };
      sock.onclose = (ev) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(new Error(`the connection to ${wsUrl()} closed (${ev.code})`));
        }
        if (gen !== wsGeneration) return;
        logLine('--', `socket closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ''})`);
        if (state.roomState !== 'DISCONNECTED') {
          showError(1005003, 'the connection to the room service closed');
          teardown('socket closed');
        }
      };
    });
  }

  function startHeartbeat(intervalMs) {
    clearInterval(heartbeatTimer);
    const every = Math.max(1000, Number(intervalMs) || 10000);
    heartbeatTimer = setInterval(() => {
      try {
        send({ type: 'heartbeat' });
      } catch {
        /* the close handler cleans up */
      }
    }, every);
  }

  function onMessage(msg) {
    if (msg.type !== 'heartbeatAck') logLine('<<', summarize(msg));
    const waited = dispatchWaiters(msg);
    switch (msg.type) {
      case 'userUpdate':
        for (const u of msg.users) {
          if (msg.updateType === 'ADD') state.users.set(u.userId, u);
          else state.users.delete(u.userId);
        }
        renderUsers();
        break;
      case 'streamUpdate':
        for (const s of msg.streams) {
          if (msg.updateType === 'ADD') {
            state.streams.set(s.streamId, s);
            maybeAutoPlay(s.streamId);
          } else {
            state.streams.delete(s.streamId);
            if (state.players.has(s.streamId)) releasePlayer(s.streamId, true);
          }
        }
        renderStreams();
        break;
      case 'playStopped':
        if (state.players.has(msg.streamId)) releasePlayer(msg.streamId, true);
        break;
      case 'candidate':
        if (pc && msg.candidate) {
          const c = { candidate: msg.candidate.replace(/^a=/, '') };
          if (msg.sdpMid != null) c.sdpMid = msg.sdpMid;
          else c.sdpMLineIndex = 0;
          pc.addIceCandidate(c).catch((e) =>
            logLine('!!', `remote candidate refused: ${e}`),
          );
        }
        break;
      case 'tokenWillExpire':
        try {
          send({ type: 'renewToken' });
        } catch {
          /* closing */
        }
        break;
      case 'tokenRenewed':
        if (msg.token) $('token').value = msg.token;
        state.tokenExpire = msg.expire;
        break;
      case 'kicked':
        showError(msg.code, msg.reason);
        teardown('kicked');
        break;
      case 'error':
        if (!waited) showError(msg.code, msg.message, { request: msg.request, streamId: msg.streamId });
        // A player that was playing lost its stream (a pending play handles its own errors).
        if (msg.streamId && msg.request === 'play' && state.players.get(msg.streamId)?.state === 'PLAYING') {
          releasePlayer(msg.streamId, true);
        }
        break;
      default:
        break; // loginResult, answers and results are handled by their waiters; unknown types are ignored
    }
  }

  async function logout() {
    if (state.roomState === 'CONNECTED' && state.roomId) {
      try {
        send({ type: 'logout', roomId: state.roomId });
        await waitFor((m) => m.type === 'logoutResult', (m) => m.request === 'logout', 5000, 'logoutResult');
      } catch (e) {
        logLine('!!', `logout: ${e.message}`);
      }
    }
    teardown('logout');
  }

  // Releases everything of this session: socket, peer connection, tracks, tiles.
  function teardown(why) {
    wsGeneration++;
    clearInterval(heartbeatTimer);
    heartbeatTimer = null;
    stopStats();
    failWaiters(Object.assign(new Error(`session ended (${why})`), { code: null }));
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
      ws = null;
    }
    for (const id of [...state.players.keys()]) releasePlayer(id, false);
    stopLocalMedia();
    if (pc) {
      pc.close();
      pc = null;
    }
    freeTransceivers.sendonly = [];
    freeTransceivers.recvonly = [];
    negotiationChain = Promise.resolve();
    state.users.clear();
    state.streams.clear();
    state.roomId = null;
    state.sessionId = null;
    setPublishState('NO_PUBLISH');
    setRoomState('DISCONNECTED');
    renderUsers();
    renderStreams();
  }

  // ---------------------------------------------------------------------------------------
  // WebRTC: one peer connection per signalling session, serialized negotiations.
  function ensurePc() {
    if (pc) return pc;
    pc = new RTCPeerConnection({ iceServers: [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    pc.onconnectionstatechange = () => {
      logLine('--', `peer connection ${pc && pc.connectionState}`);
      if (pc && pc.connectionState === 'failed') showError(1006004, 'media session failed (ICE or DTLS)');
    };
    pc.onicecandidate = (ev) => {
      // Offers are sent after gathering completes, so they carry the candidates; a late one is trickled.
      if (ev.candidate && ev.candidate.candidate && pc._offerSent) {
        try {
          send({ type: 'candidate', candidate: ev.candidate.candidate, sdpMid: ev.candidate.sdpMid ?? undefined });
        } catch {
          /* closing */
        }
      }
    };
    return pc;
  }

  function waitGathering(p) {
    if (p.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (p.iceGatheringState === 'complete') finish();
      };
      const finish = () => {
        clearTimeout(timer);
        p.removeEventListener('icegatheringstatechange', done);
        resolve();
      };
      const timer = setTimeout(finish, ICE_GATHER_TIMEOUT_MS);
      p.addEventListener('icegatheringstatechange', done);
    });
  }

  // Runs `job` in the negotiation queue. `job(p)` prepares transceivers and returns
  // {request: async (mids) => ..., rollback: () => ...} or null when there is nothing to ask.
  function negotiate(label, job) {
    const gen = wsGeneration;
    const run = async () => {
      if (gen !== wsGeneration) throw new Error('session ended');
      const p = ensurePc();
      const step = await job(p);
      let undo = step && step.rollback;
      try {
        const offer = await p.createOffer();
        await p.setLocalDescription(offer);
        // publish/play name the mids of this offer; the server must accept them before the offer.
        if (step && step.request) await step.request();
        undo = null; // the server now counts on these transceivers
        await waitGathering(p);
        send({ type: 'offer', sdp: p.localDescription.sdp });
        p._offerSent = true;
        const answer = await waitFor((m) => m.type === 'answer', (m) => m.request === 'offer', REPLY_TIMEOUT_MS, `answer (${label})`);
        if (gen !== wsGeneration || p.signalingState === 'closed') return;
        await p.setRemoteDescription({ type: 'answer', sdp: answer.sdp });
      } catch (e) {
        // Refused (publish/play error, offer error, unusable answer): undo this offer so that
        // the next negotiation starts from the last agreed state.
        if (p.signalingState === 'have-local-offer') await p.setLocalDescription({ type: 'rollback' }).catch(() => {});
        if (undo) undo();
        throw e;
      }
    };
    const result = negotiationChain.then(run);
    negotiationChain = result.catch(() => {});
    return result;
  }

  // A transceiver for `direction` ('sendonly' | 'recvonly') and `kind`, reused when one is free.
  function takeTransceiver(p, kind, direction, track) {
    const pool = freeTransceivers[direction];
    const i = pool.findIndex((t) => t.receiver.track.kind === kind && !t.stopped && t.currentDirection !== 'stopped');
    let t;
    if (i >= 0) {
      t = pool.splice(i, 1)[0];
      t._roomcamFree = false;
      t.direction = direction;
      if (direction === 'sendonly') t.sender.replaceTrack(track).catch((e) => logLine('!!', `replaceTrack: ${e}`));
    } else {
      t = p.addTransceiver(track || kind, { direction });
      if (kind === 'video') preferH264(t, direction);
    }
    return t;
  }

  function giveBack(direction, transceivers) {
    for (const t of transceivers) {
      // Idempotent: a transceiver can be given back by a stop and by an undone negotiation.
      if (!t || t._roomcamFree) continue;
      t._roomcamFree = true;
      try {
        if (direction === 'sendonly' && pc && pc.signalingState !== 'closed') t.sender.replaceTrack(null).catch(() => {});
        if (pc && pc.signalingState !== 'closed') t.direction = 'inactive';
        if (t.mid != null) freeTransceivers[direction].push(t);
        else if (t.stop) t.stop(); // never negotiated: drop it
      } catch (e) {
        logLine('!!', `transceiver: ${e}`);
      }
    }
  }

  // Renegotiates after transceivers went inactive (stop publish / stop play).
  function renegotiateQuietly(label) {
    if (!pc || state.roomState !== 'CONNECTED') return;
    negotiate(label, async () => null).catch((e) => logLine('!!', `renegotiation (${label}): ${e.message}`));
  }

  // ---------------------------------------------------------------------------------------
  // Publishing
  async function publish() {
    clearError();
    const streamId = $('stream-id').value.trim();
    if (!streamId) return showError(null, 'A stream id is required.');
    if (!canCapture()) return showError(null, 'This page cannot use the camera here (see the notice above).');
    setPublishState('PUBLISH_REQUESTING');
    let media;
    try {
      media = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
        audio: { echoCancellation: true, noiseSuppression: true },
      });
    } catch (e) {
      setPublishState('NO_PUBLISH');
      return showError(null, `Camera/microphone not available: ${e.name}: ${e.message}`);
    }
    if (state.roomState !== 'CONNECTED') {
      media.getTracks().forEach((t) => t.stop());
      setPublishState('NO_PUBLISH');
      return;
    }
    const pub = state.publisher;
    pub.streamId = streamId;
    pub.media = media;
    $('local-video').srcObject = media;
    $('local-stream-id').textContent = streamId;
    $('local-tile').hidden = false;
    $('local-tile').dataset.streamId = streamId;
    let accepted = false;
    const vTrack = media.getVideoTracks()[0] || null;
    const aTrack = media.getAudioTracks()[0] || null;
    try {
      await negotiate(`publish ${streamId}`, async (p) => {
        const video = vTrack ? takeTransceiver(p, 'video', 'sendonly', vTrack) : null;
        const audio = aTrack ? takeTransceiver(p, 'audio', 'sendonly', aTrack) : null;
        pub.transceivers = { video, audio };
        if (video) keepResolution(video.sender);
        return {
          request: async () => {
            const mids = {};
            if (video) mids.video = video.mid;
            if (audio) mids.audio = audio.mid;
            send({ type: 'publish', streamId, mids });
            await waitFor(
              (m) => m.type === 'publishResult' && m.streamId === streamId,
              (m) => m.request === 'publish',
              REPLY_TIMEOUT_MS,
              'publishResult',
            );
            accepted = true;
          },
          rollback: () => {
            giveBack('sendonly', [video, audio]);
            pub.transceivers = null;
          },
        };
      });
      if (state.publisher.media === media) setPublishState('PUBLISHING');
    } catch (e) {
      if (state.publisher.media === media) {
        stopLocalMedia();
        setPublishState('NO_PUBLISH');
      }
      // The room took the stream but the media session refused it: take it back out.
      if (accepted && state.roomState === 'CONNECTED') {
        try {
          send({ type: 'stopPublish', streamId });
        } catch {
          /* closing */
        }
      }
      if (!e.message.startsWith('session ended')) showError(e.code ?? null, e.message);
    }
  }

  // Asks the encoder to keep the capture size and drop frame rate instead under pressure,
  // so that the picture a room shows stays sharp. Best effort (not every browser has it).
  function keepResolution(sender) {
    try {
      const params = sender.getParameters();
      params.degradationPreference = 'maintain-resolution';
      sender.setParameters(params).catch(() => {});
    } catch {
      /* unsupported */
    }
  }

  function stopLocalMedia() {
    const pub = state.publisher;
    if (pub.media) pub.media.getTracks().forEach((t) => t.stop());
    pub.media = null;
    if (pub.transceivers) giveBack('sendonly', [pub.transceivers.video, pub.transceivers.audio]);
    pub.transceivers = null;
    pub.streamId = null;
    $('local-video').srcObject = null;
    $('local-tile').hidden = true;
    $('local-stats').textContent = '';
  }

  async function stopPublish() {
    const streamId = state.publisher.streamId;
    if (!streamId) return;
    try {
      send({ type: 'stopPublish', streamId });
      await waitFor(
        (m) => m.type === 'stopPublishResult' && m.streamId === streamId,
        (m) => m.request === 'stopPublish',
        REPLY_TIMEOUT_MS,
        'stopPublishResult',
      );
    } catch (e) {
      showError(e.code ?? null, e.message);
    }
    stopLocalMedia();
    setPublishState('NO_PUBLISH');
    renegotiateQuietly('after stop publish');
  }

  // ---------------------------------------------------------------------------------------
  // Playing
  function maybeAutoPlay(streamId) {
    if ($('auto-play').checked && !state.players.has(streamId)) play(streamId);
  }

  async function play(streamId) {
    if (state.players.has(streamId) || state.roomState !== 'CONNECTED') return;
    if (!h264.recv) showError(null, 'This browser cannot receive H.264: the video will not play (see the notice above).');
    const player = { state: 'PLAY_REQUESTING', transceivers: null, media: null, tile: null, stats: null, prev: null };
    let accepted = false;
    state.players.set(streamId, player);
    renderStreams();
    try {
      await negotiate(`play ${streamId}`, async (p) => {
        const video = takeTransceiver(p, 'video', 'recvonly');
        const audio = takeTransceiver(p, 'audio', 'recvonly');
        player.transceivers = { video, audio };
        return {
          request: async () => {
            send({ type: 'play', streamId, mids: { video: video.mid, audio: audio.mid } });
            await waitFor(
              (m) => m.type === 'playResult' && m.streamId === streamId,
              (m) => m.request === 'play' && (m.streamId == null || m.streamId === streamId),
              REPLY_TIMEOUT_MS,
              'playResult',
            );
            accepted = true;
          },
          rollback: () => {
            giveBack('recvonly', [video, audio]);
            player.transceivers = null;
          },
        };
      });
      if (state.players.get(streamId) !== player) return;
      player.state = 'PLAYING';
      player.media = new MediaStream([player.transceivers.video.receiver.track, player.transceivers.audio.receiver.track]);
      addTile(streamId, player);
      renderStreams();
    } catch (e) {
      if (state.players.get(streamId) === player) {
        state.players.delete(streamId);
        renderStreams();
        if (player.transceivers) giveBack('recvonly', [player.transceivers.video, player.transceivers.audio]);
        player.transceivers = null;
      }
      if (accepted && state.roomState === 'CONNECTED') {
        try {
          send({ type: 'stopPlay', streamId });
        } catch {
          /* closing */
        }
      }
      if (!e.message.startsWith('session ended')) showError(e.code ?? null, e.message, { streamId });
    }
  }

  async function stopPlay(streamId) {
    if (!state.players.has(streamId)) return;
    try {
      send({ type: 'stopPlay', streamId });
      await waitFor(
        (m) => m.type === 'playStopped' && m.streamId === streamId,
        (m) => m.request === 'stopPlay',
        REPLY_TIMEOUT_MS,
        'playStopped',
      );
    } catch (e) {
      if (e.code !== 1004002) showError(e.code ?? null, e.message);
    }
    releasePlayer(streamId, true);
  }

  // Forgets a player: its tile goes, its transceivers go back to the pool (inactive).
  function releasePlayer(streamId, renegotiate) {
    const player = state.players.get(streamId);
    if (!player) return;
    state.players.delete(streamId);
    if (player.tile) player.tile.remove();
    if (player.transceivers) {
      giveBack('recvonly', [player.transceivers.video, player.transceivers.audio]);
      player.transceivers = null;
      if (renegotiate) renegotiateQuietly(`after stop play ${streamId}`);
    }
    renderStreams();
  }

  function addTile(streamId, player) {
    const info = state.streams.get(streamId);
    const video = el('video', { autoplay: true, playsInline: true, dataset: { testid: 'remote-video' } });
    video.srcObject = player.media;
    const stats = el('span', { className: 'stats', dataset: { testid: 'remote-stats' } });
    const label = el('span', { className: 'label', textContent: `${streamId}${info ? ` from ${info.userName || info.userId}` : ''}` });
    const tile = el(
      'figure',
      { className: 'tile remote', dataset: { streamId, testid: 'remote-tile' } },
      video,
      el('figcaption', {}, label, stats),
    );
    player.tile = tile;
    player.statsEl = stats;
    $('remote-videos').append(tile);
    video.play().catch(() => {
      // Autoplay with sound is blocked until the person interacts: play muted, offer unmute.
      video.muted = true;
      video.play().catch(() => {});
      const b = el('button', { className: 'unmute', textContent: 'Unmute', type: 'button' });
      b.onclick = () => {
        video.muted = false;
        video.play().catch(() => {});
        b.remove();
      };
      tile.append(b);
    });
  }

  // ---------------------------------------------------------------------------------------
  // Stats: per player and for the local publisher, refreshed every second.
  function startStats() {
    stopStats();
    statsTimer = setInterval(refreshStats, 1000);
  }

  function stopStats() {
    clearInterval(statsTimer);
    statsTimer = null;
  }

  // Reduces a getStats() report to one summary for one direction ('inbound-rtp' | 'outbound-rtp').
  function summarizeReport(report, rtpType, prev) {
    const out = { at: performance.now(), width: 0, height: 0, fps: 0, framesDecoded: 0, framesEncoded: 0, packetsLost: 0, bytes: 0, audioBytes: 0, audioPackets: 0, bitrateKbps: 0, rttMs: null, codec: null, connected: false };
    let codecId = null;
    report.forEach((s) => {
      if (s.type === rtpType && s.kind === 'video') {
        out.width = s.frameWidth || 0;
        out.height = s.frameHeight || 0;
        out.fps = s.framesPerSecond || 0;
        out.framesDecoded = s.framesDecoded || 0;
        out.framesEncoded = s.framesEncoded || 0;
        out.packetsLost = s.packetsLost || 0;
        out.bytes += rtpType === 'inbound-rtp' ? s.bytesReceived || 0 : s.bytesSent || 0;
        codecId = s.codecId;
      } else if (s.type === rtpType && s.kind === 'audio') {
        out.audioBytes += rtpType === 'inbound-rtp' ? s.bytesReceived || 0 : s.bytesSent || 0;
        out.audioPackets += rtpType === 'inbound-rtp' ? s.packetsReceived || 0 : s.packetsSent || 0;
      } else if (s.type === 'candidate-pair' && (s.nominated || s.selected) && s.state === 'succeeded') {
        out.connected = true;
        if (typeof s.currentRoundTripTime === 'number') out.rttMs = Math.round(s.currentRoundTripTime * 1000);
      } else if (s.type === 'remote-inbound-rtp' && s.kind === 'video' && out.rttMs == null && typeof s.roundTripTime === 'number') {
        out.rttMs = Math.round(s.roundTripTime * 1000);
      }
    });
    if (codecId && report.get(codecId)) {
      const c = report.get(codecId);
      out.codec = `${c.mimeType}${c.sdpFmtpLine ? ` ${/profile-level-id=([0-9a-f]+)/i.exec(c.sdpFmtpLine)?.[1] ?? ''}` : ''}`.trim();
    }
    if (prev && out.at > prev.at) {
      const bits = (out.bytes + out.audioBytes - prev.bytes - prev.audioBytes) * 8;
      out.bitrateKbps = Math.max(0, Math.round(bits / (out.at - prev.at)));
    }
    return out;
  }

  function formatStats(s) {
    if (!s) return '';
    const res = s.width ? `${s.width}x${s.height}` : 'no video yet';
    const rtt = s.rttMs == null ? '–' : `${s.rttMs} ms`;
    return `${res} · ${Math.round(s.fps)} fps · ${s.bitrateKbps} kbit/s · RTT ${rtt}${s.codec ? ` · ${s.codec}` : ''}`;
  }

  async function playerStats(streamId) {
    const player = state.players.get(streamId);
    if (!player || !player.transceivers || !pc) return null;
    const [v, a] = await Promise.all([player.transceivers.video.receiver.getStats(), player.transceivers.audio.receiver.getStats()]);
    const merged = new Map();
    v.forEach((s, k) => merged.set(k, s));
    a.forEach((s, k) => merged.set(k, s));
    const s = summarizeReport(merged, 'inbound-rtp', player.prev);
    const video = player.tile && player.tile.querySelector('video');
    if (video) {
      s.videoWidth = video.videoWidth;
      s.videoHeight = video.videoHeight;
    }
    player.prev = s;
    player.stats = s;
    return s;
  }

  async function localStats() {
    const pub = state.publisher;
    if (!pub.transceivers || !pc) return null;
    const parts = await Promise.all(
      [pub.transceivers.video, pub.transceivers.audio].filter(Boolean).map((t) => t.sender.getStats()),
    );
    const merged = new Map();
    for (const r of parts) r.forEach((s, k) => merged.set(k, s));
    const s = summarizeReport(merged, 'outbound-rtp', pub.prev);
    const track = pub.media && pub.media.getVideoTracks()[0];
    if (track) {
      const set = track.getSettings();
      s.captureWidth = set.width;
      s.captureHeight = set.height;
    }
    pub.prev = s;
    pub.stats = s;
    return s;
  }

  async function refreshStats() {
    for (const [id, player] of state.players) {
      if (player.state !== 'PLAYING') continue;
      try {
        const s = await playerStats(id);
        if (s && player.statsEl) {
          player.statsEl.textContent = formatStats(s);
          player.tile.dataset.framesDecoded = String(s.framesDecoded);
        }
      } catch {
        /* the player went away meanwhile */
      }
    }
    try {
      const s = await localStats();
      if (s) $('local-stats').textContent = formatStats(s);
    } catch {
      /* stopped meanwhile */
    }
  }

  // ---------------------------------------------------------------------------------------
  // Rendering the room
  function renderUsers() {
    const ul = $('users');
    ul.replaceChildren();
    if (state.userId && state.roomState === 'CONNECTED') {
      ul.append(el('li', { dataset: { userId: state.userId, self: 'true' } }, el('span', { className: 'id', textContent: `${state.userId} (you)` })));
    }
    for (const u of state.users.values()) {
      const name = u.userName && u.userName !== u.userId ? ` — ${u.userName}` : '';
      ul.append(el('li', { dataset: { userId: u.userId } }, el('span', { className: 'id', textContent: `${u.userId}${name}` })));
    }
    $('user-count').textContent = String(ul.children.length);
  }

  function renderStreams() {
    const ul = $('streams');
    if (!ul) return;
    ul.replaceChildren();
    for (const s of state.streams.values()) {
      const player = state.players.get(s.streamId);
      const pstate = player ? player.state : 'NO_PLAY';
      const playBtn = el('button', { type: 'button', textContent: 'Play', dataset: { testid: 'play', streamId: s.streamId } });
      playBtn.disabled = !!player || state.roomState !== 'CONNECTED';
      playBtn.onclick = () => play(s.streamId);
      const stopBtn = el('button', { type: 'button', textContent: 'Stop', dataset: { testid: 'stop-play', streamId: s.streamId } });
      stopBtn.disabled = !player || player.state !== 'PLAYING';
      stopBtn.onclick = () => stopPlay(s.streamId);
      ul.append(
        el(
          'li',
          { dataset: { streamId: s.streamId, userId: s.userId, playState: pstate } },
          el('span', { className: 'id', textContent: `${s.streamId} (${s.userName || s.userId})` }),
          el('span', { className: 'state', textContent: pstate }),
          playBtn,
          stopBtn,
        ),
      );
    }
    $('stream-count').textContent = String(state.streams.size);
  }

  // ---------------------------------------------------------------------------------------
  // Dev tokens (development servers only)
  async function getDevToken() {
    clearError();
    notice('notice-devtoken', '');
    const appId = $('app-id').value.trim();
    const userId = $('user-id').value.trim();
    const roomId = $('room-id').value.trim();
    if (!appId || !userId) return showError(null, 'Fill in app id and user id first.');
    const q = new URLSearchParams({ app_id: appId, user_id: userId, room_id: roomId });
    let res;
    try {
      res = await fetch(`/api/dev-token?${q}`, { cache: 'no-store' });
    } catch (e) {
      return showError(null, `dev token request failed: ${e.message}`);
    }
    const body = await res.text();
    if (res.status === 404) {
      notice(
        'notice-devtoken',
        'The dev token endpoint is off on this server (dev_token_endpoint = false). Paste a token from your ' +
          'backend or from `roomcam-server token --app-id … --server-secret … --user-id …`.',
      );
      return false;
    }
    if (!res.ok) {
      showError(null, `dev token refused (HTTP ${res.status}): ${body.trim()}`);
      return false;
    }
    try {
      const { token } = JSON.parse(body);
      $('token').value = token;
      logLine('--', 'dev token minted by the server');
      return true;
    } catch {
      showError(null, 'dev token endpoint answered something that is not JSON');
      return false;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Start-up: fields from the query string (?app_id=&room_id=&user_id=&user_name=&token=&stream_id=
  // &autoplay=1&autologin=1), then capability notices.
  function init() {
    const q = new URLSearchParams(location.search);
    const pick = (...names) => names.map((n) => q.get(n)).find((v) => v != null);
    const fields = {
      'app-id': pick('app_id', 'appId'),
      'room-id': pick('room_id', 'roomId'),
      'user-id': pick('user_id', 'userId'),
      'user-name': pick('user_name', 'userName'),
      token: pick('token'),
      'stream-id': pick('stream_id', 'streamId'),
    };
    for (const [id, v] of Object.entries(fields)) if (v != null) $(id).value = v;
    if (!$('user-id').value) $('user-id').value = `web-${Math.random().toString(36).slice(2, 8)}`;
    if (q.get('autoplay') === '1') $('auto-play').checked = true;
    checkCapabilities();
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      login();
    });
    $('btn-logout').onclick = () => logout();
    $('btn-dev-token').onclick = () => getDevToken();
    $('btn-publish').onclick = () => publish();
    $('btn-stop-publish').onclick = () => stopPublish();
    window.addEventListener('pagehide', () => {
      if (ws && ws.readyState === WebSocket.OPEN && state.roomId) {
        try {
          ws.send(JSON.stringify({ type: 'logout', roomId: state.roomId }));
        } catch {
          /* leaving anyway */
        }
      }
    });
    updateButtons();
    renderUsers();
    if (q.get('autologin') === '1') {
      (async () => {
        if (!$('token').value && !(await getDevToken())) return;
        await login();
      })();
    }
  }

  // For tests and for people poking at the console.
  window.roomcamDebug = {
    get state() {
      return {
        roomState: state.roomState,
        roomId: state.roomId,
        userId: state.userId,
        sessionId: state.sessionId,
        users: [...state.users.values()],
        streams: [...state.streams.values()],
        publisher: { state: state.publisher.state, streamId: state.publisher.streamId },
        players: Object.fromEntries([...state.players].map(([id, p]) => [id, { state: p.state, stats: p.stats }])),
        lastError: state.lastError,
        connectionState: pc ? pc.connectionState : null,
        signalingState: pc ? pc.signalingState : null,
      };
    },
    get pc() {
      return pc;
    },
    getStats: playerStats,
    localStats,
    log: () => state.log.slice(),
    localDescription: () => (pc && pc.localDescription ? pc.localDescription.sdp : null),
    remoteDescription: () => (pc && pc.remoteDescription ? pc.remoteDescription.sdp : null),
    h264,
  };

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
