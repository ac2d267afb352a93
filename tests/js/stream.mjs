// One streaming chat completion through the gateway with the official openai JavaScript SDK.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: process.env.API_KEY });
const stream = await client.chat.completions.create({
  model: process.env.MODEL,
  messages: [{ role: "user", content: "hello from node" }],
  stream: true,
});
let text = "";
let chunks = 0;
for await (const chunk of stream) {
  chunks += 1;
  text += chunk.choices[0]?.delta?.content ?? "";
}
console.log(JSON.stringify({ text, chunks }));
