// A durable activity worker in Node.js: no npm packages, only the built-in fetch.
//
// It serves the "media-node" queue of a `durable server` over HTTP (DESIGN §7):
//   POST /v1/queues/{queue}/poll       long-poll for tasks (several at once with max_tasks)
//   POST /v1/tasks/{token}/heartbeat   "still alive" (+ progress); answers cancel_requested
//   POST /v1/tasks/{token}/complete    the result
//   POST /v1/tasks/{token}/fail        an error; non_retryable stops the retries
//
// Activities served:
//   resize_image(path, widths)         -> [{width, height, path}] for each width
//   request_moderation(path, token)    -> "queued"; later completes the workflow's external
//                                         wait named by `token` with {approved, reviewer}
//
// Run:   node samples/polyglot/worker.mjs [--server http://127.0.0.1:8233] [--queue media-node]
// Token: DURABLE_TOKEN (when the server was started with --token).

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : fallback;
};
const SERVER = option("server", process.env.DURABLE_SERVER ?? "http://127.0.0.1:8233");
const QUEUE = option("queue", "media-node");
const WORKER = option("worker", `node-${process.pid}`);
const TOKEN = process.env.DURABLE_TOKEN;
const CONCURRENCY = 8; // tasks in flight at once

let stopping = false;
const inFlight = new Set();

async function call(path, body) {
  const headers = { "content-type": "application/json" };
  if (TOKEN) headers.authorization = `Bearer ${TOKEN}`;
  const response = await fetch(`${SERVER}${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body ?? {}),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    // problem+json: {type, title, status, detail}
    const error = new Error(`${response.status} ${data?.title ?? ""}: ${data?.detail ?? text}`);
    error.status = response.status;
    error.problem = data;
    throw error;
  }
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---- the activities -------------------------------------------------------------------

const ASPECT = 3 / 4; // the sample's photos are all 4:3

async function resize_image(task, path, widths) {
  if (typeof path !== "string" || !Array.isArray(widths)) {
    throw Object.assign(new Error(`resize_image(path, widths) got ${JSON.stringify(task.args)}`), {
      type: "BadInput",
      nonRetryable: true,
    });
  }
  const out = [];
  for (const width of widths) {
    await sleep(20); // "resizing"
    const { cancel_requested } = await call(`/v1/tasks/${task.token}/heartbeat`, {
      details: { done: out.length, of: widths.length },
    });
    if (cancel_requested) {
      throw Object.assign(new Error("the workflow cancelled this resize"), { type: "Cancelled" });
    }
    const stem = path.replace(/\.[^.]+$/, "");
    out.push({ width, height: Math.round(width * ASPECT), path: `${stem}-${width}w.jpg` });
  }
  return out;
}

async function request_moderation(task, path, externalToken) {
  // A human (here: a timer) reviews the photo later, and answers the workflow directly by
  // completing its external wait: the activity itself is done at once.
  setTimeout(() => {
    call(`/v1/tasks/${externalToken}/complete`, {
      result: { approved: !path.includes("nsfw"), reviewer: "moderator@node" },
    }).catch((error) => console.error(`moderation answer for ${path} failed: ${error.message}`));
  }, 50);
  return "queued";
}

const ACTIVITIES = { resize_image, request_moderation };

// ---- the loop ---------------------------------------------------------------------------

async function run(task) {
  try {
    const fn = ACTIVITIES[task.name];
    const result = await fn(task, ...task.args);
    await call(`/v1/tasks/${task.token}/complete`, { result });
    console.log(`completed ${task.name} for ${task.workflow_id} (attempt ${task.attempt})`);
  } catch (error) {
    if (error.status === 409) {
      // Our attempt was superseded (its lease ran out and it was retried): drop the result.
      console.log(`stale attempt of ${task.name} for ${task.workflow_id}: ${error.message}`);
      return;
    }
    console.log(`failed ${task.name} for ${task.workflow_id}: ${error.message}`);
    await call(`/v1/tasks/${task.token}/fail`, {
      error: { type: error.type ?? error.name ?? "Error", message: error.message },
      non_retryable: Boolean(error.nonRetryable),
    }).catch((e) => console.error(`could not report the failure: ${e.message}`));
  }
}

async function main() {
  console.log(`node worker ${WORKER} serving queue ${QUEUE} of ${SERVER}`);
  let backoff = 100;
  while (!stopping) {
    const free = CONCURRENCY - inFlight.size;
    if (free <= 0) {
      await Promise.race(inFlight);
      continue;
    }
    let tasks;
    try {
      const answer = await call(`/v1/queues/${QUEUE}/poll`, {
        worker: WORKER,
        names: Object.keys(ACTIVITIES),
        max_tasks: free,
        wait_ms: 5000,
      });
      tasks = Array.isArray(answer) ? answer : answer.tasks;
      backoff = 100;
    } catch (error) {
      if (error.status === 401) throw error; // a wrong token does not fix itself
      console.error(`poll failed (${error.message}); retrying in ${backoff} ms`);
      await sleep(backoff);
      backoff = Math.min(backoff * 2, 5000);
      continue;
    }
    for (const task of tasks) {
      const running = run(task).finally(() => inFlight.delete(running));
      inFlight.add(running);
    }
  }
  await Promise.allSettled(inFlight); // a graceful stop finishes what it holds
  console.log(`node worker ${WORKER} stopped`);
}

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    stopping = true;
  });
}

main().catch((error) => {
  console.error(error.message);
  process.exit(1);
});
