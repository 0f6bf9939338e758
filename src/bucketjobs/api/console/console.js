// The bucketjobs console: a client of the MAPI routes, as the CLI and the SDK are.
//
// Decisions (docs/DECISIONS.md, "Console"): no framework and no build step; every value from
// the server reaches the page through textContent, never as markup; the session (access and
// refresh token) lives in this tab's sessionStorage, so a reload keeps it and closing the tab
// ends it; state-changing calls carry the CSRF pair the browser holds as cookies.

const REALM = "/ui/auth/realms/vsp-object/protocol/openid-connect";
const CLIENT_ID = "vsp-object-external-client";
const EARLY_MS = 30_000; // refresh an access token this long before it expires
const CSRF_REUSE_MS = 3_000_000; // the server accepts a pair for an hour
const PAGE_SIZE = 20;
const CHART_POINTS = 600; // samples kept for the chart (older ones are thinned)

const $ = (id) => document.getElementById(id);

// ---- Session and calls -------------------------------------------------------------------

const session = {
  load() {
    try {
      return JSON.parse(sessionStorage.getItem("bucketjobs") || "null");
    } catch {
      return null;
    }
  },
  save(value) {
    if (value) sessionStorage.setItem("bucketjobs", JSON.stringify(value));
    else sessionStorage.removeItem("bucketjobs");
  },
};

let current = session.load(); // {user, access, accessUntil, refresh}
let csrfAt = 0;

class ApiError extends Error {
  constructor(status, body) {
    const code = body?.code || (status === 401 ? "UNAUTHORIZED" : `HTTP_${status}`);
    const text = body?.message || body?.error_description || body?.error || "no error body";
    super(`${code}: ${text}${body?.details ? ` (${body.details})` : ""}`);
    this.status = status;
    this.code = code;
  }
}

async function answerOf(response) {
  const text = await response.text();
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

async function tokens(form) {
  const response = await fetch(`${REALM}/token`, {
    method: "POST",
    body: new URLSearchParams({ client_id: CLIENT_ID, ...form }),
  });
  const body = await answerOf(response);
  if (!response.ok) throw new ApiError(response.status, body);
  current = {
    user: current?.user || form.username,
    access: body.access_token,
    accessUntil: Date.now() + Number(body.expires_in || 60) * 1000 - EARLY_MS,
    refresh: body.refresh_token || current?.refresh,
  };
  session.save(current);
}

async function bearer(renew = false) {
  if (!current) throw new ApiError(401, { message: "not logged in" });
  if (renew || Date.now() >= current.accessUntil) {
    try {
      await tokens({ grant_type: "refresh_token", refresh_token: current.refresh });
    } catch (error) {
      if (error.status === 401 || error.status === 400) endSession();
      throw error;
    }
  }
  return current.access;
}

// The session is over (logged out elsewhere, or expired): back to the login form.
function endSession() {
  current = null;
  session.save(null);
  show("login");
}

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return null;
}

async function csrf(renew = false) {
  if (renew || !cookie("XSRF-TOKEN") || Date.now() - csrfAt > CSRF_REUSE_MS) {
    const response = await fetch("/mapi/v1/csrf", { credentials: "same-origin" });
    if (!response.ok) throw new ApiError(response.status, await answerOf(response));
    csrfAt = Date.now();
  }
  return cookie("XSRF-TOKEN");
}

