// Validate Istio objects against the schemas of @kubernetes-models/istio (generated from Istio's CRDs).
// Input (stdin): a JSON array of objects. Output (stdout): a JSON array, one entry per object:
//   {"kind", "name", "errors": [...]} (errors empty when valid). Exit 0 unless the input is unusable.
import { readFileSync } from "node:fs";

const KINDS = {
  "networking.istio.io/v1": ["VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar"],
  "security.istio.io/v1": ["AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"],
};

async function modelFor(apiVersion, kind) {
  if (!(KINDS[apiVersion] || []).includes(kind)) return null;
  const [group, version] = apiVersion.split("/");
  const module = await import(`@kubernetes-models/istio/${group}/${version}/${kind}`);
  return module[kind];
}

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const object of objects) {
  const name = object?.metadata?.name ?? "(no name)";
  const Model = await modelFor(object.apiVersion, object.kind);
  if (!Model) {
    results.push({ kind: object.kind, name, errors: [`no Istio schema for ${object.apiVersion} ${object.kind}`] });
    continue;
  }
  try {
    new Model(object).validate();
    results.push({ kind: object.kind, name, errors: [] });
  } catch (error) {
    const details = error.errors ? error.errors.map((e) => `${e.instancePath || "/"} ${e.message}`) : [String(error.message)];
    results.push({ kind: object.kind, name, errors: details });
  }
}
process.stdout.write(JSON.stringify(results));
