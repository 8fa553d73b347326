// The ftc board's page: three views over the board's JSON endpoints (runs, a run, the spec editor).
// Plain DOM and SVG, no library: the page works offline and needs no build step.
"use strict";

const $ = (selector) => document.querySelector(selector);
const make = (tag, attributes = {}, ...children) => {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") element.textContent = value;
    else element.setAttribute(name, value);
  }
  element.append(...children);
  return element;
};
const SVG = "http://www.w3.org/2000/svg";
const svg = (tag, attributes = {}) => {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  return element;
};

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error + (answer.hint ? ` (hint: ${answer.hint})` : ""));
  return answer;
}

const duration = (seconds) => {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.round(seconds);
  return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.floor(s % 3600 / 60)} min`
       : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
};
const size = (gib) => gib >= 1 ? `${gib.toFixed(2)} GiB` : `${(gib * 1024).toFixed(1)} MiB`;

// ---- views -----------------------------------------------------------------------------------------
let timer = null;

function show(view) {
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${view}`;
  clearInterval(timer);
  timer = null;
}

function route() {
  const hash = decodeURIComponent(location.hash.slice(1));
  if (hash.startsWith("run=")) openRun(hash.slice(4));
  else if (hash.startsWith("editor")) openEditor(hash.slice(7));
  else openRuns();
}

// ---- runs ------------------------------------------------------------------------------------------
async function openRuns() {
  show("runs");
  await refreshRuns();
  timer = setInterval(refreshRuns, 3000);
}

async function refreshRuns() {
  const answer = await api("/api/runs");
  $("#folder").textContent = answer.folder;
  const body = $("#runs tbody");
  body.replaceChildren(...answer.runs.map((run) => {
    const steps = run.step === null || run.step === undefined ? "" : `${run.step} of ${run.steps ?? "?"}`;
    const row = make("tr", {"data-path": run.path},
      make("td", {class: "run-path", text: run.path}), make("td", {text: run.stage ?? ""}),
      make("td", {text: run.method ?? ""}), make("td", {text: run.model ?? ""}), make("td", {text: run.target ?? ""}),
      make("td", {}, make("span", {class: `state state-${run.state}`, title: run.reason, text: run.state})),
      make("td", {class: "run-step", text: steps}),
      make("td", {text: run.last_loss === null || run.last_loss === undefined ? "" : run.last_loss.toFixed(4)}),
      make("td", {text: duration(run.elapsed_s)}), make("td", {text: duration(run.remaining_s)}));
    row.addEventListener("click", () => { location.hash = `run=${encodeURIComponent(run.path)}`; });
    return row;
  }));
  $("#runs-empty").hidden = answer.runs.length > 0;
}

// ---- one run ---------------------------------------------------------------------------------------
async function openRun(path) {
  show("run");
  $("#run-said").textContent = "";
  $("#cancel").onclick = async () => {
    try { $("#run-said").textContent = (await api("/api/run/cancel", {path})).said; }
    catch (error) { $("#run-said").textContent = error.message; }
  };
  const refresh = async () => drawRun(path, await api(`/api/run?path=${encodeURIComponent(path)}`));
  await refresh();
  timer = setInterval(refresh, 2000);  // metrics.json grows while the run trains
}

function drawRun(path, run) {
  const s = run.summary;
  $("#run-title").textContent = path;
  $("#run-summary").replaceChildren(
    `${s.stage} · ${s.method} · ${s.model} · ${s.target} · `,
    make("span", {class: `state state-${s.state}`, title: s.reason, text: s.state}),
    ` ${s.reason} · step ${s.step ?? "–"} of ${s.steps ?? "?"} · elapsed ${duration(s.elapsed_s) || "–"}`
      + (s.remaining_s !== null ? ` · about ${duration(s.remaining_s)} left` : ""));
  $("#cancel").disabled = !["running", "queued"].includes(s.state);
  $("#charts").replaceChildren(...run.series.map((series) =>
    chart(series, series.name === "loss" ? run.eval : [])));
  const memory = run.memory;
  const bars = memory ? Object.entries(memory.terms).filter(([, gib]) => gib > 0) : [];
  const peak = run.peak_memory || {};
  const measured = peak.allocated_gib ?? peak.host_rss_gib;
  const planned = memory ? (peak.host_rss_gib !== undefined && !memory.capacity_gib ? memory.host_gib : memory.allocated_gib) : 0;
  const rows = bars.map(([name, gib]) => [name, gib, "bar"]);
  if (memory) rows.push(["planned peak", planned, "bar total"]);
  if (measured !== undefined) rows.push([peak.host_rss_gib !== undefined ? "measured (process RSS)" : "measured peak", measured, "bar measured"]);
  const scale = Math.max(memory?.capacity_gib || 0, ...rows.map(([, gib]) => gib), 1e-9);
  $("#run-memory").replaceChildren(...rows.map(([name, gib, kind]) => barRow(name, gib, scale, kind)));
  $("#run-memory-line").textContent = (run.memory_line || "no peak measured yet")
    + (memory?.capacity_gib ? ` · capacity ${size(memory.capacity_gib)} per device on ${run.hardware}` : ` · ${run.hardware}`);
  const log = $("#run-log");
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.textContent = run.log || "(no log: the run was not started from this board, or has not written one)";
  if (atEnd) log.scrollTop = log.scrollHeight;
  $("#run-spec").textContent = run.spec;
}

