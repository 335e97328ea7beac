-- Files the `promote` request in the status subresource, as `kubectl fledge promote` does.
-- Argo CD sends the status part of an action's change to the status subresource, so the
-- Rollout's spec, and with it the Git state, is left alone. Lua actions do not see who clicked;
-- Argo CD's own ResourceActionRan event names the user.
if obj.status == nil then
  obj.status = {}
end
obj.status.request = {action = "promote", requestedBy = "argocd"}
return obj
