/**
 * Progress on stderr for the command line: one line redrawn in place on a terminal, plain lines
 * (one per tenth) otherwise.
 *
 * @module
 */

import type { DownloadProgress } from "../weights/hub.ts";

const mb = (b: number) => (b / 1e6).toFixed(1);

function seconds(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, "0")}s` : `${Math.round(s)}s`;
}

/**
 * A reporter of loading progress.
 *
 * @param err Where plain lines go.
 * @returns The callback for `GPTModel.load`'s `onProgress`.
 */
export function loadProgress(err: (s: string) => void): (done: number, total: number) => void {
  const tty = Deno.stderr.isTerminal();
  let lastTenth = -1;
  return (done, total) => {
    const pct = total > 0 ? Math.floor((done / total) * 100) : 100;
    const line = `loading weights: ${mb(done)} / ${mb(total)} MB (${pct}%)`;
    if (tty) {
      Deno.stderr.writeSync(new TextEncoder().encode(`\r${line}${done >= total ? "\n" : ""}`));
    } else if (Math.floor(pct / 10) > lastTenth || done >= total) {
      lastTenth = Math.floor(pct / 10);
      err(line);
    }
  };
}

/**
 * A reporter of download progress: a bar with bytes, rate and time left on a terminal.
 *
 * @param err Where plain lines go.
 * @returns The callback for `GPTModel.fromPretrained`'s `onDownload`.
 */
export function downloadProgress(err: (s: string) => void): (p: DownloadProgress) => void {
  const tty = Deno.stderr.isTerminal();
  let file = "";
  let t0 = 0;
  let first = 0;
  let lastTenth = -1;
  let lastDraw = 0;
  return (p) => {
    const now = performance.now();
    if (p.file !== file) {
      file = p.file;
      t0 = now;
      first = p.done;
      lastTenth = -1;
    }
    const rate = (p.done - first) / Math.max(1e-3, (now - t0) / 1000);
    const left = p.total > 0 ? (p.total - p.done) / rate : NaN;
    const frac = p.total > 0 ? Math.min(1, p.done / p.total) : 0;
    const finished = p.total > 0 && p.done >= p.total;
    const text = `${file}: ${mb(p.done)} / ${mb(p.total)} MB, ${mb(rate)} MB/s, ${seconds(left)} left`;
    if (tty) {
      if (!finished && now - lastDraw < 100) return;
      lastDraw = now;
      const width = 24;
      const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
      Deno.stderr.writeSync(new TextEncoder().encode(`\r\x1b[2K[${bar}] ${text}${finished ? "\n" : ""}`));
    } else if (Math.floor(frac * 10) > lastTenth || finished) {
      lastTenth = Math.floor(frac * 10);
      err(`downloading ${text}`);
    }
  };
}
