-- Take a slot of a fleet-wide concurrency limit (a sorted set of holders scored by expiry).
-- KEYS[1] agentcron:limit:{name}:slots   ARGV[1] holder, ARGV[2] capacity, ARGV[3] ttl ms
-- Holders whose lease ran out (a dead process stops renewing) are dropped first; time is the
-- Redis server's, so every host agrees on it. Returns 1 if the holder now has a slot, else 0.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 1
end
return 0
