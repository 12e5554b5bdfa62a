/**
 * The Lua scripts of the Redis engine. Each touches the keys of one channel only (one hash slot),
 * so each is atomic per channel, on a single server and on Redis Cluster alike.
 *
 * Run with EVALSHA; on NOSCRIPT (a restarted or flushed server) the script is sent once with EVAL,
 * which caches it again.
 */
import { createHash } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';

export interface Script {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

/**
 * Drops entries older than `cutoff` (ms) from the front of the stream: the time-to-live. Reads a
 * few entries at a time, so a publish that finds one expired entry does little work.
 */
const TRIM_EXPIRED = `
local function trimExpired(stream, cutoff)
  while true do
    local batch = redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)
    local n = #batch
    if n == 0 then return end
    for i = 1, n do
      if tonumber(batch[i][2][2]) > cutoff then
        if i > 1 then redis.call('XTRIM', stream, 'MINID', batch[i][1]) end
        return
      end
    end
    local ids = {}
    for i = 1, n do ids[i] = batch[i][1] end
    redis.call('XDEL', stream, unpack(ids))
  end
end
`;

/**
 * Publish: next offset, append, PUBLISH — one step.
 * KEYS: meta, stream. ARGV: pubsub channel, candidate epoch, historySize, historyTtlMs, metaTtlMs,
 * timestamp, JSON head, JSON tail. Returns {offset, epoch}.
 *
 * A missing meta key means the channel's history is gone (never existed, expired, FLUSHALL, a
 * server restarted without persistence): a new epoch starts at offset 1 with the candidate the
 * caller generated, and any orphaned stream is dropped. History is trimmed by offset (MINID =
 * offset - historySize + 1): exactly the last `historySize` offsets, like the memory engine's ring,
 * also when delete-after-read removed entries in between.
 */
export const PUBLISH = script(`${TRIM_EXPIRED}
local meta, stream = KEYS[1], KEYS[2]
local size, ttl, metaTtl = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local epoch = redis.call('HGET', meta, 'e')
local offset
if not epoch then
  epoch = ARGV[2]
  offset = 1
  redis.call('HSET', meta, 'e', epoch, 'o', 1)
  redis.call('DEL', stream)
else
  offset = redis.call('HINCRBY', meta, 'o', 1)
end
local json = ARGV[7] .. offset .. ',"epoch":"' .. epoch .. ARGV[8]
if size > 0 then
  local minid = offset - size + 1
  if minid < 1 then minid = 1 end
  redis.call('XADD', stream, 'MINID', '=', minid, offset .. '-0', 't', ARGV[6], 'j', json)
  if ttl > 0 then
    trimExpired(stream, tonumber(ARGV[6]) - ttl)
    redis.call('PEXPIRE', stream, ttl)
  elseif metaTtl > 0 then
    redis.call('PEXPIRE', stream, metaTtl)
  end
else
  redis.call('DEL', stream)
end
if metaTtl > 0 then
  if ttl > metaTtl then redis.call('PEXPIRE', meta, ttl) else redis.call('PEXPIRE', meta, metaTtl) end
end
redis.call('PUBLISH', ARGV[1], json)
return {offset, epoch}
`);

/**
 * History read with the recovery rules of core/engine.ts HistoryQuery.
 * KEYS: meta, stream. ARGV: candidate epoch, metaTtlMs, now, historyTtlMs, mode ('since' or
 * 'newest'), since epoch, since offset, limit (-1 = all).
 * Returns {epoch, offset, recovered (0/1), json…}.
 *
 * A channel without meta gets its epoch here (offset 0), so a client that subscribed before the
 * first publish resumes from {epoch, 0} with `recovered: true`.
 */
export const HISTORY = script(`${TRIM_EXPIRED}
local meta, stream = KEYS[1], KEYS[2]
local metaTtl, ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[4]), tonumber(ARGV[8])
local m = redis.call('HMGET', meta, 'e', 'o')
local epoch, offset = m[1], tonumber(m[2]) or 0
if not epoch then
  epoch = ARGV[1]
  offset = 0
  redis.call('HSET', meta, 'e', epoch, 'o', 0)
  redis.call('DEL', stream)
end
if metaTtl > 0 and redis.call('PTTL', meta) < metaTtl then redis.call('PEXPIRE', meta, metaTtl) end
if ttl > 0 then trimExpired(stream, tonumber(ARGV[3]) - ttl) end
local first = offset + 1
local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
if #head > 0 then first = tonumber(string.match(head[1][1], '^%d+')) end
local recovered = 1
local entries = {}
if ARGV[5] == 'since' then
  local so = tonumber(ARGV[7])
  local from
  if ARGV[6] ~= epoch or so > offset or so + 1 < first then
    recovered = 0
    from = first
  else
    from = so + 1
  end
  if limit ~= 0 and from <= offset then
    if limit > 0 then
      entries = redis.call('XRANGE', stream, from, '+', 'COUNT', limit)
    else
      entries = redis.call('XRANGE', stream, from, '+')
    end
  end
elseif limit ~= 0 then
  local rev
  if limit > 0 then
    rev = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', limit)
  else
    rev = redis.call('XREVRANGE', stream, '+', '-')
  end
  for i = #rev, 1, -1 do entries[#entries + 1] = rev[i] end
end
local out = {epoch, offset, recovered}
for i = 1, #entries do out[#out + 1] = entries[i][2][4] end
return out
`);

/** Presence add/refresh. KEYS: presence, presenceExpiry. ARGV: ttlMs, then client, info JSON pairs. */
export const PRESENCE_ADD = script(`
local t = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local expires = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], expires, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`);

/** Presence remove. KEYS: presence, presenceExpiry. ARGV: client ids. */
export const PRESENCE_REMOVE = script(`
redis.call('HDEL', KEYS[1], unpack(ARGV))
redis.call('ZREM', KEYS[2], unpack(ARGV))
return 1
`);

/**
 * Presence list: drops entries whose node stopped refreshing them (Redis clock), returns the rest.
 * KEYS: presence, presenceExpiry. Returns info JSON strings.
 */
export const PRESENCE_LIST = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #expired > 0 then
  for i = 1, #expired, 1000 do
    redis.call('HDEL', KEYS[1], unpack(expired, i, math.min(i + 999, #expired)))
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
end
return redis.call('HVALS', KEYS[1])
`);

/**
 * Node registry refresh: this node's channels and local subscriber counts, replaced as a whole.
 * KEYS: nodes (zset node → expiry), node (hash channel → count). ARGV: ttlMs, node id, then
 * channel, count pairs.
 */
export const NODE_REFRESH = script(`
local t = redis.call('TIME')
local ttl = tonumber(ARGV[1])
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('DEL', KEYS[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', KEYS[2], ttl)
return 1
`);

/** Live node ids (expired ones dropped). KEYS: nodes. */
export const NODE_LIST = script(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
`);

export type Client = Redis | Cluster;

/** EVALSHA, falling back to EVAL when the server does not know the script (yet, or any more). */
export async function run(client: Client, s: Script, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('NOSCRIPT')) return client.eval(s.lua, keys.length, ...keys, ...args);
    throw err;
  }
}
