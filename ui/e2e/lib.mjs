// Support for the end-to-end run: child processes, free ports, a failing upstream stub, and a
// checker that validates every API answer the browser receives against master/openapi.json.

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import Ajv2020 from 'ajv/dist/2020.js';

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (srv.address());
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * Starts a process and resolves once a line of its stdout or stderr contains `listening on`.
 * Output is kept (last lines) for error reports.
 */
export async function startProcess(name, cmd, args, { env, cwd, timeoutMs = 60_000 } = {}) {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  const keep = (l) => {
    lines.push(l);
    if (lines.length > 400) lines.shift();
    if (process.env.E2E_VERBOSE) console.log(`[${name}] ${l}`);
  };
  let resolveReady;
  let rejectReady;
  const ready = new Promise((res, rej) => {
    resolveReady = res;
    rejectReady = rej;
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (l) => {
      keep(l);
      if (l.includes('listening on')) resolveReady(l);
    });
  }
  child.on('exit', (code, signal) => rejectReady(new Error(`${name} exited early (code ${code}, signal ${signal}):\n${lines.slice(-30).join('\n')}`)));
  const timer = setTimeout(() => rejectReady(new Error(`${name} did not print "listening on" within ${timeoutMs} ms:\n${lines.slice(-30).join('\n')}`)), timeoutMs);
  try {
    const line = await ready;
    return { child, line, lines, name };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** Stops a started process: SIGTERM, then SIGKILL after a grace period. */
export async function stopProcess(p, graceMs = 5000) {
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await once(p.child, 'exit').catch(() => {});
  clearTimeout(t);
}

/**
 * An OpenAI-format upstream that rejects every key containing "bad" with 401 invalid_api_key and
 * answers the others. The mock-upstream binary cannot be scripted from outside, so failures come
 * from here.
 */
export async function startFlakyUpstream() {
  let requests = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests++;
      const auth = String(req.headers.authorization ?? '');
      res.setHeader('content-type', 'application/json');
      if (auth.includes('bad')) {
        res.writeHead(401);
        res.end(JSON.stringify({ error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } }));
        return;
      }
      let model = 'gpt-4.1-nano';
      try {
        model = JSON.parse(body).model ?? model;
      } catch {
        /* keep the default */
      }
      res.writeHead(200);
      res.end(
        JSON.stringify({
          id: 'chatcmpl-flaky',
          object: 'chat.completion',
          created: Math.floor(Date.now() / 1000),
          model,
          choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = /** @type {net.AddressInfo} */ (server.address());
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)), count: () => requests };
}

/** Validates API answers against the OpenAPI document. */
export class SchemaChecker {
  constructor(doc) {
    this.doc = doc;
    this.ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    this.ajv.addSchema(doc, 'openapi');
    this.routes = Object.keys(doc.paths).map((template) => ({
      template,
      re: new RegExp(`^${template
        .split('/')
        .map((seg) => (seg.startsWith('{') ? '[^/]+' : seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
        .join('/')}$`),
    }));
    this.validators = new Map();
    this.checked = new Map();
    this.failures = [];
  }

  /** The most specific template matching a path (fixed segments beat parameters). */
  route(path) {
    const hits = this.routes.filter((r) => r.re.test(path));
    hits.sort((a, b) => (a.template.match(/\{/g)?.length ?? 0) - (b.template.match(/\{/g)?.length ?? 0));
    return hits[0]?.template;
  }

  responseSchemaPointer(template, method, status) {
    const op = this.doc.paths[template]?.[method];
    if (!op) return null;
    let resp = op.responses[String(status)] ?? op.responses.default;
    let pointer = `/paths/${template.replace(/~/g, '~0').replace(/\//g, '~1')}/${method}/responses/${status}`;
    if (!resp) return null;
    if (resp.$ref) {
      const name = resp.$ref.split('/').pop();
      resp = this.doc.components.responses[name];
      pointer = `/components/responses/${name}`;
    }
    if (!resp?.content?.['application/json']) return null;
    return `openapi#${pointer}/content/application~1json/schema`;
  }

  /** Checks one answer; records a failure when it does not match. */
  check(method, path, status, body) {
    const template = this.route(path);
    const label = `${method.toUpperCase()} ${template ?? path} → ${status}`;
    if (!template) {
      this.failures.push(`${label}: no such path in openapi.json`);
      return;
    }
    const m = method.toLowerCase();
    if (!this.doc.paths[template][m]) {
      this.failures.push(`${label}: method not documented`);
      return;
    }
    const ref = this.responseSchemaPointer(template, m, status);
    if (!ref) {
      this.failures.push(`${label}: status not documented`);
      return;
    }
    let validate = this.validators.get(ref);
    if (!validate) {
      validate = this.ajv.compile({ $ref: ref });
      this.validators.set(ref, validate);
    }
    this.checked.set(label, (this.checked.get(label) ?? 0) + 1);
    if (!validate(body)) {
      const errs = validate.errors.slice(0, 5).map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}`);
      this.failures.push(`${label}: ${errs.join('; ')}\n    body: ${JSON.stringify(body).slice(0, 400)}`);
    }
  }
}

/** Polls `fn` until it returns a truthy value. */
export async function waitFor(what, fn, { timeoutMs = 30_000, intervalMs = 250 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
