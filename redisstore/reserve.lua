-- Admits a subscriber's new subscriptions only while it stays within its
-- cap, atomically: of requests racing each other, those that would take
-- the subscriber past the cap are refused whole, so the cap is never
-- exceeded whatever the concurrency or the number of query APIs.
--
-- A subscriber's live subscriptions are the union of its reservations
-- (KEYS[1], written here when a request is admitted, before its records
-- are in Kafka) and of the subscriptions the processor has applied
-- (KEYS[2]), each live while its expiry is after now. Both are sorted sets
-- of watched users scored by expiry (Unix ms), in the subscriber's hash
-- slot.
--
-- KEYS[1]  P:{U}:r  the subscriber's reservations
-- KEYS[2]  P:{U}:s  whom the subscriber watches, as applied
-- ARGV[1]  now, Unix ms
-- ARGV[2]  the cap
-- ARGV[3]  the expiry of the new subscriptions, Unix ms
-- ARGV[4…] the watched users, distinct
--
-- Returns {live, added, admitted}: the live subscriptions before the
-- request, how many of its users are not among them, and 1 when the
-- request was admitted (its users reserved until the expiry), else 0
-- (nothing written).

local now, cap, expiry = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)

local live, n = {}, 0
for _, key in ipairs(KEYS) do
  for _, user in ipairs(redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf')) do
    if not live[user] then
      live[user] = true
      n = n + 1
    end
  end
end
local added = 0
for i = 4, #ARGV do
  if not live[ARGV[i]] then
    added = added + 1
  end
end
if n + added > cap then
  return {n, added, 0}
end

-- A renewal keeps the later of the two expiries: a reservation may end
-- late, never early.
for i = 4, #ARGV do
  local old = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not old or tonumber(old) < expiry then
    redis.call('ZADD', KEYS[1], expiry, ARGV[i])
  end
end
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now))
return {n, added, 1}
