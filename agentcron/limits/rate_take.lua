-- Take one request (and some tokens) of a fleet-wide rate limit: a sliding-window log, so no
-- span of `period` ms ever holds more than `per_count` grants or `per_tokens` tokens (a token
-- bucket would let twice that through a span that straddles a refill).
-- KEYS[1] agentcron:limit:{name}:rate (sorted set: member "<nonce>:<tokens>", score = grant ms)
-- ARGV[1] per_count (0 = none), ARGV[2] per_tokens (0 = none), ARGV[3] tokens,
-- ARGV[4] period ms, ARGV[5] nonce
-- Returns 0 when granted, else the milliseconds until it could be (-1: tokens > per_tokens).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local per_count, per_tokens = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens, period = tonumber(ARGV[3]), tonumber(ARGV[4])
if per_tokens > 0 and tokens > per_tokens then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local grants = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local count = #grants / 2
local used = 0
for i = 1, #grants, 2 do
  used = used + tonumber(string.match(grants[i], ':(%d+)$'))
end
local wait = 0
if per_count > 0 and count + 1 > per_count then
  -- the oldest grants must leave the window until one more fits
  wait = tonumber(grants[2 * (count + 1 - per_count)]) + period - now + 1
end
if per_tokens > 0 and used + tokens > per_tokens then
  local freed = 0
  for i = 1, #grants, 2 do
    freed = freed + tonumber(string.match(grants[i], ':(%d+)$'))
    if used - freed + tokens <= per_tokens then
      wait = math.max(wait, tonumber(grants[i + 1]) + period - now + 1)
      break
    end
  end
end
if wait > 0 then return wait end
redis.call('ZADD', KEYS[1], now, ARGV[5] .. ':' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], period)
return 0
