// Podium's web client: sign in, create or join a Space, listen, speak, moderate, and play the replay.
// Plain modules, no build step. Everything Podium knows comes from the gateway's API (api.js).

import { Api } from "./api.js";
import { HEARD_DB, ToneMeter, audioContext, until } from "./audio.js";

const api = new Api();
const $ = (id) => document.getElementById(id);
const ROLES = { 1: "host", 2: "co-host", 3: "speaker", 4: "listener" };
const CAN_SPEAK = new Set([1, 2, 3]);

const state = {
  spaceId: new URLSearchParams(location.search).get("space") || "",
  invite: new URLSearchParams(location.search).get("invite") || "",
  space: null, // SpaceDetails from WatchSpace
  members: new Map(), // userId -> SpaceMember
  counts: null,
  listenPc: null,
  speakPc: null,
  mic: null,
  meter: null,
  replayMeter: null,
  watch: null,
  joining: null, // the listen() under way, so two renders never join twice
  speaking: null, // likewise for startSpeaking()
  out: false, // no longer in the Space (left, dropped or removed): nothing rejoins on its own
  leaving: false,
  replayLength: 0,
  lastActionAt: 0,
};

function show(...ids) {
  for (const section of document.querySelectorAll("body > section")) section.hidden = !ids.includes(section.id);
}

function fail(error) {
  $("error").textContent = error.message || String(error);
  $("error").hidden = false;
  console.error(error);
}

function act(fn) {
  return async (event) => {
    event?.preventDefault?.();
    $("error").hidden = true;
    state.lastActionAt = performance.now();
    try {
      await fn(event);
    } catch (error) {
      fail(error);
    }
  };
}

// --- signing in and creating -------------------------------------------------------------------

$("signin-form").addEventListener("submit", act(async () => {
  await api.signIn($("user-id").value.trim());
  route();
}));

$("create-form").addEventListener("submit", act(async (event) => {
  const form = new FormData(event.target);
  const scheduled = form.get("scheduledStart");
  const request = {
    title: form.get("title"),
    joinPolicy: form.get("joinPolicy"),
    recordingEnabled: form.get("recording") === "on",
  };
  if (scheduled) request.scheduledStart = new Date(scheduled).toISOString();
  const { space } = await api.call("room", "CreateSpace", request);
  // A scheduled Space waits for its host's Start (on its page, or under "Your Spaces").
  if (!scheduled) await api.call("room", "StartSpace", { spaceId: space.spaceId });
  await openSpace(space.spaceId);
}));

$("join").addEventListener("click", act(enterSpace));

async function openSpace(spaceId) {
  state.spaceId = spaceId;
  history.pushState({}, "", `/?space=${encodeURIComponent(spaceId)}`);
  await enterSpace();
}

function route() {
  $("whoami").textContent = api.userId ? `signed in as ${api.userId}` : "";
  $("home-link").hidden = !api.token;
  if (!api.token) return show("signin");
  if (state.spaceId) {
    $("lobby-title").textContent = "A Space";
    return show("lobby");
  }
  show("home");
  loadMySpaces().catch(fail);
}

// --- your Spaces: the ones you host, scheduled or live -------------------------------------------

const MINE = ["SPACE_STATE_CREATED", "SPACE_STATE_SCHEDULED", "SPACE_STATE_LIVE"];

