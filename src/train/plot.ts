/**
 * The book's loss plot (`plot_losses`) as an SVG: training and validation loss against epochs,
 * with tokens seen on a second x axis along the top.
 *
 * @module
 */

/** What {@linkcode plotLosses} draws. */
export interface LossPlot {
  /** The epoch of each evaluation (fractional: `linspace(0, numEpochs, n)` as the book plots). */
  epochsSeen: number[];
  /** Tokens seen at each evaluation. */
  tokensSeen: number[];
  /** Training losses. */
  trainLosses: number[];
  /** Validation losses. */
  valLosses: number[];
}

const W = 640, H = 400, L = 64, R = 24, T = 48, B = 56;

function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

/**
 * Draws the losses.
 *
 * @param p Epochs and tokens of each evaluation, and both losses.
 * @returns An SVG document.
 */
export function plotLosses(p: LossPlot): string {
  const n = p.epochsSeen.length;
  const finite = [...p.trainLosses, ...p.valLosses].filter(Number.isFinite);
  const yLo = finite.length ? Math.min(...finite) : 0, yHi = finite.length ? Math.max(...finite) : 1;
  const pad = (yHi - yLo) * 0.05 || 0.5;
  const [y0, y1] = [yLo - pad, yHi + pad];
  const xHi = (p.epochsSeen[n - 1] ?? 0) > 0 ? p.epochsSeen[n - 1] : 1;
  const x = (e: number) => L + (e / xHi) * (W - L - R);
  const y = (v: number) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const line = (vals: number[], style: string) => {
    const pts = vals.map((v, i) => [x(p.epochsSeen[i]), y(v)] as const).filter(([, v]) => Number.isFinite(v));
    return `<polyline fill="none" ${style} points="${
      pts.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" ")
    }"/>`;
  };
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#333"/>`,
  ];
  for (const v of ticks(y0, y1)) {
    parts.push(`<line x1="${L - 4}" x2="${L}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#333"/>`);
    parts.push(`<text x="${L - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`);
  }
  for (const e of ticks(0, xHi)) {
    parts.push(`<line x1="${x(e).toFixed(1)}" x2="${x(e).toFixed(1)}" y1="${H - B}" y2="${H - B + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x(e).toFixed(1)}" y="${H - B + 18}" text-anchor="middle">${e}</text>`);
  }
  const tokHi = p.tokensSeen[n - 1] ?? 0;
  for (const t of tokHi > 0 ? ticks(0, tokHi, 4) : []) {
    const xe = x((t / tokHi) * xHi);
    parts.push(`<line x1="${xe.toFixed(1)}" x2="${xe.toFixed(1)}" y1="${T - 4}" y2="${T}" stroke="#333"/>`);
    parts.push(`<text x="${xe.toFixed(1)}" y="${T - 8}" text-anchor="middle">${t}</text>`);
  }
  parts.push(
    line(p.trainLosses, `stroke="#1f77b4" stroke-width="2"`),
    line(p.valLosses, `stroke="#ff7f0e" stroke-width="2" stroke-dasharray="6 4"`),
    `<text x="${(L + W - R) / 2}" y="${H - 16}" text-anchor="middle">Epochs</text>`,
    `<text x="${(L + W - R) / 2}" y="16" text-anchor="middle">Tokens seen</text>`,
    `<text transform="translate(16 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">Loss</text>`,
    `<g transform="translate(${W - R - 150} ${T + 12})"><rect width="140" height="44" fill="white" stroke="#ccc"/>`,
    `<line x1="8" x2="36" y1="14" y2="14" stroke="#1f77b4" stroke-width="2"/><text x="42" y="18">${
      esc("Training loss")
    }</text>`,
    `<line x1="8" x2="36" y1="32" y2="32" stroke="#ff7f0e" stroke-width="2" stroke-dasharray="6 4"/>`,
    `<text x="42" y="36">${esc("Validation loss")}</text></g>`,
    `</svg>`,
  );
  return parts.join("\n") + "\n";
}
