-- Compare-and-delete: remove the lease only if it still holds our value.
-- KEYS[1] = lease key; ARGV[1] = "{token}:{owner}".
-- Returns 1 when deleted, 0 when the lease is gone or held by somebody else.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