// POST a MAPI route; a 401 (expired token or CSRF pair) is retried once with new ones.
async function call(path, body = {}) {
  for (const attempt of [1, 2]) {
    const renew = attempt === 2;
    const response = await fetch(`/mapi/v1${path}`, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${await bearer(renew)}`,
        "X-XSRF-TOKEN": await csrf(renew),
      },
      body: JSON.stringify(body),
    });
    const answer = await answerOf(response);
    if (response.ok) return answer;
    if (response.status !== 401 || renew) throw new ApiError(response.status, answer);
  }
}

// The job now, then at each change until its terminal state (Server-Sent Events read with
// fetch, because EventSource cannot send a bearer token). Ends when `signal` aborts.
async function follow(jobId, onJob, signal) {
  const response = await fetch(`/mapi/v1/jobs/events?jobId=${encodeURIComponent(jobId)}`, {
    headers: { Authorization: `Bearer ${await bearer()}` },
    signal,
  });
  if (!response.ok) throw new ApiError(response.status, await answerOf(response));
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n");
      if (data) onJob(JSON.parse(data));
    }
  }
}

// ---- Page helpers ------------------------------------------------------------------------

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell);
    else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

function facts(dl, pairs) {
  dl.replaceChildren();
  for (const [name, value] of pairs) dl.append(element("dt", name), element("dd", value ?? "-"));
}

const number = (n) => Number(n).toLocaleString("en");

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = Number(n);
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

function duration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return "-";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

const TERMINAL = new Set(["COMPLETE", "FAILED", "CANCELLED"]);

// ---- Views -------------------------------------------------------------------------------

const VIEWS = ["login", "jobs", "job", "create", "metrics"];
let leaving = new AbortController(); // aborts what the view on screen still has running

// Answers can arrive out of order: a view shows only the answer to its newest question.
const questions = {};
function newest(view) {
  const asked = (questions[view] = (questions[view] || 0) + 1);
  return () => questions[view] === asked;
}

function show(name) {
  leaving.abort();
  leaving = new AbortController();
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  $("nav").hidden = $("who").hidden = name === "login";
  $("who-name").textContent = current?.user || "";
}

async function route() {
  showError(null);
  if (!current) return show("login");
  const [, view, id] = location.hash.split("/");
  try {
    if (view === "job" && id) await jobView(id);
    else if (view === "create") await createView();
    else if (view === "metrics") show("metrics");
    else await jobsView();
  } catch (error) {
    showError(error);
  }
}

// Jobs table: filters and pages (the API's page tokens; "first page" starts over).
let filter = {};
let pageToken = null;

async function jobsView() {
  show("jobs");
  await jobsPage(null);
}

async function jobsPage(token) {
  const body = { pageSize: PAGE_SIZE, ...filter };
  if (token) body.pageToken = token;
  const stillNewest = newest("jobs");
  const answer = await call("/jobs/list", body);
  if (!stillNewest()) return;
  const rows = answer.jobs.map((job) => {
    const link = element("a", job.jobId.id);
    link.href = `#/job/${job.jobId.id}`;
    const s = job.jobStats;
    return row([link, job.jobType, job.bucketName, element("span", job.jobState, `state ${job.jobState}`),
      number(s.processed), number(s.failed), number(s.total), job.startTime]);
  });
  $("jobs-table").tBodies[0].replaceChildren(...rows);
  $("jobs-empty").hidden = rows.length > 0;
  pageToken = answer.pageToken || null;
  $("jobs-next").disabled = !pageToken;
  $("jobs-first").disabled = !token;
}

// Job detail: live from the event stream, a chart of objects/s over the job's life.
async function jobView(id) {
  show("job");
  const signal = leaving.signal;
  $("job-id").textContent = id;
  $("job-result").textContent = "none yet";
  const samples = [];
  let job = (await call("/jobs/status", { jobId: { id: Number(id) } })).status;
  const draw = (next) => {
    job = next;
    samples.push([Date.now(), job.jobStats.processed]);
    if (samples.length > CHART_POINTS) samples.splice(1, samples.length - CHART_POINTS);
    renderJob(job, samples);
  };
  draw(job);
  await failuresPage(job, null);
  if (TERMINAL.has(job.jobState)) return;
  try {
    await follow(id, draw, signal);
  } catch (error) {
    if (signal.aborted) return;
    throw error;
  }
  if (!signal.aborted) await failuresPage(job, null);
}

function renderJob(job, samples) {
  const s = job.jobStats;
  const state = $("job-state");
  state.textContent = job.jobState;
  state.className = `state ${job.jobState}`;
  const started = Date.parse(job.startTime);
  const until = job.completeTime ? Date.parse(job.completeTime) : Date.now();
  const elapsed = Math.max((until - started) / 1000, 0.001);
  const rate = s.processed / elapsed;
  // `total` grows while the bucket is still being listed: an ETA only for what is known.
  const settled = s.processed + s.failed + s.skipped;
  const left = s.total > settled && rate > 0 ? (s.total - settled) / rate : null;
  facts($("job-facts"), [
    ["Type", job.jobType],
    ["Bucket", job.bucketName],
    ["Parameters", Object.entries(job.jobParams).map(([k, v]) => `${k}=${v}`).join(", ") || "defaults"],
    ["Processed", number(s.processed)],
    ["Failed", number(s.failed)],
    ["Skipped", number(s.skipped)],
    ["Total", s.total ? number(s.total) : "not known yet"],
    ["Bytes", bytes(s.bytes)],
    ["Started", job.startTime],
    ["Completed", job.completeTime],
  ]);
  const ended = TERMINAL.has(job.jobState);
  const share = s.total ? Math.min(ended ? 100 : 99, (100 * settled) / s.total) : 0;
  $("job-bar").style.width = `${job.jobState === "COMPLETE" ? 100 : share}%`;
  let when = "";
  if (ended) when = `, took ${duration(elapsed)}`;
  else if (left !== null) when = `, about ${duration(left)} left`;
  $("job-rate").textContent = `${number(rate.toFixed(1))} objects/s, ${bytes(s.bytes / elapsed)}/s${when}`;
  $("job-message").textContent = job.message || "";
  $("job-cancel").hidden = TERMINAL.has(job.jobState);
  $("job-cancel").dataset.jobId = job.jobId.id;
  if (job.result) $("job-result").textContent = JSON.stringify(job.result, null, 2);
  chart(started, samples);
}

