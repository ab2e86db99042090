/**
 * The playground page the server shows at `/`: a prompt, the sampling settings, the text as it
 * streams from `/v1/completions`, and for each new token its five most likely candidates with
 * their probabilities as bars (from `logprobs`). One static page, no build step.
 *
 * @module
 */

/** The page. */
export const PLAYGROUND_HTML: string = /* html */ `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gpt-webgpu playground</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
  header { padding: 12px 20px; background: #1d232a; color: #fff; }
  header b { font-weight: 600; } header span { opacity: .7; margin-left: 8px; }
  main { display: grid; grid-template-columns: 300px 1fr; gap: 20px; padding: 20px; }
  form, section { background: #fff; border: 1px solid #dde1e6; border-radius: 8px; padding: 16px; }
  label { display: block; margin: 10px 0 4px; font-size: 13px; color: #4a5562; }
  textarea, input { width: 100%; box-sizing: border-box; font: inherit; padding: 6px 8px;
    border: 1px solid #c5ccd4; border-radius: 6px; }
  textarea { height: 110px; resize: vertical; }
  .row { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
  button { margin-top: 14px; width: 100%; padding: 8px; font: inherit; font-weight: 600; color: #fff;
    background: #2563eb; border: 0; border-radius: 6px; cursor: pointer; }
  button:disabled { background: #93a3bd; cursor: default; }
  #out { white-space: pre-wrap; font: 16px/1.6 ui-monospace, monospace; min-height: 3em; }
  #out .prompt { color: #6b7480; }
  #out .tok { border-bottom: 2px solid #bfd3fb; cursor: pointer; }
  #out .tok.sel { background: #dbe7ff; }
  .sub { font-size: 12px; }
  #legend { color: #6b7480; margin: 14px 0 0; }
  #status { font-size: 13px; color: #6b7480; margin: 8px 0 0; }
  #status.error { color: #b42318; }
  #cands { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 16px; }
  .card { border: 1px solid #dde1e6; border-radius: 6px; padding: 8px; width: 200px; font-size: 12px; }
  .card.sel { border-color: #2563eb; }
  .card h3 { margin: 0; font: 600 13px ui-monospace, monospace; }
  .card .sub { color: #6b7480; margin-bottom: 6px; }
  .cand { display: grid; grid-template-columns: 70px 1fr 52px; gap: 6px; align-items: center; margin: 2px 0; }
  .cand code { overflow: hidden; white-space: pre; text-overflow: ellipsis; }
  .cand.chosen code { font-weight: 700; }
  .track { background: #eef1f4; height: 10px; border-radius: 3px; }
  .bar { background: #2563eb; height: 10px; border-radius: 3px; }
  .cand.chosen .bar { background: #16a34a; }
  .p { text-align: right; color: #4a5562; }
</style>
</head>
<body>
<header><b>gpt-webgpu</b><span id="model">playground</span></header>
<main>
<form id="form">
  <label for="prompt">Prompt</label>
  <textarea id="prompt">Every effort moves you</textarea>
  <div class="row">
    <div><label for="max_tokens">Max tokens</label><input id="max_tokens" type="number" min="1" value="24"></div>
    <div><label for="temperature">Temperature</label><input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></div>
    <div><label for="top_k">Top-k (0: off)</label><input id="top_k" type="number" min="0" value="40"></div>
    <div><label for="top_p">Top-p</label><input id="top_p" type="number" min="0" max="1" step="0.05" value="1"></div>
    <div><label for="seed">Seed (blank: random)</label><input id="seed" type="number" min="0"></div>
    <div><label for="key">API key</label><input id="key" type="password" autocomplete="off"></div>
  </div>
  <button id="go" type="submit">Generate</button>
  <p id="status"></p>
</form>
<section>
  <div id="out"></div>
  <p id="legend" class="sub">Each new token with its five most likely candidates; bars scale to the most likely one.</p>
  <div id="cands"></div>
</section>
</main>
<script type="module">
const $ = (id) => document.getElementById(id);
let model = "gpt2";
const headers = () => {
  const h = { "content-type": "application/json" };
  if ($("key").value) h.authorization = "Bearer " + $("key").value;
  return h;
};
const status = (text, error = false) => { $("status").textContent = text; $("status").className = error ? "error" : ""; };
async function loadModel() {
  const r = await fetch("/v1/models", { headers: headers() });
  if (r.ok) { model = (await r.json()).data[0].id; $("model").textContent = model; }
}
const pct = (p) => (p >= 0.001 ? (p * 100).toFixed(1) : (p * 100).toPrecision(2)) + "%";
function select(i) {
  for (const el of document.querySelectorAll(".sel")) el.classList.remove("sel");
  for (const el of document.querySelectorAll('[data-i="' + i + '"]')) el.classList.add("sel");
}
function addToken(i, token, chosenLp, top) {
  const span = document.createElement("span");
  span.className = "tok"; span.dataset.i = i; span.textContent = token;
  span.title = "p = " + Math.exp(chosenLp).toFixed(4);
  span.onclick = () => select(i);
  $("out").append(span);
  const card = document.createElement("div");
  card.className = "card"; card.dataset.i = i; card.onclick = () => select(i);
  const h = document.createElement("h3"); h.textContent = JSON.stringify(token); card.append(h);
  const sub = document.createElement("div"); sub.className = "sub"; sub.textContent = "p = " + pct(Math.exp(chosenLp));
  card.append(sub);
  const sorted = Object.entries(top).sort((a, b) => b[1] - a[1]);
  const pmax = Math.exp(sorted[0][1]);
  for (const [t, lp] of sorted) {
    const p = Math.exp(lp);
    const row = document.createElement("div");
    row.className = "cand" + (t === token ? " chosen" : "");
    const code = document.createElement("code"); code.textContent = JSON.stringify(t);
    const track = document.createElement("div"); track.className = "track";
    const bar = document.createElement("div"); bar.className = "bar";
    // bars scale to the most likely candidate: an untrained model's are all tiny
    bar.style.width = Math.max(1, (p / pmax) * 100).toFixed(1) + "%"; bar.dataset.p = p;
    track.append(bar);
    const num = document.createElement("span"); num.className = "p"; num.textContent = pct(p);
    row.append(code, track, num); card.append(row);
  }
  $("cands").append(card);
}
$("form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("go").disabled = true; $("out").textContent = ""; $("cands").textContent = "";
  const prompt = document.createElement("span"); prompt.className = "prompt"; prompt.textContent = $("prompt").value;
  $("out").append(prompt);
  const num = (id) => Number($(id).value);
  const body = { model, prompt: $("prompt").value, max_tokens: num("max_tokens"), temperature: num("temperature"),
    stream: true, logprobs: 5 };
  if (body.temperature > 0) { if (num("top_k") > 0) body.top_k = num("top_k"); if (num("top_p") < 1) body.top_p = num("top_p"); }
  if ($("seed").value !== "") body.seed = num("seed");
  status("generating...");
  const t0 = performance.now();
  let n = 0;
  try {
    const r = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!r.ok) throw new Error((await r.json()).error.message);
    const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "", finish = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let at;
      while ((at = buf.indexOf("\\n\\n")) >= 0) {
        const line = buf.slice(0, at); buf = buf.slice(at + 2);
        if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
        const ev = JSON.parse(line.slice(6));
        if (ev.error) throw new Error(ev.error.message);
        const c = ev.choices[0];
        const lp = c.logprobs;
        if (lp) lp.tokens.forEach((t, k) => addToken(n++, t, lp.token_logprobs[k], lp.top_logprobs[k]));
        if (c.finish_reason) finish = c.finish_reason;
        status(n + " tokens, " + ((performance.now() - t0) / 1000).toFixed(1) + " s");
      }
    }
    status(n + " tokens in " + ((performance.now() - t0) / 1000).toFixed(1) + " s (" + finish + ")");
    document.body.dataset.done = "1";
  } catch (e) {
    status(e.message, true);
    document.body.dataset.done = "error";
  } finally {
    $("go").disabled = false;
  }
};
$("key").onchange = loadModel;
loadModel();
</script>
</body>
</html>
`;
