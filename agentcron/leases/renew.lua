-- Compare-and-extend: reset the TTL only if the lease still holds our value.
-- KEYS[1] = lease key; ARGV[1] = "{token}:{owner}", ARGV[2] = ttl in milliseconds.
-- Returns 1 when extended, 0 when the lease is gone or held by somebody else.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