// Objects per second over the job's life, from its start (0 processed then) to the latest
// sample, as a polyline scaled to the box. Counters move a partition at a time, so each
// point is the rate over the RATE_WINDOW_MS before it, not since the previous sample.
const RATE_WINDOW_MS = 3000;

function chart(started, samples) {
  const svg = $("job-chart");
  const points = [[started, 0], ...samples.filter(([t]) => t > started)];
  const rates = [];
  let from = 0;
  for (let i = 1; i < points.length; i += 1) {
    while (from < i - 1 && points[i][0] - points[from + 1][0] >= RATE_WINDOW_MS) from += 1;
    const seconds = (points[i][0] - points[from][0]) / 1000;
    if (seconds > 0) rates.push([points[i][0], (points[i][1] - points[from][1]) / seconds]);
  }
  const ns = "http://www.w3.org/2000/svg";
  const nodes = [];
  const top = Math.max(1, ...rates.map(([, r]) => r));
  const end = Math.max(started + 1000, ...points.map(([t]) => t));
  const x = (t) => 40 + (540 * (t - started)) / (end - started);
  const y = (r) => 140 - (120 * r) / top;
  const axis = document.createElementNS(ns, "path");
  axis.setAttribute("d", "M40 20 V140 H580");
  axis.setAttribute("class", "axis");
  nodes.push(axis);
  for (const [text, tx, ty] of [[`${number(Math.round(top))}/s`, 2, 24], ["0", 28, 144],
    [duration((end - started) / 1000), 540, 156]]) {
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", tx);
    label.setAttribute("y", ty);
    label.textContent = text;
    nodes.push(label);
  }
  if (rates.length) {
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", [[started, rates[0][1]], ...rates].map(([t, r]) => `${x(t).toFixed(1)},${y(r).toFixed(1)}`).join(" "));
    line.setAttribute("class", "rate");
    nodes.push(line);
  }
  svg.replaceChildren(...nodes);
}

let failuresToken = null;

async function failuresPage(job, token) {
  const body = { jobId: { id: job.jobId.id }, pageSize: 100 };
  if (token) body.pageToken = token;
  const answer = await call("/jobs/failures", body);
  const rows = answer.failures.map((f) =>
    row([f.key, f.versionId, f.errorCode, f.httpStatus, f.message, f.attempts]));
  const tbody = $("job-failures").tBodies[0];
  if (token) tbody.append(...rows);
  else tbody.replaceChildren(...rows);
  $("job-failures-none").hidden = tbody.rows.length > 0;
  failuresToken = answer.pageToken || null;
  $("job-failures-more").hidden = !failuresToken;
}

// New job: the parameters of each type and their help come from the OpenAPI document.
let paramsByType = null;

async function createView() {
  show("create");
  if (!paramsByType) {
    const response = await fetch("/openapi.json");
    if (!response.ok) throw new ApiError(response.status, await answerOf(response));
    const openapi = await response.json();
    const create = openapi.paths["/mapi/v1/jobs/create"].post.requestBody;
    const schema = create.content["application/json"].schema;
    paramsByType = {};
    for (const variant of schema.oneOf) {
      const type = variant.properties.jobType.const;
      paramsByType[type] = variant.properties.jobParams.anyOf[0].properties;
    }
    const select = $("create-form").elements.jobType;
    select.replaceChildren(...Object.keys(paramsByType).map((type) => new Option(type, type)));
    select.addEventListener("change", renderParams);
  }
  renderParams();
}

function renderParams() {
  const type = $("create-form").elements.jobType.value;
  const fieldset = $("create-params");
  const rows = Object.entries(paramsByType[type]).map(([name, spec]) => {
    const label = element("label");
    const input = element("input");
    input.name = `param:${name}`;
    input.maxLength = spec.maxLength || 4096;
    if (name === "dryRun") input.placeholder = "false";
    label.append(element("span", name, "name"), input, element("small", spec.description));
    return label;
  });
  fieldset.replaceChildren(fieldset.firstElementChild, ...rows);
}

