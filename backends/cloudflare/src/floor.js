// The raw floor (backends/cloudflare/floor.py): the step shape as a plain Workflow, with
// nothing of durabench's adapter in it: per step a `step.do` for reason (one chat
// completion), one for act (one tool call with the key `run/step/attempt`) and one for
// verify, with the runtime's default step config; no measurement rows, no crash points,
// no transient retries of its own. It returns its own timings: each step from the start
// of its reason call to the moment verify's `step.do` handed back its persisted output.

//
// With `spec.rows` (the `cloudflare+rows` floor) it also writes, as console lines, as many
// rows as the adapter writes per step (reason, the act's invoke and end, verify, commit;
// the same fields), under a mark of their own that the runtime component only logs: what
// the adapter's measurement channel through wrangler's log costs, measured on its own.

import { digest } from "./digest.js";

const SERVICE_TIME_HEADER = "x-durabench-service-ms";
const FLOOR_ROW_MARK = "@@durabench-floor-row ";

function note(spec, step, attempt, phase, start) {
  if (!spec.rows) return;
  const r = {
    backend: "cloudflare", run_id: spec.run_id, step, attempt, phase, worker: "floor",
    start: start / 1000, end: Date.now() / 1000, outcome: "ok", service_ms: 0, retries: 0,
    bytes: null, error: null,
  };
  console.warn(FLOOR_ROW_MARK + JSON.stringify(r));
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (response.status !== 200) throw new Error(`${url} answered ${response.status}`);
  return { data: await response.json(), ms: Number(response.headers.get(SERVICE_TIME_HEADER) || 0) };
}

function tools(names) {
  const properties = {
    item: { type: "string" }, quantity: { type: "integer" },
    amount_cents: { type: "integer" }, counterparty: { type: "string" },
  };
  return names.map((name) => ({ type: "function", function: { name, parameters: { type: "object", properties } } }));
}

export async function runFloor(env, spec, wf) {
  const runId = spec.run_id;
  const llm = env.DURABENCH_LLM_URL;
  const toolsUrl = env.DURABENCH_TOOLS_URL;
  const specs = tools(JSON.parse(env.DURABENCH_TOOLS));
  const timings = [];
  for (let step = 0; step < spec.steps; step++) {
    const reasonStep = (attempt) => wf.do(`reason-${step}-${attempt}`, async () => {
      const start = Date.now();
      const prompt = { durabench: { run_id: runId, step, attempt }, task: `${env.DURABENCH_SCENARIO}: choose the tool for step ${step}` };
      const { data, ms } = await post(`${llm}/chat/completions`, {
        model: env.DURABENCH_MODEL,
        messages: [
          { role: "system", content: "You are a procurement agent. Call exactly one tool." },
          { role: "user", content: JSON.stringify(prompt) },
        ],
        tools: specs,
        tool_choice: "required",
      });
      const call = data.choices[0].message.tool_calls[0].function;
      note(spec, step, attempt, "reason", start);
      return { start, ms, tool: call.name, arguments: JSON.parse(call.arguments), thought: data.choices[0].message.content || "" };
    });
    let decision = await reasonStep(1);
    const start = decision.start;
    let serviceMs = decision.ms;
    let attempt = 1;
    let move;
    for (;;) {
      const acted = await wf.do(`act-${step}-${attempt}`, async () => {
        const began = Date.now();
        note(spec, step, attempt, "act", began);
        const body = { run_id: runId, step, attempt, idempotency_key: `${runId}/${step}/${attempt}`, arguments: decision.arguments };
        const { data, ms } = await post(`${toolsUrl}/tools/${decision.tool}`, body);
        note(spec, step, attempt, "act", began);
        return { output: data.output, ms };
      });
      serviceMs += acted.ms;
      const verified = await wf.do(`verify-${step}-${attempt}`, async () => {
        const began = Date.now();
        const v = acted.output.status === "ok" && acted.output.tool === decision.tool &&
          acted.output.request_digest === digest(decision.arguments);
        note(spec, step, attempt, "verify", began);
        return v;
      });
      move = verified ? "commit" : attempt >= spec.max_attempts ? "abort" : spec.on_failure;
      if (move === "commit" || move === "abort") {
        note(spec, step, attempt, "commit", Date.now());
        break;
      }
      attempt += 1;
      if (move === "replan") {
        decision = await reasonStep(attempt);
        serviceMs += decision.ms;
      }
    }
    timings.push({ step, start: start / 1000, end: Date.now() / 1000, service_ms: serviceMs });
    if (move === "abort") break;
  }
  return { run_id: runId, timings };
}
