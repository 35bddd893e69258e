// Reads one agent run from the router exactly as a browser's useChat would: DefaultChatTransport
// sends the UIMessages (no `stream` flag: the router must stream by default), readUIMessageStream
// folds the UI message stream v1 into the final assistant message. Prints one JSON line:
// {message, errors, status, headers, sent} (errors: everything onError saw, chunk validation included).
//
// usage: node read_stream.mjs '<json: {url, body, headers, messages}>'
import { DefaultChatTransport, readUIMessageStream } from 'ai';

const { url, body, headers, messages } = JSON.parse(process.argv[2]);
const seen = { status: 0, headers: {}, sent: null };

async function recordingFetch(input, init) {
  seen.sent = JSON.parse(init.body);
  const response = await fetch(input, init);
  seen.status = response.status;
  seen.headers = Object.fromEntries(response.headers.entries());
  return response;
}

const transport = new DefaultChatTransport({ api: url, headers, body, fetch: recordingFetch });
const errors = [];
let message = null;
try {
  const stream = await transport.sendMessages({
    chatId: 'chat-js-1', trigger: 'submit-message', messageId: undefined, abortSignal: undefined, messages,
  });
  for await (const m of readUIMessageStream({ stream, onError: (e) => errors.push(String(e?.message ?? e)) })) {
    message = m;
  }
} catch (e) {
  errors.push(`thrown: ${e?.message ?? e}`);
}
console.log(JSON.stringify({ message, errors, ...seen }));
