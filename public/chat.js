// herald chat demo: join a room, chat over WebSocket (or SSE + POST when WebSocket is not
// available), reconnect by itself and show what was missed. Everything a user typed is put on the
// page with textContent, never as HTML.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const ui = {
    joinView: $('join-view'), joinForm: $('join-form'), name: $('name'), room: $('room'), joinError: $('join-error'), join: $('join'),
    chatView: $('chat-view'), messages: $('messages'), sendForm: $('send-form'), text: $('text'), send: $('send'),
    users: $('users'), userCount: $('user-count'), status: $('status'), roomTitle: $('room-title'), leave: $('leave'),
  };
  const USER_NAME = /^[\p{L}\p{N}_.-]{1,32}$/u;
  const ROOM_NAME = /^[A-Za-z0-9_-]{1,64}$/;
  const STORE = 'herald-chat';
  const BACKOFF = [500, 1000, 2000, 4000, 8000];

  const state = {
    me: '', room: '',
    /** 'ws' until WebSocket turns out not to work here; then 'sse'. */
    transport: typeof window.WebSocket === 'function' ? 'ws' : 'sse',
    conn: null, // { send(text), close() }
    attempt: 0, timer: 0, joined: false, lost: false,
    seen: new Set(), seenOrder: [],
    usersQueries: 0, usersTimer: 0,
    missed: 0, missedTimer: 0, connectedAt: 0,
  };

  // ---- rendering --------------------------------------------------------------------------------

  function setStatus(kind, text) {
    ui.status.dataset.state = kind;
    ui.status.textContent = text;
  }

  function showJoin(error) {
    ui.chatView.hidden = true;
    ui.joinView.hidden = false;
    ui.leave.hidden = true;
    ui.roomTitle.hidden = true;
    ui.join.disabled = false;
    ui.joinError.textContent = error || '';
    (error ? ui.name : ui.name.value ? ui.join : ui.name).focus();
  }

  function showChat() {
    ui.joinView.hidden = true;
    ui.chatView.hidden = false;
    ui.leave.hidden = false;
    ui.roomTitle.hidden = false;
    ui.roomTitle.textContent = '#' + state.room;
    document.title = '#' + state.room + ' — herald chat';
    ui.text.focus();
  }

  function timeOf(ms) {
    const d = new Date(typeof ms === 'number' ? ms : Date.now());
    return { short: d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }), full: d.toLocaleString() };
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** Appends a message; `local` marks notes from this page (connection lost, reconnected). */
  function render(m, local) {
    const nearBottom = ui.messages.scrollHeight - ui.messages.scrollTop - ui.messages.clientHeight < 80;
    const type = m.type === 'message' || m.type === 'whisper' ? m.type : 'system';
    const li = el('li', 'msg msg-' + type);
    if (local) li.classList.add('msg-local');
    if (m.from && m.from === state.me) li.classList.add('msg-mine');
    li.dataset.type = type;
    if (m.id) li.dataset.id = String(m.id);
    const t = timeOf(m.timestamp);
    const time = el('time', 'time', t.short);
    time.title = t.full;
    if (typeof m.timestamp === 'number') time.dateTime = new Date(m.timestamp).toISOString();
    let from = '';
    if (type === 'message') from = String(m.from || '');
    else if (type === 'whisper') from = m.from === state.me ? 'whisper to ' + String(m.to || '') : 'whisper from ' + String(m.from || '');
    li.append(time, el('span', 'from', from), el('span', 'text', String(m.text)));
    ui.messages.append(li);
    while (ui.messages.children.length > 500) ui.messages.firstElementChild.remove();
    if (nearBottom || (m.from && m.from === state.me)) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function note(text) {
    render({ type: 'system', text: text, timestamp: Date.now() }, true);
  }

  function setUsers(names) {
    ui.users.replaceChildren();
    for (const name of names) {
      const li = el('li');
      const b = el('button', name === state.me ? 'me' : '', name === state.me ? name + ' (you)' : name);
      b.type = 'button';
      b.setAttribute('aria-label', name === state.me ? name + ' (you)' : 'Whisper to ' + name);
      b.addEventListener('click', () => {
        ui.text.value = '/w ' + name + ' ';
        ui.text.focus();
      });
      li.append(b);
      ui.users.append(li);
    }
    ui.userCount.textContent = '(' + names.length + ')';
  }

  // ---- incoming ---------------------------------------------------------------------------------

  function remember(id) {
    state.seen.add(id);
    state.seenOrder.push(id);
    if (state.seenOrder.length > 2000) state.seen.delete(state.seenOrder.shift());
  }

  function onMessage(m) {
    if (!m || typeof m !== 'object' || typeof m.text !== 'string') return;
    if (m.id) {
      // The replay on (re)join repeats what we already show: skip those.
      if (state.seen.has(m.id)) return;
      remember(m.id);
    }
    if (state.connectedAt && state.lost && typeof m.timestamp === 'number' && m.timestamp < state.connectedAt) state.missed++;
    const mine = m.to === state.me;
    if (m.type === 'system' && mine && m.text.startsWith('users: ')) {
      setUsers(m.text.slice(7).split(', ').filter(Boolean));
      if (state.usersQueries > 0) {
        state.usersQueries--;
        return; // asked by the page, not by the user
      }
    }
    render(m);
    if (m.type === 'system' && !m.to) askUsers();
  }

  /** Asks the room who is there (answered to us only), after a burst of joins and leaves settles. */
  function askUsers() {
    clearTimeout(state.usersTimer);
    state.usersTimer = setTimeout(() => {
      if (!state.conn || !state.joined) return;
      state.usersQueries++;
      state.conn.send('/users');
    }, 150);
  }

  // ---- connecting -------------------------------------------------------------------------------

  async function requestToken(auto) {
    for (let i = 0; ; i++) {
      const res = await fetch('chat/join', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ room: state.room, user: state.me }),
      });
      let body = {};
      try { body = await res.json(); } catch { /* not JSON */ }
      if (res.ok) return body.token;
      const message = body && body.error && body.error.message ? body.error.message : 'the server answered ' + res.status;
      // On a reload our previous connection may still hold the name for a moment.
      if (res.status === 409 && auto && i < 12) {
        await new Promise((r) => setTimeout(r, 400));
        continue;
      }
      const err = new Error(message.charAt(0).toUpperCase() + message.slice(1) + '.');
      err.status = res.status;
      throw err;
    }
  }

  async function join(auto) {
    clearTimeout(state.timer);
    setStatus(state.lost ? 'reconnecting' : 'connecting', state.lost ? 'Reconnecting…' : 'Connecting…');
    let token;
    try {
      token = await requestToken(auto);
    } catch (err) {
      // A refusal is final; a failure to reach the server is not (while we are trying to get back).
      const refused = err.status >= 400 && err.status < 500 && err.status !== 429;
      if (auto && !refused) {
        retry();
        return;
      }
      state.lost = false;
      setStatus('closed', 'Not connected');
      const message = err.status ? err.message : 'The server could not be reached. Try again.';
      showJoin(err.status === 409 ? message + ' Choose another name.' : message);
      return;
    }
    if (state.transport === 'ws') openWebSocket(token);
    else openSse(token);
  }

  function connected(how) {
    state.attempt = 0;
    state.joined = true;
    state.connectedAt = Date.now();
    setStatus('connected', 'Connected (' + how + ')');
    sessionStorage.setItem(STORE, JSON.stringify({ name: state.me, room: state.room }));
    showChat();
    askUsers();
    if (state.lost) {
      state.missed = 0;
      clearTimeout(state.missedTimer);
      state.missedTimer = setTimeout(() => {
        const n = state.missed;
        state.lost = false;
        note('Reconnected' + (n ? ': ' + n + ' missed message' + (n === 1 ? '' : 's') + ' shown above.' : '.'));
      }, 500);
    }
  }

  /** The connection ended with a WebSocket close code (SSE sends the same codes before it ends). */
  function ended(code, reason) {
    if (!state.conn) return;
    state.conn = null;
    const wasJoined = state.joined;
    state.joined = false;
    if (code === 4009) {
      setStatus('closed', 'Not connected');
      showJoin('The name “' + state.me + '” was just taken in this room. Choose another name.');
      return;
    }
    if (code === 1000) {
      setStatus('closed', reason === 'bye' ? 'Left the room' : 'Disconnected: ' + (reason || 'closed'));
      sessionStorage.removeItem(STORE);
      if (reason === 'bye') showJoin('');
      else if (wasJoined) note('Disconnected: ' + (reason || 'closed') + '.');
      return;
    }
    if (wasJoined && !state.lost) {
      state.lost = true;
      note('Connection lost — reconnecting…');
    }
    retry();
  }

  function retry() {
    state.lost = true;
    const delay = BACKOFF[Math.min(state.attempt, BACKOFF.length - 1)] * (0.8 + Math.random() * 0.4);
    state.attempt++;
    setStatus('reconnecting', 'Reconnecting in ' + Math.ceil(delay / 1000) + ' s…');
    clearTimeout(state.timer);
    state.timer = setTimeout(() => join(true), delay);
  }

  function openWebSocket(token) {
    const url = new URL('chat?token=' + encodeURIComponent(token), location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    let ws;
    try {
      ws = new WebSocket(url);
    } catch {
      state.transport = 'sse';
      join(true);
      return;
    }
    let opened = false;
    // A socket that is closing takes no more text: send says so (false) instead of throwing it away.
    const conn = {
      send: (text) => {
        if (ws.readyState !== 1 /* OPEN */) return false;
        ws.send(text);
        return true;
      },
      close: () => ws.close(1000),
    };
    state.conn = conn;
    ws.onopen = () => {
      opened = true;
      connected('WebSocket');
    };
    ws.onmessage = (e) => {
      try { onMessage(JSON.parse(e.data)); } catch { /* not for us */ }
    };
    ws.onclose = (e) => {
      if (state.conn !== conn) return;
      if (!opened && e.code !== 4001) {
        // Never opened: WebSocket is blocked on the way here. SSE + POST instead.
        state.conn = null;
        state.transport = 'sse';
        join(true);
        return;
      }
      ended(e.code, e.reason);
    };
  }

  function openSse(token) {
    const es = new EventSource('chat/sse?token=' + encodeURIComponent(token));
    let session = '';
    let closeInfo = null;
    const conn = {
      send(text) {
        fetch('chat/send', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ session: session, text: text }) })
          .then(async (res) => {
            if (res.ok) return;
            let message = 'the server answered ' + res.status;
            try { message = (await res.json()).error.message; } catch { /* keep the status */ }
            if (res.status === 404) {
              es.close();
              ended(1006, 'session ended');
            } else note('Not sent: ' + message + '.');
          })
          .catch(() => note('Not sent: the server could not be reached.'));
      },
      close() { es.close(); },
    };
    state.conn = conn;
    es.onmessage = (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch { return; }
      if (m && typeof m.session === 'string') {
        session = m.session;
        connected('SSE');
        return;
      }
      onMessage(m);
    };
    es.addEventListener('close', (e) => {
      try { closeInfo = JSON.parse(e.data); } catch { closeInfo = { code: 1006, reason: '' }; }
    });
    es.onerror = () => {
      // A single-use token cannot be reused: we reconnect ourselves, with a new one.
      es.close();
      if (state.conn !== conn) return;
      if (closeInfo) ended(closeInfo.code, closeInfo.reason);
      else if (!session) ended(1006, 'could not connect');
      else ended(1006, 'connection lost');
    };
  }

  // ---- the forms --------------------------------------------------------------------------------

  ui.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = ui.name.value.trim();
    const room = ui.room.value.trim();
    if (!USER_NAME.test(name)) {
      ui.joinError.textContent = 'Choose a name of 1 to 32 letters, digits, “_”, “.” or “-”, without spaces.';
      ui.name.setAttribute('aria-invalid', 'true');
      ui.name.focus();
      return;
    }
    ui.name.removeAttribute('aria-invalid');
    if (!ROOM_NAME.test(room)) {
      ui.joinError.textContent = 'A room name is 1 to 64 characters A–Z, a–z, 0–9, “_” or “-”.';
      ui.room.setAttribute('aria-invalid', 'true');
      ui.room.focus();
      return;
    }
    ui.room.removeAttribute('aria-invalid');
    if (state.room !== room || state.me !== name) {
      ui.messages.replaceChildren();
      state.seen.clear();
      state.seenOrder.length = 0;
    }
    state.me = name;
    state.room = room;
    state.lost = false;
    state.attempt = 0;
    ui.joinError.textContent = '';
    ui.join.disabled = true;
    join(false);
  });

  ui.sendForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ui.text.value;
    if (!text.trim()) return;
    if (!state.conn || !state.joined) {
      note('Not connected yet: your message was kept in the box.');
      return;
    }
    if (state.conn.send(text) === false) {
      note('Not connected yet: your message was kept in the box.');
      return;
    }
    ui.text.value = '';
  });

  ui.leave.addEventListener('click', () => {
    if (state.conn && state.joined) state.conn.send('/quit');
    else {
      clearTimeout(state.timer);
      if (state.conn) state.conn.close();
      state.conn = null;
      sessionStorage.removeItem(STORE);
      setStatus('idle', 'Not connected');
      showJoin('');
    }
  });

  // ---- start: a reload rejoins the same room under the same name ----------------------------------

  const params = new URLSearchParams(location.search);
  if (params.get('room') && ROOM_NAME.test(params.get('room'))) ui.room.value = params.get('room');
  let saved = null;
  try { saved = JSON.parse(sessionStorage.getItem(STORE) || 'null'); } catch { saved = null; }
  if (saved && USER_NAME.test(saved.name) && ROOM_NAME.test(saved.room)) {
    ui.name.value = saved.name;
    ui.room.value = saved.room;
    state.me = saved.name;
    state.room = saved.room;
    ui.join.disabled = true;
    join(true);
  } else showJoin('');
})();
