// soukets' browser page: plain JavaScript, no build step.
//
// One WebSocket to /ws carries the same CHANNEL;JSON frames as TCP, one
// frame per text message.  This file keeps what the page knows in `state`,
// turns each server frame into a change of the page (`handlers`), and
// turns clicks and keys into frames (`send`).  It reconnects by itself
// with a growing delay, takes its seat back in a running game with the
// resume token it was given, and subscribes again to its chat channels.
"use strict";

const $ = (id) => document.getElementById(id);
const KEYS = { r: "rock", p: "paper", s: "scissors" };

const state = {
  socket: null,
  retry: 0,            // reconnection attempts since the last success
  me: null,            // this connection's client id
  name: localStorage.getItem("soukets.name") || "",
  names: {},           // client id -> display name
  queued: false,
  lobby: null,         // the lobby channel of the running game
  players: [],
  bots: [],
  round: 0,
  deadline: null,      // when the round's clock runs out (ms)
  myMove: null,
  resume: sessionStorage.getItem("soukets.resume"),  // takes the seat back (survives a reload)
  channels: [],        // chat channels subscribed, in order
  current: null,       // the chat channel messages go to
};

// Connection

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

function connect() {
  setStatus("connecting", "connecting…");
  const socket = new WebSocket(socketUrl());
  state.socket = socket;
  socket.onmessage = (event) => receive(String(event.data));
  socket.onopen = () => {
    state.retry = 0;
    setStatus("connected", "connected");
  };
  socket.onclose = () => {
    if (state.socket !== socket) return;
    state.socket = null;
    state.me = null;
    state.queued = false;
    $("queue-button").disabled = true;
    setMoves(false);
    stopCountdown();
    const delay = Math.min(30, 2 ** state.retry) * (0.75 + Math.random() / 2);
    state.retry += 1;
    setStatus("disconnected", `disconnected — reconnecting in ${Math.ceil(delay)} s`);
    setTimeout(connect, delay * 1000);
  };
}

function send(channel, payload) {
  if (state.socket && state.socket.readyState === WebSocket.OPEN) {
    state.socket.send(`${channel};${JSON.stringify(payload)}`);
  }
}

function receive(text) {
  const cut = text.indexOf(";");
  if (cut < 0) return;
  const channel = text.slice(0, cut);
  let body;
  try { body = JSON.parse(text.slice(cut + 1)); } catch { return; }
  const handler = handlers[body.type];
  if (handler) handler(channel, body);
}

function setStatus(kind, text) {
  const status = $("status");
  status.dataset.state = kind;
  status.textContent = text;
}

// What the server says

