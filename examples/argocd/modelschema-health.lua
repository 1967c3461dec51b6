-- Argo CD health check of a ModelSchema (overseer.dev/v1alpha1): Ready=True (every section a
-- usable JSON Schema) -> Healthy; Ready=False -> Degraded; no status yet -> Progressing.
local hs = {}
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Ready" then
      hs.status = condition.status == "True" and "Healthy" or "Degraded"
      hs.message = (condition.reason or "") .. ((condition.message ~= nil and condition.message ~= "") and (": " .. condition.message) or "")
      return hs
    end
  end
end
hs.status = "Progressing"
hs.message = "Waiting for the schema-overseer operator to report a status"
return hs
