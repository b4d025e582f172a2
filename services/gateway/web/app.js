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
  if (!scheduled) await api.call("room", "StartSpace", { spaceId: space.spaceId });
  state.spaceId = space.spaceId;
  history.pushState({}, "", `/?space=${encodeURIComponent(space.spaceId)}`);
  await enterSpace();
}));

$("join").addEventListener("click", act(enterSpace));

function route() {
  $("whoami").textContent = api.userId ? `signed in as ${api.userId}` : "";
  if (!api.token) return show("signin");
  if (state.spaceId) {
    $("lobby-title").textContent = "A Space";
    return show("lobby");
  }
  show("home");
}

// --- in a Space ----------------------------------------------------------------------------------

async function enterSpace() {
  show("space");
  state.watch = api.watch(state.spaceId, onWatch, () => (state.watch = null));
  if (state.space?.state !== "SPACE_STATE_SCHEDULED") await listen();
}

async function listen() {
  if (state.listenPc) return;
  const pc = new RTCPeerConnection();
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

async function startSpeaking() {
  if (state.speakPc) return;
  state.speakPc = new RTCPeerConnection();
  try {
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

function leave() {
  stopSpeaking();
  state.listenPc?.close();
  state.listenPc = null;
  state.watch?.close();
}

function onWatch(update) {
  if (update.error) return fail(new Error(`${update.error.code}: ${update.error.message}`));
  if (update.snapshot) {
    state.space = update.snapshot.space;
    state.counts = update.snapshot.counts;
    state.members = new Map((update.snapshot.members || []).map((m) => [m.userId, m]));
  } else if (update.change) {
    const member = update.change.member;
    if (update.change.kind === "MEMBER_CHANGE_KIND_LEFT") state.members.delete(member.userId);
    else state.members.set(member.userId, member);
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
  if (state.listenPc === null && live && state.watch && $("space").hidden === false) listen().catch(fail);
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
    item.textContent = `${seconds.toFixed(1)} s  ${kind} ${detail}`;
    item.dataset.at = String(seconds);
    item.addEventListener("click", () => ($("replay-audio").currentTime = seconds));
    timeline.append(item);
  }
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

for (const button of document.querySelectorAll("[data-speed]")) {
  button.addEventListener("click", () => ($("replay-audio").playbackRate = Number(button.dataset.speed)));
}

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
  until,
  heard: HEARD_DB,
};

route();