const handlers = {
  welcome(channel, body) {
    state.me = body.client;
    if (state.name) state.names[state.me] = state.name;
    $("me").textContent = `Connected as ${state.name || state.me} (client ${state.me}). ` +
      `Lobbies of ${body.lobby_size}, ${body.game}.`;
    if (state.name) send("", { type: "hello", name: state.name });
    if (state.resume) {
      send("", { type: "resume", token: state.resume });
    } else {
      leaveGame();
    }
    for (const name of state.channels) send(name, { type: "subscribe", presence: true });
    $("queue-button").disabled = false;
    showError("");
  },
  hello(channel, body) {
    state.names[state.me] = body.name;
    $("me").textContent = `You are ${body.name} (client ${state.me}).`;
  },
  ping() { send("", { type: "pong" }); },
  queued(channel, body) {
    state.queued = true;
    const missing = body.lobby_size - body.waiting;
    $("queue-status").textContent = missing > 0
      ? `Waiting for ${missing} more player${missing === 1 ? "" : "s"}…`
      : "A lobby is forming…";
    updateQueueButton();
  },
  unqueued() {
    state.queued = false;
    $("queue-status").textContent = "Not in the queue.";
    updateQueueButton();
  },
  matched(channel, body) { startGame(body.channel, body); },
  resumed(channel, body) {
    state.me = body.you;
    startGame(body.channel, body);
    addResult("note", "Reconnected: your seat was kept.");
  },
  round(channel, body) {
    if (channel !== state.lobby) return;
    state.round = body.round;
    state.myMove = null;
    state.deadline = Date.now() + body.timeout * 1000;
    for (const li of $("players").children) li.classList.remove("moved");
    for (const button of document.querySelectorAll(".move")) button.classList.remove("chosen");
    $("round-label").textContent = `Round ${body.round}`;
    $("prompt").textContent = "Your move!";
    $("countdown").classList.remove("hurry");
    setMoves(true);
    startCountdown();
  },
  hurry(channel, body) {
    if (channel !== state.lobby) return;
    $("countdown").classList.add("hurry");
    $("prompt").textContent = `Hurry: ${Math.round(body.remaining)} s left!`;
  },
  moved(channel, body) {
    if (channel !== state.lobby) return;
    const li = playerItem(body.player);
    if (li) li.classList.add("moved");
    if (body.player === state.me) {
      setMoves(false);
      $("prompt").textContent = `You played ${state.myMove || "your move"}; waiting for the others…`;
    }
  },
  result(channel, body) {
    if (channel !== state.lobby) return;
    stopCountdown();
    $("countdown").textContent = "–";
    setMoves(false);
    const moves = Object.entries(body.moves)
      .map(([player, move]) => `${who(player)} ${move || "(no move)"}`)
      .join(", ");
    const won = body.winners.includes(state.me);
    const outcome = body.winners.length === 0 ? "no winner"
      : won ? "you win" : `${names(body.winners)} win${body.winners.length === 1 ? "s" : ""}`;
    addResult(won ? "win" : body.winners.length ? "loss" : "", `Round ${body.round}: ${moves} — ${outcome}.`);
    $("prompt").textContent = won ? "You won the round!" : outcome[0].toUpperCase() + outcome.slice(1) + ".";
  },
  game_over(channel, body) {
    if (channel !== state.lobby) return;
    stopCountdown();
    setMoves(false);
    keepToken(null);
    const scores = Object.entries(body.scores).map(([p, s]) => `${who(p)} ${s}`).join(", ");
    const winners = body.winners.length ? `Winner: ${names(body.winners)}.` : "No winner.";
    const reason = { completed: "", player_left: " (a player left)", shutdown: " (the server is stopping)",
                     node_lost: " (a server node was lost)", internal_error: " (the game failed)" }[body.reason] || "";
    $("game-over-text").textContent = `Game over${reason}. ${winners} Scores: ${scores}.`;
    $("game-over").hidden = false;
    $("prompt").textContent = body.winners.includes(state.me) ? "You won the game!" : "";
  },
  closed(channel) {
    if (channel === state.lobby) {
      state.lobby = null;
      keepToken(null);
      setMoves(false);
      stopCountdown();
      $("game-over").hidden = false;
      if (!$("game-over-text").textContent) $("game-over-text").textContent = "The lobby closed.";
      $("queue-status").textContent = "Not in the queue.";
      updateQueueButton();
    }
  },
  left(channel, body) {
    const li = playerItem(body.player);
    if (li) { li.classList.remove("away"); li.classList.add("left"); }
    addResult("note", `${who(body.player)} left.`);
  },
  away(channel, body) {
    const li = playerItem(body.player);
    if (li) li.classList.add("away");
    addResult("note", `${who(body.player)} lost their connection; their seat is held ${Math.round(body.hold)} s.`);
  },
  back(channel, body) {
    const li = playerItem(body.player);
    if (li) li.classList.remove("away");
    addResult("note", `${who(body.player)} is back.`);
  },
  message(channel, body) {
    const data = body.data;
    if (data && typeof data === "object" && typeof data.name === "string" && Object.keys(data).length === 1) {
      state.names[body.from] = data.name;  // a client telling its name
      renderPlayers();
      return;
    }
    const text = typeof data === "string" ? data : JSON.stringify(data);
    addChat(channel === state.lobby ? "lobby" : channel, who(body.from), text);
  },
  joined(channel, body) {
    if (body.name) state.names[body.client] = body.name;
    addNote(channel, `${who(body.client)} joined`);
  },
  parted(channel, body) { addNote(channel, `${who(body.client)} left`); },
  subscribed(channel, body) {
    if (!state.channels.includes(channel)) state.channels.push(channel);
    state.current = channel;
    renderChannels();
    addNote(channel, `joined #${channel} (${body.members} here)`);
  },
  unsubscribed(channel) {
    if (channel === state.lobby) return;
    state.channels = state.channels.filter((c) => c !== channel);
    if (state.current === channel) state.current = state.channels[state.channels.length - 1] || null;
    renderChannels();
    addNote(channel, `left #${channel}`);
  },
  error(channel, body) {
    if (body.code === "bad_token") {
      keepToken(null);
      leaveGame();
      addResult("note", "Your seat could not be kept.");
      return;
    }
    if (body.code === "already_queued") return;  // the server queued us first
    showError(`${body.code.replace(/_/g, " ")}: ${body.message}`);
  },
  bye(channel, body) {
    setStatus("disconnected", body.reason === "shutdown" ? "the server is restarting…" : `disconnected (${body.reason})`);
  },
};

// The game

function keepToken(token) {
  state.resume = token;
  if (token) sessionStorage.setItem("soukets.resume", token);
  else sessionStorage.removeItem("soukets.resume");
}

function startGame(channel, body) {
  state.lobby = channel;
  state.players = body.players;
  state.bots = body.bots || [];
  if (body.resume) keepToken(body.resume);
  for (const [player, name] of Object.entries(body.names || {})) {
    if (player !== state.me) state.names[player] = name;
  }
  for (const bot of state.bots) state.names[bot] = state.names[bot] || "a bot";
  state.queued = false;
  $("game").hidden = false;
  $("game-over").hidden = true;
  $("game-over-text").textContent = "";
  $("results").replaceChildren();
  const others = state.players.filter((p) => p !== state.me);
  $("opponents").textContent = `You play against ${names(others)}.`;
  $("queue-status").textContent = "In a game.";
  renderPlayers();
  updateQueueButton();
  if (state.name) send(channel, { type: "publish", data: { name: state.name } });
}

