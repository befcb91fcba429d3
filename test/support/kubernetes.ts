/** The shipped Kubernetes manifests (contrib/kubernetes/), parsed as kubectl reads them. */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseAllDocuments } from "yaml";
import { REPO } from "../../scripts/repo.ts";

export const MANIFESTS = join(REPO, "contrib", "kubernetes");

// deno-lint-ignore no-explicit-any
export type KubernetesObject = Record<string, any>;

/** Every object of a manifest file, in order; throws on a YAML error. */
export function readManifest(file: string): KubernetesObject[] {
  return parseAllDocuments(readFileSync(join(MANIFESTS, file), "utf8")).map((document) => {
    if (document.errors.length) throw new Error(`${file}: ${document.errors[0].message}`);
    return document.toJS();
  }).filter((object) => object !== null);
}

/** The one object of `kind` in `objects`. */
export function only(objects: KubernetesObject[], kind: string): KubernetesObject {
  const found = objects.filter((object) => object.kind === kind);
  if (found.length !== 1) throw new Error(`${found.length} objects of kind ${kind}, not 1`);
  return found[0];
}

/** The container named `name` of a Deployment's or DaemonSet's pod template. */
export function container(workload: KubernetesObject, name: string): KubernetesObject {
  const found = workload.spec.template.spec.containers.find((candidate: KubernetesObject) =>
    candidate.name === name
  );
  if (!found) throw new Error(`no container ${name} in ${workload.metadata.name}`);
  return found;
}

/** The value of `--NAME=VALUE` in a container's args. */
export function argument(of: KubernetesObject, name: string): string | undefined {
  const prefix = `--${name}=`;
  return (of.args as string[]).find((arg) => arg.startsWith(prefix))?.slice(prefix.length);
}

const MODELS = join(REPO, "node_modules");

/**
 * The fields of the interface a kubernetes-models declaration file exports, each with the
 * declaration file of its type where that is an object of known fields (itself, or in an array);
 * undefined for a file declaring no interface (a type alias: IntOrString, Quantity).
 */
function declaredFields(file: string): Map<string, string | undefined> | undefined {
  const text = readFileSync(file, "utf8");
  const declaration = /^export interface \w+(?: extends (\w+))? \{\n([\s\S]*?)^\}/m.exec(text);
  if (!declaration) return undefined;
  const imported = new Map<string, string>();
  for (const [, name, from] of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
    const path = from.startsWith(".")
      ? join(dirname(file), `${from}.d.ts`)
      : join(MODELS, `${from}.d.ts`);
    if (existsSync(path)) imported.set(name, path);
  }
  const fields = new Map<string, string | undefined>();
  if (declaration[1] === "TypeMeta") {
    ["apiVersion", "kind"].forEach((name) => fields.set(name, undefined));
  }
  for (const [, name, type] of declaration[2].matchAll(/^ {4}"([^"]+)"\??: (.*?);?$/gm)) {
    fields.set(name, imported.get(/^(?:Array<)?(\w+)>?$/.exec(type)?.[1] ?? ""));
  }
  return fields;
}

/**
 * Every field of `object` that its kind's schema does not have, as a path: what the API server
 * rejects under kubectl's default strict field validation, and what kubernetes-models' validate()
 * lets through (its schemas allow more properties).
 */
export function unknownFields(object: KubernetesObject): string[] {
  const walk = (value: unknown, file: string, path: string): string[] => {
    if (Array.isArray(value)) {
      return value.flatMap((item, index) => walk(item, file, `${path}[${index}]`));
    }
    const fields = declaredFields(file);
    if (!fields || typeof value !== "object" || value === null) return [];
    return Object.entries(value).flatMap(([name, field]) => {
      if (!fields.has(name)) return [`${path}.${name}`];
      const type = fields.get(name);
      return type ? walk(field, type, `${path}.${name}`) : [];
    });
  };
  return walk(
    object,
    join(MODELS, "kubernetes-models", object.apiVersion, `${object.kind}.d.ts`),
    object.kind,
  );
}