function barRow(name, gib, scale, kind, key) {
  const bar = make("div", {class: kind, style: `width: ${Math.min(100, gib / scale * 100).toFixed(2)}%`});
  if (key) bar.setAttribute("data-term", key);
  return make("div", {class: "row"}, make("span", {text: name}), make("div", {class: "track"}, bar),
    make("span", {text: size(gib)}));
}

// One series as an SVG line with a dot per logged step; `extra` (the evaluations) dashed over it.
function chart(series, extra) {
  const width = 520, height = 180, left = 48, right = 12, top = 22, bottom = 24;
  const all = [...series.points, ...extra];
  const steps = all.map(([step]) => step), values = all.map(([, value]) => value);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  const [y0, y1] = [Math.min(...values), Math.max(...values)];
  const x = (step) => left + (x1 === x0 ? 0.5 : (step - x0) / (x1 - x0)) * (width - left - right);
  const y = (value) => top + (y1 === y0 ? 0.5 : (y1 - value) / (y1 - y0)) * (height - top - bottom);
  const root = svg("svg", {class: "chart", id: `chart-${series.name}`, width, height, viewBox: `0 0 ${width} ${height}`});
  const title = svg("text", {x: left, y: 14});
  title.textContent = series.label;
  root.append(title);
  if (!series.points.length) return root;
  for (const [value, where] of [[y1, top], [y0, height - bottom]]) {
    const label = svg("text", {x: 4, y: where + 4});
    label.textContent = value.toPrecision(4);
    root.append(label);
  }
  for (const [step, anchor] of [[x0, "start"], [x1, "end"]]) {
    const label = svg("text", {x: x(step), y: height - 8, "text-anchor": anchor});
    label.textContent = `step ${step}`;
    root.append(label);
  }
  root.append(svg("polyline", {class: "line", points: series.points.map(([s, v]) => `${x(s)},${y(v)}`).join(" ")}));
  for (const [step, value] of series.points) {
    const dot = svg("circle", {class: "point", cx: x(step), cy: y(value), r: 2.5});
    const tip = svg("title");
    tip.textContent = `step ${step}: ${value}`;
    dot.append(tip);
    root.append(dot);
  }
  if (extra.length) root.append(svg("polyline", {class: "eval", points: extra.map(([s, v]) => `${x(s)},${y(v)}`).join(" ")}));
  return root;
}

// ---- the spec editor -------------------------------------------------------------------------------
const editor = {schema: null, path: "", checking: null, typed: null};

async function openEditor(path) {
  show("editor");
  if (!editor.schema) await setUpEditor();
  const specs = (await api("/api/specs")).specs;
  const select = $("#spec-select");
  select.replaceChildren(make("option", {value: "", text: "—"}), ...specs.map((name) => make("option", {value: name, text: name})));
  const chosen = path || editor.path || specs[0] || "";
  if (chosen && chosen !== editor.path) await loadSpec(chosen);
  select.value = specs.includes(editor.path) ? editor.path : "";
}

async function setUpEditor() {
  editor.schema = await api("/api/schema");
  const choices = await api("/api/hardware");
  $("#hardware").replaceChildren(...choices.hardware.map((name) => make("option", {value: name, text: name})));
  $("#target").replaceChildren(...choices.targets.map((name) => make("option", {value: name, text: name})));
  buildForm();
  $("#spec-select").addEventListener("change", (event) => {
    if (event.target.value) location.hash = `editor=${encodeURIComponent(event.target.value)}`;
  });
  $("#spec-path").addEventListener("change", (event) => {
    editor.path = event.target.value.trim();
    runCheck();
  });
  $("#hardware").addEventListener("change", () => runCheck());
  $("#nodes").addEventListener("change", () => runCheck());
  $("#toml").addEventListener("input", () => {  // re-checked once typing pauses
    clearTimeout(editor.typed);
    editor.typed = setTimeout(() => runCheck(), 400);
  });
  $("#save").addEventListener("click", save);
  $("#launch").addEventListener("click", launch);
}

