-- Note a holder waiting for a fleet-wide limit (for `agentcron limits`); the entry expires by
-- itself if the waiter dies. KEYS[1] agentcron:limit:{name}:waiting (sorted set scored by expiry
-- ms, Redis TIME); ARGV[1] holder, ARGV[2] ttl ms.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
