// The Worker durabench runs on Cloudflare's runtime: two Workflow classes (the agent and
// the raw floor) and the HTTP routes the harness drives them through. Every route reads
// and writes through the Workflows binding only (create, get, status, sendEvent,
// terminate): what it answers is what the runtime persisted, never this isolate's memory.
//
//   GET  /health                        {boot}: a fresh id per runtime lifetime
//   POST /instances                     {workflow, id, params} -> {id} once it is stored
//   GET  /instances/:wf/:id             instance.status() (local: with step outputs)
//   GET  /instances/:wf/:id/wait?ms=N   its status once terminal, or after N ms
//   POST /instances/:wf/:id/events/:type {payload}: instance.sendEvent
//   POST /instances/:wf/:id/terminate   instance.terminate()

import { WorkflowEntrypoint } from "cloudflare:workers";
import { runAgent } from "./agent.js";
import { runFloor } from "./floor.js";

export class AgentWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    return runAgent(this.env, event.payload, step);
  }
}

export class FloorWorkflow extends WorkflowEntrypoint {
  async run(event, step) {
    return runFloor(this.env, event.payload, step);
  }
}

const TERMINAL = new Set(["complete", "errored", "terminated"]);
const STORED_ATTEMPTS = 200;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let boot = null;

function binding(env, name) {
  if (name === "agent") return env.AGENT;
  if (name === "floor") return env.FLOOR;
  return null;
}

async function stored(wf, id) {
  // create() queues the instance and returns; it is durable once get() finds it
  for (let i = 0; i < STORED_ATTEMPTS; i++) {
    try {
      return await wf.get(id);
    } catch {
      await sleep(5);
    }
  }
  throw new Error(`instance ${id} was not stored`);
}

async function wait(wf, id, ms) {
  const deadline = Date.now() + ms;
  const instance = await wf.get(id);
  if (typeof wf.unsafeWaitForStatus === "function") {
    // the local runtime's own notification (what vitest-pool-workers introspection uses);
    // it rejects when the instance ends otherwise than complete: either way, terminal
    await Promise.race([wf.unsafeWaitForStatus(id, "complete").catch(() => null), sleep(ms)]);
    return await instance.status();
  }
  for (;;) {
    const status = await instance.status();
    if (TERMINAL.has(status.status) || Date.now() >= deadline) return status;
    await sleep(100);
  }
}

function error(status, message) {
  return Response.json({ error: message }, { status });
}

async function route(request, env) {
  const url = new URL(request.url);
  const parts = url.pathname.split("/").filter(Boolean);
  if (parts[0] === "health") {
    boot ??= crypto.randomUUID();
    return Response.json({ boot });
  }
  if (parts[0] !== "instances") return error(404, `no route ${url.pathname}`);
  if (parts.length === 1 && request.method === "POST") {
    const body = await request.json();
    const wf = binding(env, body.workflow);
    if (wf === null) return error(400, `no workflow ${body.workflow}`);
    const created = await wf.create({ id: body.id, params: body.params });
    await stored(wf, created.id);
    return Response.json({ id: created.id });
  }
  const wf = binding(env, parts[1]);
  if (wf === null || parts.length < 3) return error(404, `no route ${url.pathname}`);
  const id = decodeURIComponent(parts[2]);
  let instance;
  try {
    instance = await wf.get(id);
  } catch {
    return error(404, `no instance ${id}`);
  }
  if (parts.length === 3 && request.method === "GET") return Response.json(await instance.status());
  if (parts[3] === "wait") return Response.json(await wait(wf, id, Number(url.searchParams.get("ms") || 1000)));
  if (parts[3] === "events" && parts[4] && request.method === "POST") {
    const body = await request.json();
    await instance.sendEvent({ type: parts[4], payload: body.payload ?? null });
    return Response.json({ sent: parts[4] });
  }
  if (parts[3] === "terminate" && request.method === "POST") {
    await instance.terminate();
    return Response.json({ terminated: id });
  }
  return error(404, `no route ${url.pathname}`);
}

export default {
  async fetch(request, env) {
    try {
      return await route(request, env);
    } catch (err) {
      return error(500, String(err).slice(0, 1000));
    }
  },
};