async function loadSpec(path) {
  editor.path = path;
  $("#spec-path").value = path;
  $("#toml").value = (await api(`/api/spec?path=${encodeURIComponent(path)}`)).text;
  await runCheck();
}

function status(text) { $("#editor-status").textContent = text; }

async function save() {
  try {
    const saved = (await api("/api/save", {path: editor.path, text: $("#toml").value})).saved;
    status(`saved ${saved}`);
    return true;
  } catch (error) { status(error.message); return false; }
}

async function launch() {
  if (!await save()) return;
  status("launching…");
  try {
    const answer = await api("/api/launch", {
      path: editor.path, hardware: $("#hardware").value, nodes: Number($("#nodes").value) || 1,
      target: $("#target").value, overwrite: $("#overwrite").checked,
    });
    status(`launched ${answer.run}`);
    location.hash = `run=${encodeURIComponent(answer.run)}`;
  } catch (error) { status(error.message); }
}

// One check at a time, in the order asked, each reading the text when its turn comes: an edit's answer (the
// text with the edit written in) is never overtaken by an older check's.
let checks = Promise.resolve();
function runCheck(edits = []) {
  checks = checks.then(() => checkNow(edits));
  return checks;
}

async function checkNow(edits) {
  if (!editor.path) return;
  const asked = {
    path: editor.path, text: $("#toml").value, hardware: $("#hardware").value,
    nodes: Number($("#nodes").value) || 1, edits,
  };
  const answer = await api("/api/check", asked).catch((error) => ({error: error.message}));
  if (answer.error) { status(answer.error); return; }
  status(answer.diagnostics.length ? `${answer.diagnostics.length} problem(s)` : "valid");
  if (answer.text !== asked.text) $("#toml").value = answer.text;
  showValues(answer.values);
  showDiagnostics(answer.diagnostics);
  showPlan(answer.plan, answer.plan_error);
}

// ---- the form, generated from the JSON Schema ------------------------------------------------------
function resolve(schema) {
  if (schema.$ref) return editor.schema.$defs[schema.$ref.split("/").pop()];
  const options = (schema.anyOf || []).filter((option) => option.type !== "null");
  if (options.length === 1) return {...resolve(options[0]), description: schema.description, default: schema.default};
  return schema;
}

function choicesOf(schema) {
  const options = schema.anyOf ? schema.anyOf.map(resolve) : [schema];
  const values = options.flatMap((option) => option.enum || (option.const !== undefined ? [option.const] : []));
  return values.length && options.every((option) => option.enum || option.const !== undefined || option.type === "null")
    ? values : null;
}

function kindOf(schema) {
  const resolved = resolve(schema);
  if (choicesOf(schema) || choicesOf(resolved)) return "choice";
  if (resolved.type === "boolean") return "boolean";
  if (resolved.properties) return "table";
  if (resolved.type === "array" && resolve(resolved.items || {}).properties) return "tables";
  return "value";
}

function buildForm() {
  const form = $("#form");
  form.replaceChildren();
  for (const [section, sectionSchema] of Object.entries(editor.schema.properties)) {
    const resolved = resolve(sectionSchema);
    const details = make("details", {"data-section": section});
    details.append(make("summary", {text: section, title: resolved.description || ""}));
    if (resolved.description) details.append(make("div", {class: "help", text: resolved.description}));
    if (resolved.properties) {
      for (const [name, field] of Object.entries(resolved.properties)) details.append(fieldRow(`${section}.${name}`, field));
    } else {
      details.append(fieldRow(section, sectionSchema));
    }
    details.append(make("div", {class: "section-errors"}));
    form.append(details);
  }
}

function fieldRow(key, schema) {
  const resolved = resolve(schema);
  const kind = kindOf(schema);
  const description = schema.description || resolved.description || "";
  const row = make("div", {class: "field", "data-key": key});
  row.append(make("label", {text: key.split(".").slice(1).join(".") || key, title: description}));
  let input;
  if (kind === "choice" || kind === "boolean") {
    const values = kind === "boolean" ? [true, false] : (choicesOf(schema) || choicesOf(resolved));
    input = make("select", {}, make("option", {value: "", text: `default (${JSON.stringify(schema.default ?? null)})`}),
      ...values.map((value) => make("option", {value: String(value), text: String(value)})));
  } else if (kind === "table" || kind === "tables") {
    input = make("input", {readonly: "", placeholder: "edit in the TOML text"});
  } else {
    input = make("input", {placeholder: schema.default === undefined || schema.default === null ? "" : `default ${JSON.stringify(schema.default)}`});
  }
  input.setAttribute("data-key", key);
  input.addEventListener("change", () => {
    const value = input.value.trim();
    runCheck([`${key}=${value}`]);
  });
  row.append(input);
  if (description) row.append(make("div", {class: "help", text: description}));
  return row;
}

