-- Take a lease if nobody holds it, with a fresh fencing token.
-- KEYS[1] = lease key, KEYS[2] = fence counter; ARGV[1] = owner, ARGV[2] = ttl in milliseconds.
-- Returns the token (> 0), or 0 when the lease is held by somebody.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ':' .. ARGV[1], 'PX', ARGV[2])
return token
