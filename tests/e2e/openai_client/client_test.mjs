// Drives a live `mixserve serve` through the official `openai` npm client (an independently written
// OpenAI client): models, completions and chat (stream and non-stream), logprobs and error mapping.
// Environment: MIXSERVE_BASE_URL (e.g. http://127.0.0.1:8080), MIXSERVE_API_KEY; the served model is
// "tiny". Prints one line per check; exits 0 when all pass, 1 with the failing check otherwise.
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const baseURL = process.env.MIXSERVE_BASE_URL;
const apiKey = process.env.MIXSERVE_API_KEY;
if (!baseURL || !apiKey) {
  console.error('FAIL setup: MIXSERVE_BASE_URL and MIXSERVE_API_KEY must be set');
  process.exit(2);
}
const kModel = 'tiny';
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });

let passed = 0;
async function check(name, body) {
  try {
    const detail = await body();
    passed += 1;
    console.log(`ok   ${name}${detail ? ` (${detail})` : ''}`);
  } catch (err) {
    console.log(`FAIL ${name}`);
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
  }
}

// Expects `promise` to reject with `ErrorClass` and HTTP `status`.
async function expect_error(promise, ErrorClass, status) {
  let caught = null;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught, `expected ${ErrorClass.name}, but the request succeeded`);
  assert.ok(caught instanceof ErrorClass,
    `expected ${ErrorClass.name}, got ${caught.constructor.name}: ${caught.message}`);
  assert.equal(caught.status, status);
  assert.equal(typeof caught.error?.message, 'string', 'error body lacks error.message');
  return `${caught.constructor.name} ${caught.status}: ${caught.error.message}`;
}

// Collects a stream: concatenated text (via `piece`), last finish_reason, ids, usage.
async function collect(stream, piece) {
  let text = '';
  let finish = null;
  let usage = null;
  const ids = new Set();
  let chunks = 0;
  for await (const chunk of stream) {
    chunks += 1;
    ids.add(chunk.id);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += piece(choice) ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { text, finish, usage, ids, chunks };
}

const kFinish = new Set(['stop', 'length']);

await check('models.list contains "tiny"', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes(kModel), `model ids: ${JSON.stringify(ids)}`);
  return ids.join(',');
});

await check('models.retrieve("tiny")', async () => {
  const m = await client.models.retrieve(kModel);
  assert.equal(m.id, kModel);
  assert.equal(m.object, 'model');
});

const completionRequest = { model: kModel, prompt: 'Hello', max_tokens: 12, temperature: 0 };
let completionText = '';
await check('completions.create non-stream', async () => {
  const r = await client.completions.create(completionRequest);
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(typeof c.text, 'string');
  assert.ok(kFinish.has(c.finish_reason), `finish_reason ${c.finish_reason}`);
  const n = r.usage.completion_tokens;
  assert.ok(Number.isInteger(n) && n >= 1 && n <= 12, `completion_tokens ${n}`);
  assert.ok(r.usage.prompt_tokens >= 1, `prompt_tokens ${r.usage.prompt_tokens}`);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + n);
  if (c.finish_reason === 'length') assert.equal(n, 12);
  completionText = c.text;
  return `${n} tokens, ${c.finish_reason}, ${JSON.stringify(c.text)}`;
});

await check('completions.create stream gives the same text', async () => {
  const s = await client.completions.create({ ...completionRequest, stream: true });
  const got = await collect(s, (choice) => choice.text);
  assert.ok(got.chunks >= 1, 'no chunks');
  assert.equal(got.text, completionText);
  assert.ok(kFinish.has(got.finish), `finish_reason ${got.finish}`);
  assert.equal(got.ids.size, 1, 'chunks carry different ids');
  return `${got.chunks} chunks`;
});

const chatRequest = {
  model: kModel,
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Say hello.' },
  ],
  max_tokens: 10,
  temperature: 0,
};
let chat = null;
await check('chat.completions.create non-stream', async () => {
  const r = await client.chat.completions.create(chatRequest);
  assert.ok(r.id.startsWith('chatcmpl-'), `id ${r.id}`);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, kModel);
  assert.equal(r.choices.length, 1);
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.equal(typeof c.message.content, 'string');
  assert.ok(kFinish.has(c.finish_reason), `finish_reason ${c.finish_reason}`);
  const n = r.usage.completion_tokens;
  assert.ok(Number.isInteger(n) && n >= 1 && n <= 10, `completion_tokens ${n}`);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + n);
  chat = r;
  return `${n} tokens, ${c.finish_reason}, ${JSON.stringify(c.message.content)}`;
});

await check('chat.completions.create stream + include_usage matches non-stream', async () => {
  const s = await client.chat.completions.create({
    ...chatRequest, stream: true, stream_options: { include_usage: true },
  });
  const got = await collect(s, (choice) => choice.delta?.content);
  assert.equal(got.text, chat.choices[0].message.content);
  assert.equal(got.finish, chat.choices[0].finish_reason);
  assert.ok(got.usage, 'no usage chunk despite include_usage');
  assert.deepEqual(
    { p: got.usage.prompt_tokens, c: got.usage.completion_tokens, t: got.usage.total_tokens },
    { p: chat.usage.prompt_tokens, c: chat.usage.completion_tokens, t: chat.usage.total_tokens });
  assert.equal(got.ids.size, 1, 'chunks carry different ids');
  const [id] = got.ids;
  assert.ok(id.startsWith('chatcmpl-'), `id ${id}`);
  return `${got.chunks} chunks`;
});

await check('chat logprobs: one entry per token, 2 top_logprobs each', async () => {
  const r = await client.chat.completions.create({ ...chatRequest, logprobs: true, top_logprobs: 2 });
  const content = r.choices[0].logprobs?.content;
  assert.ok(Array.isArray(content), `logprobs.content missing: ${JSON.stringify(r.choices[0].logprobs)}`);
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content.map((e) => e.token).join(''), r.choices[0].message.content);
  for (const e of content) {
    assert.equal(typeof e.token, 'string');
    assert.ok(Number.isFinite(e.logprob) && e.logprob <= 0, `logprob ${e.logprob}`);
    assert.equal(e.top_logprobs.length, 2);
    for (const t of e.top_logprobs) assert.ok(Number.isFinite(t.logprob) && t.logprob <= 0);
    // Greedy decoding picks the most likely token, so the first alternative is the chosen one.
    assert.ok(e.top_logprobs[0].logprob >= e.top_logprobs[1].logprob, 'top_logprobs not sorted');
    assert.ok(Math.abs(e.top_logprobs[0].logprob - e.logprob) < 1e-4, 'greedy token is not the top one');
  }
  return `${content.length} entries`;
});

await check('unknown model -> NotFoundError 404', () =>
  expect_error(client.chat.completions.create({ ...chatRequest, model: 'no-such-model' }), OpenAI.NotFoundError, 404));

await check('temperature 5 -> BadRequestError 400', () =>
  expect_error(client.completions.create({ ...completionRequest, temperature: 5 }), OpenAI.BadRequestError, 400));

await check('wrong API key -> AuthenticationError 401', () => {
  const intruder = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: `${apiKey}-wrong`, maxRetries: 0 });
  return expect_error(intruder.completions.create(completionRequest), OpenAI.AuthenticationError, 401);
});

console.log(`all ${passed} checks passed`);
