// Tools, structured outputs and legacy completions with the official openai JavaScript SDK:
// each asked streamed and not, the answers printed as JSON for tests/e2e/test_tools.py to compare.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY, maxRetries: 0 });
const model = process.env.MODEL;
const tools = [{
  type: "function",
  function: {
    name: "get_weather", description: "Get the current weather in a city",
    parameters: { type: "object", properties: { city: { type: "string", maxLength: 40 } },
                  required: ["city"], additionalProperties: false },
  },
}];
const toolArgs = { model, tools, tool_choice: { type: "function", function: { name: "get_weather" } },
                   temperature: 0, max_tokens: 40,
                   messages: [{ role: "user", content: "What is the weather in Paris?" }] };

const whole = await client.chat.completions.create(toolArgs);
const streamed = {};
let finish = null;
for await (const chunk of await client.chat.completions.create({ ...toolArgs, stream: true })) {
  for (const call of chunk.choices[0]?.delta?.tool_calls ?? []) {
    const seen = streamed[call.index] ?? (streamed[call.index] = { id: "", name: "", arguments: "" });
    seen.id += call.id ?? "";
    seen.name += call.function?.name ?? "";
    seen.arguments += call.function?.arguments ?? "";
  }
  finish = chunk.choices[0]?.finish_reason ?? finish;
}

const verdict = await client.chat.completions.create({
  model, temperature: 0, max_tokens: 60, messages: [{ role: "user", content: "Is Paris in France?" }],
  response_format: { type: "json_schema", json_schema: { name: "Verdict", strict: true, schema: {
    type: "object", properties: { answer: { type: "boolean" } }, required: ["answer"],
    additionalProperties: false } } },
});

const prompt = "The capital of France is";
const completion = await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0 });
let completionStreamed = "";
for await (const chunk of await client.completions.create({ model, prompt, max_tokens: 8, temperature: 0,
                                                             stream: true })) {
  completionStreamed += chunk.choices[0]?.text ?? "";
}

console.log(JSON.stringify({
  tool: { finish: whole.choices[0].finish_reason, calls: whole.choices[0].message.tool_calls,
          content: whole.choices[0].message.content },
  streamed: { finish, calls: Object.values(streamed) },
  verdict: verdict.choices[0].message.content,
  completion: { text: completion.choices[0].text, finish: completion.choices[0].finish_reason,
                streamed: completionStreamed, usage: completion.usage },
}));
