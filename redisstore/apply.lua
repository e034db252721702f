-- Applies one record of presence.sessions to a user's hash, once and in
-- order, and compares the user's visible state with what was last
-- announced to the user's audience.
--
-- KEYS[1]  the user's hash
-- ARGV[1]  version: the offset of the record in its partition
-- ARGV[2]  op: "c" connect, "d" disconnect, "s" set the custom status,
--          "x" clear it, "k" apply nothing, only compare
-- ARGV[3]  the session's field ("c", "d")
-- ARGV[4]  the session's value ("c"), the custom status ("s"); for a
--          disconnect, "<gateway>\31<epoch>" when it applies only to a
--          session held there (a gateway_lost disconnect), else ""
-- ARGV[5]  the record's time, Unix milliseconds
-- ARGV[6]  offline TTL, milliseconds
-- ARGV[7]  "1" during a rebuild: the visible state counts as announced
--
-- Hash fields: "v" version; "s<session>" one per live session; "c" the
-- custom status; "l" last seen, only while no session is live: the time of
-- the disconnect that ended the last one; "a" the visible state last
-- announced. The visible state is the user's devices and custom status;
-- session ids, versions and times are not part of it, so a device that
-- reconnects is no news.
--
-- While no session is live, the hash expires the offline TTL after the
-- time of the latest record applied to it. Every rule depends only on the
-- latest record per key, which compaction keeps, so a replay of the
-- compacted topic rebuilds the same hash.
--
-- Returns {applied, announce, visible, kept}: applied is 1 when the record
-- was newer than the hash (0 for a duplicate or a replayed record, which
-- changes nothing); announce is 0 when the visible state is what was
-- announced, 1 when it must be announced, 2 when the user went offline
-- (announce it once the offline grace period has passed, if still true);
-- visible is the visible state, for marking it announced; kept is the
-- session's value when a conditional disconnect found it held by another
-- gateway or epoch and left it (it reconnected), else "".

local key = KEYS[1]
local op = ARGV[2]
local offline = '\29'

local function visible()
  local h = redis.call('HGETALL', key)
  local devices, custom = {}, ''
  for i = 1, #h, 2 do
    local field = h[i]
    if string.byte(field, 1) == 115 then -- 's': a session
      local value = h[i + 1]
      local first = string.find(value, '\31', 1, true)
      local second = string.find(value, '\31', first + 1, true)
      devices[#devices + 1] = string.sub(value, 1, second - 1)
    elseif field == 'c' then
      custom = h[i + 1]
    end
  end
  table.sort(devices)
  return table.concat(devices, '\30') .. offline .. custom, #devices
end

-- The gateway and epoch of a session's value:
-- device \31 device id \31 gateway \31 connected at [\31 epoch].
local function holder(value)
  local parts, from = {}, 1
  while true do
    local at = string.find(value, '\31', from, true)
    if not at then
      parts[#parts + 1] = string.sub(value, from)
      break
    end
    parts[#parts + 1] = string.sub(value, from, at - 1)
    from = at + 1
  end
  return (parts[3] or '') .. '\31' .. (parts[5] or '')
end

local kept = ''
if op == 'd' and ARGV[4] ~= '' then
  local held = redis.call('HGET', key, ARGV[3])
  if held and holder(held) ~= ARGV[4] then
    kept = held
    op = 'k'
  end
end

local applied = 0
if op ~= 'k' and tonumber(ARGV[1]) > tonumber(redis.call('HGET', key, 'v') or '-1') then
  applied = 1
  redis.call('HSET', key, 'v', ARGV[1])
  if op == 'c' then
    redis.call('HSET', key, ARGV[3], ARGV[4])
    redis.call('HDEL', key, 'l')
    redis.call('PERSIST', key)
  elseif op == 'd' then
    redis.call('HDEL', key, ARGV[3])
  elseif op == 's' then
    redis.call('HSET', key, 'c', ARGV[4])
  elseif op == 'x' then
    redis.call('HDEL', key, 'c')
  end
end

local state, sessions = visible()
if applied == 1 and sessions == 0 then
  if op == 'd' then
    redis.call('HSET', key, 'l', ARGV[5])
  end
  if op == 'x' and redis.call('HEXISTS', key, 'l') == 0 then
    -- Nothing left to show: the user never connected.
    redis.call('DEL', key)
  else
    -- A deadline already past deletes the key at once.
    redis.call('PEXPIREAT', key, tonumber(ARGV[5]) + tonumber(ARGV[6]))
  end
end

local exists = redis.call('EXISTS', key) == 1
if not exists then
  state = offline
end
local announced = redis.call('HGET', key, 'a') or offline
if state == announced then
  return {applied, 0, state, kept}
end
if ARGV[7] == '1' then
  if exists then
    redis.call('HSET', key, 'a', state)
  end
  return {applied, 0, state, kept}
end
if sessions == 0 and string.byte(announced, 1) ~= 29 and op ~= 'k' then
  return {applied, 2, state, kept}
end
return {applied, 1, state, kept}