async function loadMySpaces() {
  // The directory is a view of the room's log and follows a new Space by a moment: ask again while
  // the list is on screen.
  while (!$("home").hidden) {
    const { spaces = [] } = await api.call("room", "ListSpaces", { hostUserId: api.userId, states: MINE });
    renderMySpaces(spaces);
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function renderMySpaces(spaces) {
  const list = $("my-spaces");
  list.replaceChildren();
  $("my-spaces-empty").hidden = spaces.length > 0;
  for (const space of spaces) {
    const item = document.createElement("li");
    item.dataset.space = space.spaceId;
    item.dataset.state = space.state.replace("SPACE_STATE_", "").toLowerCase();
    const when = space.scheduledStart ? new Date(space.scheduledStart).toLocaleString() : "";
    item.innerHTML = '<span class="name"></span> <span class="badge"></span> <span class="hint"></span>' +
      '<span class="actions"></span>';
    item.querySelector(".name").textContent = space.title;
    item.querySelector(".badge").textContent = item.dataset.state;
    item.querySelector(".hint").textContent = space.state === "SPACE_STATE_LIVE" ? "" : when;
    const actions = item.querySelector(".actions");
    if (space.state !== "SPACE_STATE_LIVE") {
      const start = document.createElement("button");
      start.textContent = "Start";
      start.dataset.testid = "start-space";
      start.addEventListener("click", act(async () => {
        await api.call("room", "StartSpace", { spaceId: space.spaceId });
        await openSpace(space.spaceId);
      }));
      actions.append(start);
    }
    const open = document.createElement("button");
    open.textContent = "Open";
    open.className = "secondary";
    open.dataset.testid = "open-space";
    open.addEventListener("click", act(() => openSpace(space.spaceId)));
    actions.append(open);
    list.append(item);
  }
}

// --- in a Space ----------------------------------------------------------------------------------

// The Space's page follows WatchSpace; render() joins (listen) once the Space is live, so a
// scheduled Space's page waits for its Start.
async function enterSpace() {
  show("space");
  state.out = false;
  watchSpace();
}

function watchSpace(attempt = 0) {
  const ws = api.watch(state.spaceId, (update) => {
    // Presence learns of a Space from the log, a moment after the room made it: ask again.
    if (update.error?.code === "NOT_FOUND" && !state.space && attempt < 20) {
      setTimeout(() => watchSpace(attempt + 1), 250);
      return;
    }
    onWatch(update);
  }, () => state.watch === ws && (state.watch = null));
  state.watch = ws;
}

function listen() {
  if (state.listenPc) return Promise.resolve();
  state.joining ??= join().finally(() => (state.joining = null));
  return state.joining;
}

async function join() {
  const pc = await api.peerConnection();
  state.listenPc = pc;
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.addEventListener("track", (event) => {
    const stream = event.streams[0] || new MediaStream([event.track]);
    // Chrome feeds a remote stream to WebAudio only while a media element plays it too.
    $("live-audio").srcObject = stream;
    state.meter = new ToneMeter(audioContext().createMediaStreamSource(stream));
  });
  try {
    const answer = await api.connect(`/api/spaces/${encodeURIComponent(state.spaceId)}/listen`, pc, {
      inviteToken: state.invite,
    });
    document.body.dataset.joinedAs = answer.role;
  } catch (error) {
    pc.close();
    state.listenPc = null;
    throw error;
  }
}

function startSpeaking() {
  if (state.speakPc) return Promise.resolve();
  state.speaking ??= speak().finally(() => (state.speaking = null));
  return state.speaking;
}

async function speak() {
  try {
    state.speakPc = await api.peerConnection();
    // Raw audio: echo cancellation and noise suppression are the speaker's device's business here,
    // and they would bend a test tone.
    state.mic = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    for (const track of state.mic.getAudioTracks()) state.speakPc.addTrack(track, state.mic);
    await api.connect(`/api/spaces/${encodeURIComponent(state.spaceId)}/speak`, state.speakPc);
    $("mic-state").textContent = "on";
  } catch (error) {
    stopSpeaking();
    throw error;
  }
}

function stopSpeaking() {
  state.speakPc?.close();
  state.speakPc = null;
  for (const track of state.mic?.getTracks() || []) track.stop();
  state.mic = null;
  $("mic-state").textContent = "off";
}

function dropMedia() {
  stopSpeaking();
  state.listenPc?.close();
  state.listenPc = null;
}

function leave() {
  state.leaving = true;
  dropMedia();
  state.watch?.close();
}

// The room took us out of the Space, or our stream dropped. Joining again tells which: a dropped
// listener is back in, a removed one is refused, and the room says why.
async function lostMembership() {
  state.out = true;
  dropMedia();
  try {
    await listen();
    state.out = false;
  } catch (error) {
    if (error.reason === "SPACE_ENDED") return; // everyone leaves an ended Space; its replay follows
    // Removed by a host or a moderator, or evicted when the Space turned invite-only.
    if (error.reason !== "REMOVED_FROM_SPACE" && error.reason !== "NOT_INVITED") return fail(error);
    dropMedia();
    $("removed").hidden = false;
    // The room's own words go with the refusal of a rejoin; the notice says who did it.
    $("removed-reason").textContent = error.reason === "NOT_INVITED"
      ? "The Space is now invite-only: an invitation or an invite link lets you back in."
      : "A host or a moderator took you out of it.";
    document.body.dataset.removed = "true";
  }
}

$("rejoin").addEventListener("click", act(async () => {
  $("rejoin-refused").hidden = true;
  try {
    await listen();
    state.out = false;
    $("removed").hidden = true;
  } catch (error) {
    dropMedia();
    $("rejoin-refused").textContent = `Rejoining was refused: ${error.message}` +
      (error.reason ? ` (${error.reason})` : "");
    $("rejoin-refused").hidden = false;
  }
}));

function onWatch(update) {
  if (update.error) return fail(new Error(`${update.error.code}: ${update.error.message}`));
  if (update.snapshot) {
    state.space = update.snapshot.space;
    state.counts = update.snapshot.counts;
    state.members = new Map((update.snapshot.members || []).map((m) => [m.userId, m]));
  } else if (update.change) {
    const member = update.change.member;
    if (update.change.kind === "MEMBER_CHANGE_KIND_LEFT") {
      state.members.delete(member.userId);
      if (member.userId === api.userId && !state.leaving && !state.out) lostMembership();
    } else state.members.set(member.userId, member);
  } else if (update.spaceChange) {
    state.space = update.spaceChange.space;
  }
  render();
}

function render() {
  const space = state.space || {};
  const me = state.members.get(api.userId);
  const isHost = space.hostUserId === api.userId || me?.role === 2;
  $("space-title").textContent = space.title || "";
  const live = space.state === "SPACE_STATE_LIVE";
  $("space-state").textContent = (space.state || "").replace("SPACE_STATE_", "").toLowerCase();
  $("space-state").className = `badge ${live ? "live" : ""}`;
  $("recording").hidden = !space.recording;
  $("start").hidden = !(isHost && ["SPACE_STATE_CREATED", "SPACE_STATE_SCHEDULED"].includes(space.state));
  $("end").hidden = !(space.hostUserId === api.userId && live);
  $("request").hidden = !(me && me.role === 4 && !me.handRaised && live);
  $("scheduled-for").textContent = space.state === "SPACE_STATE_SCHEDULED" && space.scheduledStart
    ? `scheduled for ${new Date(space.scheduledStart).toLocaleString()}` : "";
  $("counts").textContent = state.counts ? `${state.members.size} here` : "";

  const list = $("members");
  list.replaceChildren();
  for (const member of state.members.values()) {
    const item = document.createElement("li");
    item.dataset.user = member.userId;
    item.dataset.role = ROLES[member.role] || "";
    item.classList.toggle("speaking", !!member.speaking);
    item.innerHTML = `<span class="name"></span><span class="badge">${ROLES[member.role] || "?"}</span>` +
      '<span class="talking" data-testid="talking">● talking</span>';
    item.querySelector(".name").textContent = member.userId;
    if (member.muted) item.insertAdjacentHTML("beforeend", '<span class="badge" data-testid="muted">muted</span>');
    if (member.handRaised) item.insertAdjacentHTML("beforeend", '<span class="badge" data-testid="hand">wants to speak</span>');
    if (isHost && member.userId !== api.userId && live) item.append(hostActions(member));
    list.append(item);
  }

  if (me && live && CAN_SPEAK.has(me.role) && !state.speakPc) startSpeaking().catch(fail);
  if (me && state.speakPc && !CAN_SPEAK.has(me.role)) stopSpeaking();
  if (state.listenPc === null && !state.out && live && state.watch && $("space").hidden === false) listen().catch(fail);
  if (space.state === "SPACE_STATE_ENDED" && $("replay").hidden) {
    leave();
    showReplay().catch(fail);
  }
}

function hostActions(member) {
  const actions = document.createElement("span");
  actions.className = "actions";
  const button = (label, testId, fn) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.dataset.testid = testId;
    b.className = "secondary";
    b.addEventListener("click", act(fn));
    actions.append(b);
  };
  const target = { spaceId: state.spaceId, userId: member.userId };
  if (member.role === 4 && member.handRaised) button("Approve", "approve", () => api.call("room", "ApproveSpeakRequest", target));
  if (member.role === 4) button("Invite to speak", "invite-to-speak", () => api.call("room", "InviteToSpeak", target));
  if (member.role === 3) button("Make listener", "revoke", () => api.call("room", "RevokeSpeaker", target));
  if (CAN_SPEAK.has(member.role)) {
    if (member.muted) button("Unmute", "unmute", () => api.call("moderation", "UnmuteParticipant", target));
    else button("Mute", "mute", () => api.call("moderation", "MuteParticipant", target));
  }
  button("Remove", "remove", () => api.call("moderation", "RemoveParticipant", { ...target, reason: "removed by the host" }));
  return actions;
}

$("start").addEventListener("click", act(() => api.call("room", "StartSpace", { spaceId: state.spaceId })));
$("end").addEventListener("click", act(() => api.call("room", "EndSpace", { spaceId: state.spaceId })));
$("request").addEventListener("click", act(() => api.call("room", "RequestToSpeak", { spaceId: state.spaceId })));
$("invite-link").addEventListener("click", act(async () => {
  const link = await api.call("room", "CreateInviteLink", { spaceId: state.spaceId });
  const url = `${location.origin}/?space=${encodeURIComponent(state.spaceId)}&invite=${encodeURIComponent(link.token)}`;
  $("invite-url").value = url;
  $("invite-url").hidden = false;
  await navigator.clipboard?.writeText(url).catch(() => {}); // the field shows it when the clipboard is refused
}));

// --- after the end: the replay ------------------------------------------------------------------

async function showReplay() {
  show("replay");
  let replay;
  for (;;) {
    try {
      ({ replay } = await api.call("replay", "GetReplay", { spaceId: state.spaceId }));
      if (replay.state === "REPLAY_STATE_READY") break;
      $("replay-state").textContent = `Preparing the replay… ${Math.round(100 * (replay.progress || 0))}%`;
    } catch (error) {
      if (![404, 409].includes(error.status)) throw error;
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const length = parseFloat(replay.duration || "0");
  $("replay-state").textContent = `${replay.title}: ${Math.floor(length / 60)} min ${Math.round(length % 60)} s, ` +
    `speakers ${(replay.speakerIds || []).join(", ")}`;
  const timeline = $("timeline");
  timeline.replaceChildren();
  for (const entry of replay.timeline || []) {
    const item = document.createElement("li");
    const seconds = parseFloat(entry.at || "0");
    const kind = (entry.kind || "").replace("TIMELINE_ENTRY_KIND_", "").toLowerCase().replace("_", " ");
    const detail = kind === "listeners" ? `${entry.listeners || 0}` : `${entry.userId || ""} ${entry.role || ""}`;
    item.textContent = `${clock(seconds)}  ${kind} ${detail}`;
    item.dataset.at = String(seconds);
    item.dataset.testid = "timeline-entry";
    item.title = "Play from here";
    item.addEventListener("click", () => seek(seconds));
    timeline.append(item);
  }
  state.replayLength = length;
  const audio = $("replay-audio");
  audio.src = await api.replayAudio(state.spaceId);
  audio.preservesPitch = true;
  if (!state.replayMeter) {
    const source = audioContext().createMediaElementSource(audio);
    source.connect(audioContext().destination);
    state.replayMeter = new ToneMeter(source);
  }
  document.body.dataset.replayReady = "true";
}

// --- the replay player: seek (timeline, slider, ±15 s), speed, where it is -----------------------

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function replayDuration() {
  const d = $("replay-audio").duration;
  return Number.isFinite(d) && d > 0 ? d : state.replayLength;
}

function seek(seconds) {
  const audio = $("replay-audio");
  audio.currentTime = Math.min(Math.max(0, seconds), replayDuration() || seconds);
  showPosition();
}

function showPosition() {
  const audio = $("replay-audio");
  const duration = replayDuration();
  $("replay-position").textContent = `${clock(audio.currentTime)} / ${clock(duration)}`;
  $("replay-seek").max = String(duration || 0);
  if (document.activeElement !== $("replay-seek")) $("replay-seek").value = String(audio.currentTime);
  const current = $("replay-audio").currentTime;
  for (const item of $("timeline").children) {
    item.classList.toggle("past", Number(item.dataset.at) <= current);
  }
}

function showSpeed() {
  const rate = $("replay-audio").playbackRate;
  for (const button of document.querySelectorAll("[data-speed]")) {
    const active = Number(button.dataset.speed) === rate;
    button.classList.toggle("active", active);
    button.setAttribute("aria-pressed", String(active));
  }
}

for (const button of document.querySelectorAll("[data-speed]")) {
  button.addEventListener("click", () => {
    $("replay-audio").playbackRate = Number(button.dataset.speed);
    showSpeed(); // at once: "ratechange" comes a task later
  });
}
for (const button of document.querySelectorAll("[data-skip]")) {
  button.addEventListener("click", () => seek($("replay-audio").currentTime + Number(button.dataset.skip)));
}
$("replay-seek").addEventListener("input", () => seek(Number($("replay-seek").value)));
for (const event of ["timeupdate", "seeked", "durationchange", "loadedmetadata"]) {
  $("replay-audio").addEventListener(event, showPosition);
}
$("replay-audio").addEventListener("ratechange", showSpeed);
showSpeed();

// What is heard, shown to people and read by the browser test.
setInterval(() => {
  const peak = state.meter?.peak();
  $("hearing").textContent = peak && peak.db > HEARD_DB ? `${Math.round(peak.hz)} Hz` : "silence";
}, 250);

window.podiumTest = {
  state,
  live: () => state.meter?.peak() || null,
  liveLevelAt: (hz) => state.meter?.levelAt(hz) ?? -Infinity,
  replay: () => state.replayMeter?.peak() || null,
  iceServers: () => state.listenPc?.getConfiguration().iceServers || null,
  until,
  heard: HEARD_DB,
};

route();
