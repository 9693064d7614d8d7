-- Take one request (and some tokens) of a fleet-wide rate limit: a sliding-window log, so no
-- span of `period` ms ever holds more than `per_count` grants or `per_tokens` tokens (a token
-- bucket would let twice that through a span that straddles a refill).
-- KEYS[1] agentcron:limit:{name}:rate (sorted set: member "<nonce>:<tokens>", score = grant ms)
-- KEYS[2] agentcron:limit:{name}:rate:tokens (the tokens of the grants in the set)
-- ARGV[1] per_count (0 = none), ARGV[2] per_tokens (0 = none), ARGV[3] tokens,
-- ARGV[4] period ms, ARGV[5] nonce
-- Returns 0 when granted, else the milliseconds until it could be (-1: tokens > per_tokens).
-- A grant costs the grants that expire since the last call plus O(log n); only a refusal
-- walks the window to say how long to wait.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_count, per_tokens = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, period = tonumber(ARGV[3]), tonumber(ARGV[4])
if per_tokens > 0 and tokens > per_tokens then return -1 end
local function tokens_of(member) return tonumber(string.match(member, ':(%d+)$')) end
local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - period)
if #old > 0 then
  local freed = 0
  for _, member in ipairs(old) do freed = freed + tokens_of(member) end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
  if freed > 0 then redis.call('DECRBY', KEYS[2], freed) end
end
local count = redis.call('ZCARD', KEYS[1])
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if count == 0 then used = 0 end
local wait = 0
if per_count > 0 and count + 1 > per_count then
  -- the oldest grants must leave the window until one more fits
  local k = count + 1 - per_count
  local nth = redis.call('ZRANGE', KEYS[1], k - 1, k - 1, 'WITHSCORES')
  wait = tonumber(nth[2]) + period - now + 1
end
if per_tokens > 0 and used + tokens > per_tokens then
  local grants = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
  local freed = 0
  for i = 1, #grants, 2 do
    freed = freed + tokens_of(grants[i])
    if used - freed + tokens <= per_tokens then
      wait = math.max(wait, tonumber(grants[i + 1]) + period - now + 1)
      break
    end
  end
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. ARGV[3])
if count == 0 then
  redis.call('SET', KEYS[2], tokens, 'PX', period)
else
  redis.call('INCRBY', KEYS[2], tokens)
  redis.call('PEXPIRE', KEYS[2], period)
end
redis.call('PEXPIRE', KEYS[1], period)
return 0