function leaveGame() {
  state.lobby = null;
  setMoves(false);
  stopCountdown();
}

function renderPlayers() {
  const list = $("players");
  const moved = new Set([...list.querySelectorAll("li.moved")].map((li) => li.dataset.player));
  list.replaceChildren(...state.players.map((player) => {
    const li = document.createElement("li");
    li.dataset.player = player;
    li.textContent = player === state.me ? `${who(player)} (you)` : who(player);
    if (moved.has(player)) li.classList.add("moved");
    return li;
  }));
}

function playerItem(player) {
  return [...$("players").children].find((li) => li.dataset.player === player);
}

function play(move) {
  if (!state.lobby || state.myMove || $("move-rock").disabled) return;
  state.myMove = move;
  $(`move-${move}`).classList.add("chosen");
  send(state.lobby, { type: "move", move });
}

function setMoves(enabled) {
  for (const button of document.querySelectorAll(".move")) button.disabled = !enabled;
}

let ticker = null;

function startCountdown() {
  stopCountdown();
  const tick = () => {
    const left = Math.max(0, (state.deadline - Date.now()) / 1000);
    $("countdown").textContent = String(Math.ceil(left));
    if (left <= 3) $("countdown").classList.add("hurry");
  };
  tick();
  ticker = setInterval(tick, 200);
}

function stopCountdown() {
  if (ticker) clearInterval(ticker);
  ticker = null;
}

function addResult(kind, text) {
  const li = document.createElement("li");
  if (kind) li.className = kind;
  li.textContent = text;
  $("results").append(li);
}

function updateQueueButton() {
  const button = $("queue-button");
  button.textContent = state.queued ? "Leave the queue" : "Find a game";
  button.disabled = !state.me || Boolean(state.lobby);
}

// Chat

function renderChannels() {
  const list = $("channels");
  list.replaceChildren(...state.channels.map((channel) => {
    const li = document.createElement("li");
    const pick = document.createElement("button");
    pick.type = "button";
    pick.textContent = `#${channel}`;
    pick.setAttribute("aria-pressed", String(channel === state.current));
    pick.onclick = () => { state.current = channel; renderChannels(); };
    const leave = document.createElement("button");
    leave.type = "button";
    leave.className = "leave";
    leave.textContent = "×";
    leave.setAttribute("aria-label", `Leave #${channel}`);
    leave.onclick = () => send(channel, { type: "unsubscribe" });
    li.append(pick, leave);
    return li;
  }));
  const can = Boolean(state.current);
  $("chat-text").disabled = !can;
  $("chat-send").disabled = !can;
  $("chat-text").placeholder = can ? `message #${state.current}` : "join a channel first";
}

function addChat(where, from, text) {
  const li = document.createElement("li");
  const place = document.createElement("span");
  place.className = "where";
  place.textContent = `#${where} `;
  const name = document.createElement("span");
  name.className = "who";
  name.textContent = `${from}: `;
  li.append(place, name, document.createTextNode(text));
  appendChat(li);
}

function addNote(where, text) {
  const li = document.createElement("li");
  li.className = "note";
  li.textContent = `#${where}: ${text}`;
  appendChat(li);
}

function appendChat(li) {
  const log = $("chat-log");
  log.append(li);
  while (log.children.length > 500) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

// Names and errors

function who(player) {
  return state.names[player] || player;
}

function names(players) {
  const all = players.map(who);
  return all.length <= 1 ? all.join("") : `${all.slice(0, -1).join(", ")} and ${all[all.length - 1]}`;
}

function showError(text) {
  $("error").textContent = text;
}

// What the person does

$("name-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  state.name = name;
  localStorage.setItem("soukets.name", name);
  send("", { type: "hello", name });
  if (state.lobby) send(state.lobby, { type: "publish", data: { name } });
});

$("queue-button").addEventListener("click", () => {
  send("", { type: state.queued ? "unqueue" : "queue" });
});

$("play-again").addEventListener("click", () => {
  $("game-over").hidden = true;
  send("", { type: "queue" });
});

for (const button of document.querySelectorAll(".move")) {
  button.addEventListener("click", () => play(button.dataset.move));
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.ctrlKey || event.metaKey || event.altKey) return;
  const move = KEYS[event.key.toLowerCase()];
  if (move) { event.preventDefault(); play(move); }
});

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const channel = $("chat-channel").value.trim();
  if (channel) send(channel, { type: "subscribe", presence: true });
  $("chat-channel").value = "";
});

$("say-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("chat-text").value;
  if (!text.trim() || !state.current) return;
  send(state.current, { type: "publish", data: text });
  addChat(state.current, `${who(state.me)} (you)`, text);
  $("chat-text").value = "";
});

$("name").value = state.name;
renderChannels();
connect();
