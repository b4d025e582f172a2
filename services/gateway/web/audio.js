// What the page hears: a WebAudio analyser that names the strongest tone (for people: "hearing
// 440 Hz"; for the browser test: the dominant frequency, as a number).

const MIN_HZ = 80;
const MAX_HZ = 4000;
export const HEARD_DB = -60; // a tone this strong in its bin is heard

let context;
export function audioContext() {
  context = context || new AudioContext({ latencyHint: "interactive" });
  if (context.state === "suspended") context.resume();
  return context;
}

export class ToneMeter {
  constructor(source) {
    // A long window to name a frequency finely (11.7 Hz bins), a short one to follow a level closely
    // (21 ms, so a voice that stops leaves the window soon after).
    this.analyser = analyser(source, 4096);
    this.bins = new Float32Array(this.analyser.frequencyBinCount);
    this.fast = analyser(source, 1024);
    this.fastBins = new Float32Array(this.fast.frequencyBinCount);
  }

  // The strongest frequency between 80 Hz and 4 kHz, refined between bins, and its level in dB.
  peak() {
    this.analyser.getFloatFrequencyData(this.bins);
    const hzPerBin = audioContext().sampleRate / this.analyser.fftSize;
    let best = Math.ceil(MIN_HZ / hzPerBin);
    for (let i = best; i < Math.min(this.bins.length - 1, MAX_HZ / hzPerBin); i++) {
      if (this.bins[i] > this.bins[best]) best = i;
    }
    const [a, b, c] = [this.bins[best - 1], this.bins[best], this.bins[best + 1]];
    const shift = a - 2 * b + c === 0 ? 0 : (0.5 * (a - c)) / (a - 2 * b + c);
    return { hz: (best + shift) * hzPerBin, db: b };
  }

  // The level at `hz` now (the strongest of its neighbouring bins of the short window), in dB.
  levelAt(hz) {
    this.fast.getFloatFrequencyData(this.fastBins);
    const bin = Math.round(hz / (audioContext().sampleRate / this.fast.fftSize));
    return Math.max(this.fastBins[bin - 1], this.fastBins[bin], this.fastBins[bin + 1]);
  }
}

function analyser(source, fftSize) {
  const node = audioContext().createAnalyser();
  node.fftSize = fftSize;
  node.smoothingTimeConstant = 0;
  source.connect(node);
  return node;
}

// Resolves with performance.now() once `test()` holds, checked every few milliseconds.
export function until(test, timeoutMs) {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const check = () => {
      if (test()) return resolve(performance.now());
      if (performance.now() - began > timeoutMs) return reject(new Error(`not within ${timeoutMs} ms`));
      setTimeout(check, 4);
    };
    check();
  });
}
