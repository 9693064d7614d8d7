-- Extend held slots of fleet-wide limits by their TTL; a slot that already expired is lost.
-- KEYS[i] agentcron:limit:{name}:slots   ARGV[2i-1] holder, ARGV[2i] ttl ms
-- Returns one 1 (renewed) or 0 (lost) per key.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local holder, ttl = ARGV[2 * i - 1], tonumber(ARGV[2 * i])
  local expires = redis.call('ZSCORE', key, holder)
  if expires and tonumber(expires) > now then
    redis.call('ZADD', key, now + ttl, holder)
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  else
    if expires then redis.call('ZREM', key, holder) end
    out[i] = 0
  end
end
return out
