// The RAV agent as a Cloudflare Workflow: one agent run is one Workflow instance, and
// reason, act and verify are `step.do` calls, each named by its step and attempt
// (`reason-3-1`), so every output the runtime persists says what it is. The approval is
// `step.waitForEvent` with the scenario's TTL as its timeout, its verdict a `step.do` of
// its own.
//
// The phases send exactly the requests harness/agent.py sends (the same bodies, the
// stable idempotency key `run/step/attempt`, the same transient retries), and the step
// policy is harness/steppolicy.py's: its few lines are repeated here because they must
// run inside the Workflow, and `inspect` replays the persisted outputs through the
// Python policy, so a divergence shows as a state mismatch, never as a pass.
//
// Measurements: each phase writes one row (harness/measure.py's PhaseRow) as a console
// line with ROW_MARK; the runtime component (runtime.py) appends those lines to its
// Recorder file. A step replayed from its persisted output writes nothing. Crash points
// call the runtime component, which kills the runtime at that boundary once.

import { digest } from "./digest.js";

export const ROW_MARK = "@@durabench-row ";
const MAX_TRANSIENT_RETRIES = 8;
const BACKOFF_BASE_MS = 50;
const BACKOFF_CAP_MS = 2000;
const REQUEST_TIMEOUT_MS = 30000;
const RETRYABLE_STATUS = new Set([408, 409, 425, 429, 500, 502, 503, 504]);
const SERVICE_TIME_HEADER = "x-durabench-service-ms";
const MARKER = "durabench";
// step.do retries for the phases that call a service (as DBOS's step retries): a phase
// that gave up after its own transient retries is tried again by the runtime
export const SERVICE_STEP = { retries: { limit: 4, delay: 200, backoff: "exponential" } };
const PURE_STEP = { retries: { limit: 0, delay: 0, backoff: "constant" } };

/** What the Worker's vars say (wrangler.json, written by the backend). */
export function settings(env) {
  return {
    backend: env.DURABENCH_BACKEND,
    worker: env.DURABENCH_WORKER,
    scenario: env.DURABENCH_SCENARIO,
    model: env.DURABENCH_MODEL,
    tools: JSON.parse(env.DURABENCH_TOOLS),
    llmUrl: env.DURABENCH_LLM_URL,
    toolsUrl: env.DURABENCH_TOOLS_URL,
    controlUrl: env.DURABENCH_CONTROL_URL,
    failpoints: JSON.parse(env.DURABENCH_FAILPOINTS || "[]"),
  };
}

const now = () => Date.now() / 1000;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function row(cfg, runId, step, attempt, phase, start) {
  return {
    backend: cfg.backend, run_id: runId, step, attempt, phase, worker: cfg.worker,
    start, end: 0, outcome: "ok", service_ms: 0, retries: 0, bytes: null, error: null,
  };
}

function write(r) {
  // console.warn: wrangler runs at --log-level warn (no line per request in the log)
  console.warn(ROW_MARK + JSON.stringify(r));
}

/** A crash point (harness/failpoints.py): when one configured for this boundary matches,
 * the runtime component claims it and kills the runtime; this call then never returns. */
export async function crashPoint(cfg, point, runId, step) {
  const armed = cfg.failpoints.some(
    (p) => p.point === point && (p.run === "*" || p.run === runId) && (p.step === null || p.step === step),
  );
  if (!armed) return;
  await fetch(`${cfg.controlUrl}/crash`, {
    method: "POST",
    body: JSON.stringify({ point, run_id: runId, step }),
  });
}

/** Run a phase's body with its row: an exception marks it `info` (it may have happened). */
async function phase(cfg, runId, step, attempt, name, body) {
  const r = row(cfg, runId, step, attempt, name, now());
  if (name === "act") write({ ...r, end: r.start, outcome: "invoke" });
  try {
    return await body(r);
  } catch (err) {
    if (r.outcome === "ok") r.outcome = "info";
    r.error = r.error || String(err).slice(0, 500);
    throw err;
  } finally {
    r.end = now();
    write(r);
  }
}