async function createJob(form) {
  const params = {};
  for (const input of form.querySelectorAll("[name^='param:']")) {
    if (input.value !== "") params[input.name.slice(6)] = input.value;
  }
  const answer = await call("/jobs/create", {
    jobType: form.elements.jobType.value,
    bucketName: form.elements.bucketName.value,
    jobParams: params,
  });
  location.hash = `#/job/${answer.jobStatus.jobId.id}`;
}

async function metrics(bucket) {
  const stillNewest = newest("metrics");
  const answer = await call("/bucket/metrics", { bucketName: bucket });
  if (!stillNewest()) return;
  const m = answer.metrics;
  facts($("metrics-facts"), [
    ["Objects", number(m.objectCount)],
    ["Bytes", bytes(m.bytes)],
    ["Noncurrent versions", number(m.noncurrentVersionCount)],
    ["Noncurrent bytes", bytes(m.noncurrentBytes)],
    ["Delete markers", number(m.deleteMarkerCount)],
    ["Incomplete uploads", number(m.incompleteUploadCount)],
    ["Incomplete upload bytes", bytes(m.incompleteUploadBytes)],
    ["Recounted", answer.reconciledTime],
    ["By job", answer.jobId.id],
  ]);
}

async function logout() {
  const refresh = current?.refresh;
  current = null;
  session.save(null);
  if (refresh) {
    await fetch(`${REALM}/logout`, {
      method: "POST",
      body: new URLSearchParams({ client_id: CLIENT_ID, refresh_token: refresh }),
    }).catch(() => {});
  }
  location.hash = "";
  show("login");
}

// ---- Wiring ------------------------------------------------------------------------------

// Runs `work`, showing its error on whatever view is left on screen.
function guarded(work) {
  return async (event) => {
    event?.preventDefault();
    showError(null);
    try {
      await work(event);
    } catch (error) {
      showError(error);
    }
  };
}

function start() {
  for (const state of ["EXAMINING", "PROCESSING", "EXECUTING", ...TERMINAL]) {
    $("jobs-filter").elements.state.append(new Option(state, state));
  }
  for (const type of ["METRIC_RECONCILIATION", "BATCH_REPLICATE", "LIFECYCLE_UPDATE", "TRIGGER_RECONCILIATION"]) {
    $("jobs-filter").elements.type.append(new Option(type, type));
  }
  $("login-form").addEventListener("submit", guarded(async (event) => {
    const form = event.target;
    current = null;
    await tokens({ grant_type: "password", username: form.elements.username.value,
      password: form.elements.password.value });
    form.reset();
    if (location.hash.startsWith("#/")) await route();
    else location.hash = "#/jobs";
  }));
  $("logout").addEventListener("click", guarded(logout));
  $("jobs-filter").addEventListener("submit", guarded(async (event) => {
    const form = event.target.elements;
    filter = {};
    if (form.state.value) filter.jobStates = [form.state.value];
    if (form.type.value) filter.jobType = form.type.value;
    if (form.bucket.value) filter.bucketName = form.bucket.value;
    await jobsPage(null);
  }));
  $("jobs-next").addEventListener("click", guarded(() => jobsPage(pageToken)));
  $("jobs-first").addEventListener("click", guarded(() => jobsPage(null)));
  $("job-cancel").addEventListener("click", guarded(async () => {
    const id = Number($("job-cancel").dataset.jobId);
    if (!window.confirm(`Cancel job ${id}? Work already done stays done.`)) return;
    await call("/jobs/cancel", { jobId: { id } });
    await route(); // shows the job as cancel left it, and follows it to its end
  }));
  $("job-failures-more").addEventListener("click", guarded(async () => {
    await failuresPage({ jobId: { id: Number($("job-id").textContent) } }, failuresToken);
  }));
  $("create-form").addEventListener("submit", guarded((event) => createJob(event.target)));
  $("metrics-form").addEventListener("submit", guarded((event) =>
    metrics(event.target.elements.bucketName.value)));
  $("metrics-reconcile").addEventListener("click", guarded(async () => {
    const bucket = $("metrics-form").elements.bucketName.value;
    const answer = await call("/jobs/create", { jobType: "METRIC_RECONCILIATION", bucketName: bucket });
    location.hash = `#/job/${answer.jobStatus.jobId.id}`;
  }));
  window.addEventListener("hashchange", route);
  route();
}

start();
