// The gateway's JSON API and WebRTC signalling, for the page. The token stays in this tab.

export class ApiError extends Error {
  constructor(status, code, message, reason = "") {
    super(message || code);
    this.status = status;
    this.code = code;
    this.reason = reason; // the service's stable ErrorInfo reason, e.g. REMOVED_FROM_SPACE
  }
}

export class Api {
  constructor() {
    this.token = sessionStorage.getItem("podium.token") || "";
    this.userId = sessionStorage.getItem("podium.user") || "";
    // Space id -> the room token of the last room answer about it: moderation and replay are
    // asked to answer from views that have seen it (read-your-writes), so a mute right after an
    // invitation to speak is not refused by a view a moment behind.
    this.roomTokens = new Map();
  }

  async post(path, body = {}) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...(this.token ? { Authorization: `Bearer ${this.token}` } : {}) },
      body: JSON.stringify(body),
    });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, reply.code || String(response.status), reply.message, reply.reason);
    if (reply.space?.spaceId && reply.space.roomToken) this.roomTokens.set(reply.space.spaceId, reply.space.roomToken);
    return reply;
  }

  // The STUN and TURN servers for a new RTCPeerConnection. Asked for each one: the TURN credentials
  // in it are minted for this user and expire.
  async iceServers() {
    const response = await fetch("/api/ice-servers", { headers: { Authorization: `Bearer ${this.token}` } });
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) throw new ApiError(response.status, reply.code, reply.message, reply.reason);
    return reply.iceServers || [];
  }

  async peerConnection() {
    return new RTCPeerConnection({ iceServers: await this.iceServers() });
  }

  async signIn(userId) {
    const reply = await this.post("/api/sign-in", { userId });
    this.token = reply.token;
    this.userId = reply.userId;
    sessionStorage.setItem("podium.token", this.token);
    sessionStorage.setItem("podium.user", this.userId);
  }

  call(service, method, body = {}) {
    const seen = service !== "room" && body.spaceId && this.roomTokens.get(body.spaceId);
    return this.post(`/api/rpc/${service}/${method}`, seen ? { ...body, roomToken: seen } : body);
  }

  // One peer connection, offered with all its ICE candidates (the gateway does not trickle).
  async connect(path, pc, extra = {}) {
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise((resolve) => {
      if (pc.iceGatheringState === "complete") return resolve();
      pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
    });
    const answer = await this.post(path, { sdp: pc.localDescription.sdp, type: pc.localDescription.type, ...extra });
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    return answer;
  }

  watch(spaceId, onUpdate, onClose) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/spaces/${encodeURIComponent(spaceId)}/watch`);
    ws.addEventListener("open", () => ws.send(JSON.stringify({ token: this.token })));
    ws.addEventListener("message", (e) => onUpdate(JSON.parse(e.data)));
    ws.addEventListener("close", () => onClose && onClose());
    return ws;
  }

  async replayAudio(spaceId) {
    const response = await fetch(`/api/replays/${encodeURIComponent(spaceId)}/audio`, {
      headers: { Authorization: `Bearer ${this.token}` },
    });
    if (!response.ok) {
      const reply = await response.json().catch(() => ({}));
      throw new ApiError(response.status, reply.code, reply.message);
    }
    return URL.createObjectURL(await response.blob());
  }
}