function retryDelayMs(response, retry) {
  const after = response && response.headers.get("Retry-After");
  if (after !== null && after !== undefined && !Number.isNaN(Number(after))) {
    return Math.min(Number(after) * 1000, BACKOFF_CAP_MS * 5);
  }
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** retry);
}

/** POST with transient retries; service time and retries go into the row. */
async function post(url, body, r) {
  let delay = 0;
  for (let retry = 0; retry <= MAX_TRANSIENT_RETRIES; retry++) {
    r.retries = retry;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
      r.service_ms += Number(response.headers.get(SERVICE_TIME_HEADER) || 0);
      if (response.status === 200) return await response.json();
      const text = await response.text();
      if (!RETRYABLE_STATUS.has(response.status)) {
        r.outcome = "fail";
        throw new Error(`PhaseError: ${url} answered ${response.status}: ${text}`);
      }
      delay = retryDelayMs(response, retry);
    } catch (err) {
      if (r.outcome === "fail") throw err;
      r.error = String(err).slice(0, 500);
      delay = retryDelayMs(null, retry);
    }
    if (retry < MAX_TRANSIENT_RETRIES) await sleep(delay);
  }
  throw new Error(`PhaseError: ${url}: gave up after ${MAX_TRANSIENT_RETRIES} retries (${r.error})`);
}

function toolSpecs(cfg) {
  const properties = {
    item: { type: "string" }, quantity: { type: "integer" },
    amount_cents: { type: "integer" }, counterparty: { type: "string" },
  };
  return cfg.tools.map((name) => ({
    type: "function", function: { name, parameters: { type: "object", properties } },
  }));
}

/** harness.agent.reason: one chat completion naming a tool, its arguments, a thought. */
export async function reason(cfg, runId, step, attempt) {
  const prompt = {
    [MARKER]: { run_id: runId, step, attempt },
    task: `${cfg.scenario}: choose the tool for step ${step}`,
  };
  const body = {
    model: cfg.model,
    messages: [
      { role: "system", content: "You are a procurement agent. Call exactly one tool." },
      { role: "user", content: JSON.stringify(prompt) },
    ],
    tools: toolSpecs(cfg),
    tool_choice: "required",
  };
  return phase(cfg, runId, step, attempt, "reason", async (r) => {
    const data = await post(`${cfg.llmUrl}/chat/completions`, body, r);
    const message = data.choices[0].message;
    const call = message.tool_calls[0].function;
    const usage = data.usage || {};
    r.extra = { tokens_in: usage.prompt_tokens ?? null, tokens_out: usage.completion_tokens ?? null };
    return { tool: call.name, arguments: JSON.parse(call.arguments), thought: message.content || "" };
  });
}

/** harness.agent.act: one tool execution with the stable key; the tool output. */
export async function act(cfg, runId, step, attempt, decision, key) {
  const body = { run_id: runId, step, attempt, idempotency_key: key, arguments: decision.arguments };
  return phase(cfg, runId, step, attempt, "act", async (r) => {
    const data = await post(`${cfg.toolsUrl}/tools/${decision.tool}`, body, r);
    r.extra = { applied: Boolean(data.applied) };
    return data.output;
  });
}

/** harness.workload.verify_output: the tool accepted exactly what was asked. */
export function verifyOutput(decision, output) {
  return (
    output.status === "ok" && output.tool === decision.tool &&
    output.request_digest === digest(decision.arguments)
  );
}

/** harness.workload.next_move: what follows a verdict on `attempt` (1-based). */
export function nextMove(policy, verified, attempt) {
  if (verified) return "commit";
  if (attempt >= policy.max_attempts) return "abort";
  return policy.on_failure;
}

export const idempotencyKey = (runId, step, attempt) => `${runId}/${step}/${attempt}`;

