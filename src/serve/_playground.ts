/**
 * The playground page the server shows at `/` (and the web build's `index.html`): a prompt, the
 * sampling settings, the text as it streams, and for each new token its five most likely
 * candidates with their probabilities as bars. It runs the model on the server (`/v1/completions`)
 * or in the page itself with the browser's WebGPU (the web build's `mod.js`): the untrained
 * seed-123 model, GPT-2 from the hub, or a local `.safetensors` file.
 *
 * @module
 */

/**
 * A file of the web build (`deno task build` writes `dist/`) for the page's in-page mode.
 *
 * @param name `mod.js` or `init_worker.js`.
 * @returns It, or a 404 that says how to build it.
 */
export async function webBuildFile(name: string): Promise<Response> {
  const url = new URL(`../../dist/${name}`, import.meta.url);
  const r = await fetch(url).catch(() => undefined);
  if (!r?.ok) {
    await r?.body?.cancel();
    return Response.json({
      error: { message: `The web build is missing (${url.href}); run 'deno task build'`, code: "not_built" },
    }, { status: 404 });
  }
  return new Response(r.body, { headers: { "content-type": "text/javascript; charset=utf-8" } });
}

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
  select { width: 100%; font: inherit; padding: 5px; border: 1px solid #c5ccd4; border-radius: 6px; }
  #local { border-top: 1px solid #dde1e6; margin-top: 12px; }
  #local[hidden], .server-only[hidden] { display: none; }
  #local button { background: #475569; }
  progress { width: 100%; margin-top: 8px; }
  #adapter { font-size: 12px; color: #6b7480; margin: 6px 0 0; }
</style>
</head>
<body>
<header><b>gpt-webgpu</b><span id="model">playground</span></header>
<main>
<form id="form">
  <label for="mode">Run the model</label>
  <select id="mode"><option value="server">on the server</option><option value="page">in this page (WebGPU)</option></select>
  <div id="local" hidden>
    <label for="source">Model</label>
    <select id="source">
      <option value="seed">untrained, torch.manual_seed(123), 124M</option>
      <option value="hub">GPT-2 from the Hugging Face hub</option>
      <option value="file">a local .safetensors file</option>
    </select>
    <div id="hub-row" hidden><label for="hub">Name</label><input id="hub" value="gpt2"></div>
    <div id="file-row" hidden><label for="file">model.safetensors (and config.json)</label>
      <input id="file" type="file" multiple accept=".safetensors,.json"></div>
    <button id="load" type="button">Load the model</button>
    <progress id="bar" max="1" value="0" hidden></progress>
    <p id="adapter"></p>
  </div>
  <label for="prompt">Prompt</label>
  <textarea id="prompt">Every effort moves you</textarea>
  <div class="row">
    <div><label for="max_tokens">Max tokens</label><input id="max_tokens" type="number" min="1" value="24"></div>
    <div><label for="temperature">Temperature</label><input id="temperature" type="number" min="0" max="2" step="0.1" value="0.8"></div>
    <div><label for="top_k">Top-k (0: off)</label><input id="top_k" type="number" min="0" value="40"></div>
    <div><label for="top_p">Top-p</label><input id="top_p" type="number" min="0" max="1" step="0.05" value="1"></div>
    <div><label for="seed">Seed (blank: random)</label><input id="seed" type="number" min="0"></div>
    <div class="server-only"><label for="key">API key</label><input id="key" type="password" autocomplete="off"></div>
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
async function serverModel() {
  const r = await fetch("/v1/models", { headers: headers() }).catch(() => undefined);
  if (r?.ok) { model = (await r.json()).data[0].id; $("model").textContent = model; }
  return Boolean(r?.ok);
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
  const sorted = top.slice().sort((a, b) => b[1] - a[1]);
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
// the server: tokens as /v1/completions streams them
async function* fromServer(s) {
  const body = { model, prompt: s.prompt, max_tokens: s.max_tokens, temperature: s.temperature, stream: true, logprobs: 5 };
  if (s.temperature > 0) { if (s.top_k > 0) body.top_k = s.top_k; if (s.top_p < 1) body.top_p = s.top_p; }
  if (s.seed !== undefined) body.seed = s.seed;
  const r = await fetch("/v1/completions", { method: "POST", headers: headers(), body: JSON.stringify(body) });
  if (!r.ok) throw new Error((await r.json()).error.message);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let at;
    while ((at = buf.indexOf("\\n\\n")) >= 0) {
      const line = buf.slice(0, at); buf = buf.slice(at + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const ev = JSON.parse(line.slice(6));
      if (ev.error) throw new Error(ev.error.message);
      const lp = ev.choices[0].logprobs;
      if (lp) for (let k = 0; k < lp.tokens.length; k++) {
        yield { token: lp.tokens[k], logprob: lp.token_logprobs[k], top: Object.entries(lp.top_logprobs[k]) };
      }
    }
  }
}
// the page: the web build's library on the browser's WebGPU
let lib, local, batcher;
const library = async () => lib ??= await import(new URL("mod.js", location.href).href);
const bar = (v) => { $("bar").hidden = v === undefined; if (v !== undefined) $("bar").value = v; };
async function loadLocal() {
  const L = await library();
  await batcher?.close(); local?.destroy(); local = batcher = undefined;
  const onProgress = (done, total) => bar(total ? done / total : 0);
  const source = $("source").value;
  status("loading the model...");
  bar(0);
  const t0 = performance.now();
  if (source === "seed") {
    bar();
    local = await L.GPTModel.create(L.GPT_CONFIG_124M, { seed: 123 });
  } else if (source === "hub") {
    local = await L.GPTModel.fromPretrained($("hub").value.trim(), { onDownload: (p) => onProgress(p.done, p.total), onProgress });
  } else {
    const files = [...$("file").files];
    const weights = files.find((f) => f.name.endsWith(".safetensors"));
    if (!weights) throw new Error("Choose a .safetensors file first");
    const json = files.find((f) => f.name.endsWith(".json"));
    const config = json ? L.huggingFaceConfig(JSON.parse(await json.text()), json.name) : undefined;
    local = await L.GPTModel.load(weights, { config, onProgress });
  }
  bar();
  batcher = new L.Batcher(local, { maxBatch: 1 });
  $("model").textContent = source === "hub" ? $("hub").value : source === "file" ? "local file" : "untrained 124M";
  $("adapter").textContent = "on " + local.adapter + " (" + local.dtype + ")";
  status("loaded in " + ((performance.now() - t0) / 1000).toFixed(1) + " s");
  document.body.dataset.loaded = "1";
}
async function* fromPage(s) {
  if (!local) await loadLocal();
  const L = await library();
  const options = { maxNewTokens: s.max_tokens, temperature: s.temperature, logprobs: true };
  if (s.temperature > 0) { if (s.top_k > 0) options.topK = s.top_k; if (s.top_p < 1) options.topP = s.top_p; }
  if (s.seed !== undefined) options.seed = s.seed;
  for await (const chunk of batcher.add(L.encode(s.prompt), options)) {
    for (let k = 0; k < chunk.ids.length; k++) {
      const lp = chunk.logprobs[k];
      yield { token: L.decode([chunk.ids[k]]), logprob: lp.logprob, top: lp.top.map((c) => [L.decode([c.id]), c.logprob]) };
    }
  }
}
function showMode() {
  const page = $("mode").value === "page";
  $("local").hidden = !page;
  for (const el of document.querySelectorAll(".server-only")) el.hidden = page;
  $("hub-row").hidden = $("source").value !== "hub";
  $("file-row").hidden = $("source").value !== "file";
}
$("mode").onchange = showMode;
$("source").onchange = () => { showMode(); local?.destroy(); local = undefined; };
$("load").onclick = async () => {
  $("load").disabled = true;
  try { await loadLocal(); } catch (e) { bar(); status(e.message, true); } finally { $("load").disabled = false; }
};
$("form").onsubmit = async (ev) => {
  ev.preventDefault();
  $("go").disabled = true; $("out").textContent = ""; $("cands").textContent = "";
  delete document.body.dataset.done;
  const prompt = document.createElement("span"); prompt.className = "prompt"; prompt.textContent = $("prompt").value;
  $("out").append(prompt);
  const num = (id) => Number($(id).value);
  const s = { prompt: $("prompt").value, max_tokens: num("max_tokens"), temperature: num("temperature"),
    top_k: num("top_k"), top_p: num("top_p"), seed: $("seed").value === "" ? undefined : num("seed") };
  let n = 0, t0;
  try {
    const tokens = $("mode").value === "page" ? fromPage(s) : fromServer(s);
    status("generating...");
    t0 = performance.now();
    for await (const t of tokens) {
      if (n === 0) t0 = performance.now(); // from the first token: the rate of decoding
      addToken(n++, t.token, t.logprob, t.top);
      status(n + " tokens, " + ((performance.now() - t0) / 1000).toFixed(1) + " s");
    }
    const s2 = (performance.now() - t0) / 1000;
    status(n + " tokens in " + s2.toFixed(1) + " s" + (n > 1 ? " (" + ((n - 1) / s2).toFixed(1) + " tokens/s)" : ""));
    document.body.dataset.done = "1";
  } catch (e) {
    bar();
    status(e.message, true);
    document.body.dataset.done = "error";
  } finally {
    $("go").disabled = false;
  }
};
$("key").onchange = serverModel;
// a page from a static server (no API) runs the model itself; so does ?mode=page
const wanted = new URLSearchParams(location.search).get("mode");
if (wanted === "page" || !(await serverModel())) $("mode").value = "page";
showMode();
</script>
</body>
</html>
`;
