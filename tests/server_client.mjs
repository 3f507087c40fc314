// server_client.mjs — drives moepager-server with the official `openai`
// client library for Node, as applications do.  Called by
// tests/server-openai.test with the base URL and API key; prints one
// "case NAME: ok" or "case NAME: FAILED ..." line per case (tests/driver).
import OpenAI from 'openai';

const [baseURL, apiKey, modelId] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, timeout: 120000, maxRetries: 0 });
let failed = 0;

async function check(name, fn) {
	try {
		const note = await fn();
		console.log(`case ${name}: ok`);
		if (note) console.log(`  ${note}`);
	} catch (e) {
		failed = 1;
		console.log(`case ${name}: FAILED ${e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e}`);
	}
}
function expect(cond, what) { if (!cond) throw new Error(what); }

// the error a call must fail with: an APIError of that status (and code)
async function expectError(name, status, code, fn) {
	await check(name, async () => {
		try {
			await fn();
		} catch (e) {
			expect(e instanceof OpenAI.APIError, `expected an APIError, got ${e}`);
			expect(e.status === status, `expected status ${status}, got ${e.status}: ${e.message}`);
			if (code) expect(e.code === code, `expected code ${code}, got ${e.code}`);
			return `${name} -> ${e.status}`;
		}
		throw new Error(`expected status ${status}, the call succeeded`);
	});
}

const question = { role: 'user', content: 'Why does a pager keep hot experts in RAM?' };

await check('models-list', async () => {
	const list = await client.models.list();
	expect(list.data.length === 1 && list.data[0].id === modelId, `models: ${JSON.stringify(list.data)}`);
});

let first;
await check('chat-stream', async () => {
	const stream = await client.chat.completions.create({
		model: modelId, messages: [question], stream: true, max_tokens: 12, temperature: 0,
		stream_options: { include_usage: true },
	});
	let chunks = 0, content = '', reasoning = '', finish = null, usage = null;
	for await (const chunk of stream) {
		chunks++;
		if (chunk.usage) usage = chunk.usage;
		const c = chunk.choices[0];
		if (!c) continue;
		content += c.delta.content ?? '';
		reasoning += c.delta.reasoning_content ?? '';
		if (c.finish_reason) finish = c.finish_reason;
	}
	expect(chunks >= 3, `only ${chunks} chunks`);
	expect(finish === 'length' || finish === 'stop', `finish_reason ${finish}`);
	expect(usage && usage.completion_tokens === 12 || finish === 'stop', `usage ${JSON.stringify(usage)}`);
	first = { content, usage };
	return `${chunks} chunks, ${usage.prompt_tokens} prompt tokens, finish ${finish}`;
});

await check('chat-second-turn-reuses-first', async () => {
	const r = await client.chat.completions.create({
		model: modelId, max_tokens: 6, temperature: 0,
		messages: [question, { role: 'assistant', content: first.content }, { role: 'user', content: 'Shorter, please.' }],
	});
	const u = r.usage;
	// the first turn's prompt ended in "<think>\n", which the history drops
	expect(u.reused_prompt_tokens >= first.usage.prompt_tokens - 2, `reused ${u.reused_prompt_tokens} of turn 1's ${first.usage.prompt_tokens}`);
	expect(u.prompt_tokens_details.cached_tokens === u.reused_prompt_tokens, 'cached_tokens differs');
	expect(u.reused_prompt_tokens + u.new_prompt_tokens === u.prompt_tokens, 'reused + new != prompt');
	expect(typeof r.choices[0].message.content === 'string', 'no content');
	return `turn 1: ${first.usage.prompt_tokens} prompt tokens; turn 2: ${u.prompt_tokens} = ${u.reused_prompt_tokens} reused + ${u.new_prompt_tokens} new`;
});

await check('chat-non-stream', async () => {
	const r = await client.chat.completions.create({ model: modelId, messages: [question], max_tokens: 5, seed: 9 });
	expect(r.object === 'chat.completion' && r.choices.length === 1, JSON.stringify(r));
	expect(r.choices[0].message.role === 'assistant', 'role');
	expect(r.usage.completion_tokens <= 5, `completion_tokens ${r.usage.completion_tokens}`);
});

await check('completions', async () => {
	const r = await client.completions.create({ model: modelId, prompt: 'In the beginning', max_tokens: 5 });
	expect(r.object === 'text_completion' && typeof r.choices[0].text === 'string', JSON.stringify(r));
});

await check('completions-stream', async () => {
	const stream = await client.completions.create({ model: modelId, prompt: 'In the beginning', max_tokens: 5, stream: true });
	let n = 0;
	for await (const chunk of stream) n += chunk.choices.length;
	expect(n >= 1, 'no chunks');
});

await expectError('err-unknown-model', 404, 'model_not_found', () =>
	client.chat.completions.create({ model: 'gpt-4o', messages: [question] }));
await expectError('err-wrong-type', 400, null, () =>
	client.chat.completions.create({ model: modelId, messages: [question], max_tokens: 'many' }));
await expectError('err-context-length', 400, 'context_length_exceeded', () =>
	client.completions.create({ model: modelId, prompt: 'word '.repeat(12000) }));
await expectError('err-api-key', 401, 'invalid_api_key', () =>
	new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 }).models.list());

// a client that gives up mid-stream: the server stops generating and goes on
await check('abort-mid-stream', async () => {
	const ac = new AbortController();
	const stream = await client.chat.completions.create(
		{ model: modelId, messages: [question], stream: true, max_tokens: 100000 }, { signal: ac.signal });
	let n = 0;
	try {
		for await (const chunk of stream) { if (++n === 3) ac.abort(); }
	} catch (e) {
		expect(e.name === 'AbortError' || e instanceof OpenAI.APIUserAbortError, `unexpected ${e}`);
	}
	const r = await client.chat.completions.create({ model: modelId, messages: [question], max_tokens: 2 });
	expect(r.choices.length === 1, 'no answer after the abort');
	const m = await (await fetch(baseURL.replace(/\/v1$/, '/metrics'))).text();
	const cancelled = Number(/^moepager_cancelled_total (\d+)/m.exec(m)[1]);
	expect(cancelled >= 1, `moepager_cancelled_total ${cancelled}`);
});

process.exit(failed);