/** One step as plan_step does it, each phase a step.do; the record and the move. */
async function runStep(cfg, spec, step, wf) {
  const runId = spec.run_id;
  let decision = (await wf.do(`reason-${step}-1`, SERVICE_STEP, async () => {
    const d = await reason(cfg, runId, step, 1);
    await crashPoint(cfg, "after_reason", runId, step);
    return { phase: "reason", step, attempt: 1, decision: d };
  })).decision;
  let attempt = 1;
  const verdicts = [];
  for (;;) {
    const key = idempotencyKey(runId, step, attempt);
    const acted = await wf.do(`act-${step}-${attempt}`, SERVICE_STEP, async () => {
      const output = await act(cfg, runId, step, attempt, decision, key);
      await crashPoint(cfg, "after_act", runId, step);
      return { phase: "act", step, attempt, key, output };
    });
    await crashPoint(cfg, "after_act_recorded", runId, step);
    await crashPoint(cfg, "cloudflare.after_act_output", runId, step);
    let fresh = null; // when this lifetime ran verify (not replayed): the commit row's start
    const verified = (await wf.do(`verify-${step}-${attempt}`, PURE_STEP, async () => {
      const began = now();
      const verdict = await phase(cfg, runId, step, attempt, "verify", async (r) => {
        const v = verifyOutput(decision, acted.output);
        r.extra = { verified: v };
        return v;
      });
      await crashPoint(cfg, "after_verify", runId, step);
      await crashPoint(cfg, "before_commit", runId, step);
      fresh = Math.max(began, now());
      return { phase: "verify", step, attempt, verified: verdict };
    })).verified;
    verdicts.push(verified);
    const move = nextMove(spec, verified, attempt);
    if (move === "commit" || move === "abort") {
      if (fresh !== null) {
        const r = row(cfg, runId, step, attempt, "commit", fresh);
        r.end = now();
        write(r);
        await crashPoint(cfg, "after_commit", runId, step);
      }
      const record = {
        index: step, tool: decision.tool, arguments: decision.arguments,
        thought: decision.thought, output: acted.output, verdicts: [...verdicts], attempts: attempt,
      };
      return { record, move };
    }
    attempt += 1;
    if (move === "replan") {
      const next = attempt;
      decision = (await wf.do(`reason-${step}-${next}`, SERVICE_STEP, async () => {
        const d = await reason(cfg, runId, step, next);
        await crashPoint(cfg, "after_reason", runId, step);
        return { phase: "reason", step, attempt: next, decision: d };
      })).decision;
    }
  }
}

/** The approval: waitForEvent with the TTL, its verdict recorded by a step of its own. */
async function approval(cfg, spec, step, attempts, wf) {
  const began = now();
  let approved = true;
  try {
    await wf.waitForEvent(`approval-${step}`, { type: "approve", timeout: `${spec.approval_ttl_s} seconds` });
  } catch (err) {
    approved = false; // the TTL ran out: the run expires
  }
  const recorded = await wf.do(`approval-${step}-verdict`, PURE_STEP, async () => {
    const r = row(cfg, spec.run_id, step, attempts, "approval", began);
    if (!approved) r.outcome = "fail";
    r.end = now();
    write(r);
    return { phase: "approval", step, approved };
  });
  return recorded.approved;
}

/** One agent run; returns its final state (RunState without the final answer, which
 * inspect derives from the persisted outputs). */
export async function runAgent(env, spec, wf) {
  const cfg = settings(env);
  const runId = spec.run_id;
  await crashPoint(cfg, "cloudflare.after_start", runId, 0);
  const steps = [];
  const done = (status) => ({ run_id: runId, status, steps });
  for (let step = 0; step < spec.steps; step++) {
    const { record, move } = await runStep(cfg, spec, step, wf);
    steps.push(record);
    if (move === "abort") return done("aborted");
    if (spec.approval_after_step === step && !(await approval(cfg, spec, step, record.attempts, wf))) {
      return done("expired");
    }
  }
  return done("completed");
}