function valueAt(values, key) {
  return key.split(".").reduce((node, part) => (node && typeof node === "object" ? node[part] : undefined), values);
}

function shownValue(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") return value;
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function showValues(values) {
  for (const input of document.querySelectorAll("#form [data-key]:is(input, select)")) {
    if (input === document.activeElement) continue;
    input.value = shownValue(valueAt(values, input.dataset.key));
  }
  for (const details of document.querySelectorAll("#form details")) {
    if (values[details.dataset.section] !== undefined) details.open = true;
  }
}

// Each problem at its key: on the field when the form has one, else on its section; all listed by line too.
function showDiagnostics(diagnostics) {
  for (const row of document.querySelectorAll("#form .field")) {
    row.classList.remove("invalid");
    row.querySelectorAll(".field-error").forEach((node) => node.remove());
  }
  document.querySelectorAll("#form .section-errors").forEach((node) => node.replaceChildren());
  $("#diagnostics").replaceChildren();
  for (const diagnostic of diagnostics) {
    const key = diagnostic.path.replace(/\[\d+\]/g, "");
    const text = `${diagnostic.path || diagnostic.file}: ${diagnostic.message}` + (diagnostic.hint ? ` (hint: ${diagnostic.hint})` : "");
    const error = make("div", {class: "field-error", "data-key": diagnostic.path, text});
    const row = document.querySelector(`#form .field[data-key="${CSS.escape(key)}"]`);
    const section = document.querySelector(`#form details[data-section="${CSS.escape(key.split(".")[0])}"]`);
    if (row) { row.classList.add("invalid"); row.append(error); row.closest("details").open = true; }
    else if (section) { section.querySelector(".section-errors").append(error); section.open = true; }
    $("#diagnostics").append(make("li", {"data-key": diagnostic.path,
      text: (diagnostic.line ? `line ${diagnostic.line}: ` : "") + text}));
  }
  const first = document.querySelector("#form .field-error");
  if (first) $("#form").scrollTop = first.closest(".field, details").offsetTop - 8;  // the form scrolls on its own
}

function showPlan(plan, problem) {
  const out = $("#plan");
  if (problem) { out.replaceChildren(make("p", {class: "misfit", id: "plan-error", text: `${problem.message}` + (problem.hint ? ` (hint: ${problem.hint})` : "")})); return; }
  if (!plan) { out.replaceChildren(make("p", {class: "muted", text: "no plan until the spec is valid"})); return; }
  const memory = plan.memory;
  const scale = memory.capacity_gib || memory.per_device_gib || 1e-9;
  const bars = make("div", {class: "bars", id: "plan-memory"},
    ...Object.entries(memory.terms).filter(([, gib]) => gib > 0).map(([name, gib]) => barRow(name, gib, scale, "bar", name)),
    barRow("reserved peak", memory.per_device_gib, scale, plan.fits ? "bar total" : "bar total over", "reserved"));
  const where = memory.capacity_gib ? `of ${size(memory.capacity_gib)} per device` : "of host memory";
  const limits = plan.limits || {};
  const rows = Object.entries(plan.reasons).map(([name, reason]) =>
    make("tr", {}, make("td", {text: name}), make("td", {text: shownValue(plan[name])}), make("td", {text: reason})));
  out.replaceChildren(
    make("p", {id: "plan-fits", class: plan.fits ? "fits" : "misfit",
      text: `${plan.fits ? "fits" : "does not fit"} on ${plan.hardware_label}: reserved peak ${size(memory.per_device_gib)} ${where}`}),
    bars,
    make("p", {id: "plan-limits", text: limits.max_micro_batch_size === undefined ? "" :
      `limits: micro-batch up to ${limits.max_micro_batch_size} at this cutoff_len; cutoff_len up to ${limits.max_cutoff_len} at micro-batch 1`}),
    ...plan.notes.map((note) => make("p", {class: "muted", text: `note: ${note}`})),
    make("table", {id: "plan-decisions"}, ...rows));
}

window.addEventListener("hashchange", route);
route();
