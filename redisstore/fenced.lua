#!lua flags=allow-cross-slot-keys
-- Runs writes of one partition's owner, but only while the caller still
-- owns the partition (see write.lua, which writes users' hashes the same
-- way): a processor that lost the partition writes nothing.
--
-- KEYS[1]  the fence of the partition on this node
-- ARGV[1]  the caller's token
-- Then, per command: n, then its n arguments (the command's name, its
--   key, the rest); every key served by this node.
--
-- Returns 1, or 0 (and writes nothing) when the fence holds another token.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + 1 + n
end
return 1
