/**
 * `herald publish <channel> <data>`: data is JSON when it parses as JSON, else a string. Through
 * the HTTP API (with the API key), or over WebSocket as a client when only a token is given.
 * Prints the publish result as one JSON line.
 */
import { UsageError, type ParsedArgs } from './args.js';
import { ProtocolSocket, apiRequest, resolveTarget, webSocketUrl } from './remote.js';

export function parseData(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export async function runPublish(args: ParsedArgs): Promise<number> {
  if (args.positionals.length !== 2) throw new UsageError('publish needs <channel> and <data>');
  const [channel, text] = args.positionals as [string, string];
  const data = parseData(text);
  const target = resolveTarget(args, process.env);
  let result: unknown;
  if (target.token !== undefined && target.apiKey === undefined) {
    const socket = new ProtocolSocket(webSocketUrl(target), { onPush: () => {}, onClose: () => {} });
    try {
      await socket.open(target.token);
      result = await socket.request('publish', { channel, data });
    } finally {
      socket.close();
    }
  } else {
    result = await apiRequest(target, 'POST', '/api/publish', { channel, data });
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  return 0;
}
