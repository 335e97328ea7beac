-- Which runtime requests make sense for the Rollout as it is now. Every action is listed, the
-- ones that would do nothing are disabled, so the menu does not change shape.
local actions = {}
for _, name in ipairs({"promote", "promote-full", "abort", "retry", "pause", "resume"}) do
  actions[name] = {["disabled"] = true}
end

local status = obj.status
if status == nil then
  return actions
end

-- The same rules the controller applies to a request; one it would ignore is disabled here.
-- While the spec is invalid the controller acts on nothing, requests included.
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type == "InvalidSpec" and c.status == "True" then
      return actions
    end
  end
end

local user_paused = false
if status.pauseConditions ~= nil then
  for _, p in ipairs(status.pauseConditions) do
    if p.reason == "UserPaused" then
      user_paused = true
    end
  end
end
-- A revision is on its way while the desired revision is not the stable one yet.
local updating = status.currentRevision ~= status.stableRevision

if status.abort == true then
  actions["retry"]["disabled"] = false
elseif updating then
  actions["promote"]["disabled"] = false
  actions["promote-full"]["disabled"] = false
  actions["abort"]["disabled"] = false
end
-- `spec.paused` is Git's to change; resume only ends a pause that was requested.
if user_paused then
  actions["resume"]["disabled"] = false
else
  actions["pause"]["disabled"] = false
end
return actions
