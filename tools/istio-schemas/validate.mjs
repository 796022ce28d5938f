// Validate Istio objects against the schemas of @kubernetes-models/istio (generated from Istio's CRDs).
// Input (stdin): a JSON array of objects. Output (stdout): a JSON array, one entry per object:
//   {"kind", "name", "errors": [...]} (errors empty when valid). Exit 0 unless the input is unusable.
//
// Two checks, both from the same package:
//   - its JSON-schema validators: types, enums, required fields, patterns;
//   - its TypeScript types, through the compiler's excess-property check: a field the CRD does not
//     declare (a typo such as `weigth`) is an error. The API server would silently prune it. The
//     compiler names the first such field of each object; fix it and the next one shows.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const KINDS = {
  "networking.istio.io/v1": ["VirtualService", "DestinationRule", "Gateway", "ServiceEntry", "Sidecar"],
  // EnvoyFilter is served only as v1alpha3 (the shark canary's fault injection, apps/lib/meshroute.py).
  "networking.istio.io/v1alpha3": ["EnvoyFilter"],
  "security.istio.io/v1": ["AuthorizationPolicy", "PeerAuthentication", "RequestAuthentication"],
};
// "Object literal may only specify known properties" (2353), and its "did you mean" variant (2561).
const UNKNOWN_FIELD = new Set([2353, 2561]);
const HERE = dirname(fileURLToPath(import.meta.url));

function modulePath(apiVersion, kind) {
  if (!(KINDS[apiVersion] || []).includes(kind)) return null;
  const [group, version] = apiVersion.split("/");
  return `@kubernetes-models/istio/${group}/${version}/${kind}`;
}

function schemaErrors(Model, object) {
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return error.errors ? error.errors.map((e) => `${e.instancePath || "/"} ${e.message}`) : [String(error.message)];
  }
}

// One declaration per line, `const o<i>: I<Kind> = <object>;`, so a diagnostic's line names its object.
function unknownFieldErrors(typed) {
  const found = typed.map(() => []);
  if (typed.length === 0) return found;
  const imports = [...new Set(typed.map(({ path, object }) => `import type { I${object.kind} } from "${path}";`))];
  const lines = typed.map(({ object }, i) => `export const o${i}: I${object.kind} = ${JSON.stringify(object)};`);
  // The file must sit beside node_modules so the compiler resolves the package.
  const work = mkdtempSync(join(HERE, ".check-"));
  const file = join(work, "objects.ts");
  try {
    writeFileSync(file, [...imports, ...lines].join("\n") + "\n");
    const program = ts.createProgram([file], {
      noEmit: true,
      strict: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
    });
    for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
      if (!UNKNOWN_FIELD.has(diagnostic.code) || diagnostic.file?.fileName !== file) continue;
      const line = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start).line - imports.length;
      const text = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
      const field = /'"?([^'"]+)"?' does not exist/.exec(text)?.[1] ?? text;
      found[line]?.push(`unknown field "${field}"`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return found;
}

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
const typed = [];
for (const object of objects) {
  const name = object?.metadata?.name ?? "(no name)";
  const path = modulePath(object.apiVersion, object.kind);
  if (!path) {
    results.push({ kind: object.kind, name, errors: [`no Istio schema for ${object.apiVersion} ${object.kind}`] });
    continue;
  }
  const Model = (await import(path))[object.kind];
  const result = { kind: object.kind, name, errors: schemaErrors(Model, object) };
  results.push(result);
  typed.push({ path, object, result });
}
unknownFieldErrors(typed).forEach((errors, i) => typed[i].result.errors.push(...errors));
process.stdout.write(JSON.stringify(results));
