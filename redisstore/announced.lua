-- Records the visible state each user's audience was told, unless the
-- user is gone (a missing hash reads as offline, which is what was told).
-- One call marks many users (of one slot on Redis Cluster).
--
-- KEYS[i]  a user's hash
-- ARGV[i]  "<version>:<visible state>" as apply.lua returned it: the state
--          announced to that user's audience, and the version of the hash
--          that showed it
--
-- While the hash is still at that version, it still shows that state:
-- "a" becomes "=" (see apply.lua), which takes one byte.

for i = 1, #KEYS do
  local key = KEYS[i]
  local at = string.find(ARGV[i], ':', 1, true)
  local version, state = string.sub(ARGV[i], 1, at - 1), string.sub(ARGV[i], at + 1)
  local held = redis.call('HGET', key, 'v') -- false: the user is gone
  if held == version then
    redis.call('HSET', key, 'a', '=')
  elseif held then
    redis.call('HSET', key, 'a', state)
  end
end
return 0
